// SmoothL1Loss CPU kernels: see smooth_l1_cpu.h for the numerics and the determinism design.
#include "smooth_l1_cpu.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>
#include <new>
#include <type_traits>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace onnx_smoothl1 {
namespace cpu {

// ---------------------------------------------------------------------------------------
// 16-bit float conversions (exact decode; encode rounds to nearest, ties to even).

double ToDouble(Half h) {
  const uint32_t sign = (h.bits & 0x8000u) << 16;
  const uint32_t exp = (h.bits >> 10) & 0x1fu;
  const uint32_t mant = h.bits & 0x3ffu;
  float f;
  if (exp == 0) {  // zero or subnormal: mant * 2^-24, exact in float
    f = static_cast<float>(mant) * 5.9604644775390625e-08f;
    uint32_t b;
    std::memcpy(&b, &f, 4);
    b |= sign;
    std::memcpy(&f, &b, 4);
  } else {
    const uint32_t b = sign | (exp == 31 ? (0xffu << 23) | (mant << 13)  // inf / NaN
                                         : ((exp + 112u) << 23) | (mant << 13));
    std::memcpy(&f, &b, 4);
  }
  return static_cast<double>(f);
}

double ToDouble(BFloat16 h) {
  const uint32_t b = static_cast<uint32_t>(h.bits) << 16;
  float f;
  std::memcpy(&f, &b, 4);
  return static_cast<double>(f);
}

namespace {

// Round |v| (not NaN) to a binary format with ``mant_bits`` stored mantissa bits, exponent
// bias ``bias`` and ``exp_bits`` exponent bits; returns the magnitude bits (no sign).
// Rounding is done once, from double, so there is no double rounding.
template <int mant_bits, int exp_bits, int bias>
inline uint16_t EncodeMagnitude(double a) {
  constexpr int emax = (1 << exp_bits) - 2 - bias;  // largest normal unbiased exponent
  constexpr int emin = 1 - bias;                     // smallest normal unbiased exponent
  constexpr uint16_t inf = static_cast<uint16_t>(((1u << exp_bits) - 1u) << mant_bits);
  if (!(a < std::ldexp(1.0, emax + 1))) return inf;  // >= 2^(emax+1), or inf
  if (a < std::ldexp(1.0, emin)) {
    // Subnormal range: count units of 2^(emin - mant_bits); a count of 2^mant_bits is the
    // smallest normal, whose encoding is the same integer.
    const double units = std::nearbyint(std::ldexp(a, mant_bits - emin));
    return static_cast<uint16_t>(units);
  }
  uint64_t bits;
  std::memcpy(&bits, &a, 8);
  constexpr int shift = 52 - mant_bits;
  // Re-bias the exponent, then round the dropped mantissa bits to nearest even; a carry
  // propagates into the exponent (and up to inf) as it should.
  bits -= static_cast<uint64_t>(1023 - bias) << 52;
  const uint64_t lsb = (bits >> shift) & 1u;
  bits += (uint64_t{1} << (shift - 1)) - 1u + lsb;
  return static_cast<uint16_t>(bits >> shift);
}

}  // namespace

Half HalfFromDouble(double v) {
  const uint16_t sign = std::signbit(v) ? 0x8000u : 0u;
  if (std::isnan(v)) return Half{static_cast<uint16_t>(sign | 0x7e00u)};
  return Half{static_cast<uint16_t>(sign | EncodeMagnitude<10, 5, 15>(std::fabs(v)))};
}

BFloat16 BFloat16FromDouble(double v) {
  const uint16_t sign = std::signbit(v) ? 0x8000u : 0u;
  if (std::isnan(v)) return BFloat16{static_cast<uint16_t>(sign | 0x7fc0u)};
  return BFloat16{static_cast<uint16_t>(sign | EncodeMagnitude<7, 8, 127>(std::fabs(v)))};
}

namespace {

inline double Load(float v) { return static_cast<double>(v); }
inline double Load(double v) { return v; }
inline double Load(Half v) { return ToDouble(v); }
inline double Load(BFloat16 v) { return ToDouble(v); }

template <typename T>
inline T Store(double v);
template <>
inline float Store<float>(double v) { return static_cast<float>(v); }
template <>
inline double Store<double>(double v) { return v; }
template <>
inline Half Store<Half>(double v) { return HalfFromDouble(v); }
template <>
inline BFloat16 Store<BFloat16>(double v) { return BFloat16FromDouble(v); }

// The element formula's constants, computed once per call from the validated attributes.
struct Consts {
  double beta, half_over_beta, half_beta;
  explicit Consts(const Attrs& a)
      : beta(a.beta_d()), half_over_beta(a.half_over_beta()), half_beta(a.half_beta()) {}
};

inline double Loss(double x, double y, const Consts& c) {
  const double d = std::fabs(x - y);
  // Branch-free select (both sides are cheap, the compiler emits a blend). With beta == 0,
  // d < 0 is never true and d - 0.0 == d exactly; NaN compares false and stays NaN.
  const double quad = d * d * c.half_over_beta;
  const double lin = d - c.half_beta;
  return d < c.beta ? quad : lin;
}

// Software prefetch a little ahead of a streaming read (measured: the hardware prefetcher
// alone leaves the float32 2^24 'mean' ~30% slower than a dot product of the same arrays).
// Address arithmetic on integers: prefetching past the end is harmless, forming the pointer
// would not be.
constexpr uintptr_t kPrefetchBytes = 2048;
inline void PrefetchAhead(const void* p) {
  __builtin_prefetch(reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(p) + kPrefetchBytes));
}

// Pairwise combination of the lanes (fixed order).
inline double CombineLanes(const double* a) {
  static_assert(kLanes == 8, "CombineLanes is written for 8 lanes");
  return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

template <typename T>
void ElemContig(const T* __restrict x, const T* __restrict y, T* __restrict out, int64_t n,
                const Consts& c) {
  for (int64_t i = 0; i < n; ++i) out[i] = Store<T>(Loss(Load(x[i]), Load(y[i]), c));
}

template <typename T>
void ElemStrided(const T* x, int64_t sx, const T* y, int64_t sy, T* __restrict out, int64_t n,
                 const Consts& c) {
  for (int64_t i = 0; i < n; ++i) out[i] = Store<T>(Loss(Load(x[i * sx]), Load(y[i * sy]), c));
}

// Adds the losses of n elements into the kLanes accumulators ``acc`` (lane = i % kLanes
// for the full groups of kLanes, then the tail from lane 0).
template <typename T>
void SumContig(const T* __restrict x, const T* __restrict y, int64_t n, const Consts& c,
               double* __restrict acc) {
  double a[kLanes];
  for (int j = 0; j < kLanes; ++j) a[j] = acc[j];
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) a[j] += Loss(Load(x[i + j]), Load(y[i + j]), c);
  }
  for (int j = 0; i < n; ++i, ++j) a[j] += Loss(Load(x[i]), Load(y[i]), c);
  for (int j = 0; j < kLanes; ++j) acc[j] = a[j];
}

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
// float / double on x86: the same arithmetic lane by lane, written with GCC/Clang vector
// extensions so it is vectorised whatever the auto-vectoriser decides, in three widths
// picked at run time (SSE2 baseline, AVX2, AVX-512F: the library is built on the user's
// machine without -march, so the wider ones are compiled with target attributes). The
// kLanes accumulators are the same 8 lanes in every width and no FMA is formed
// (-ffp-contract=off), so every width gives bitwise the generic code's result.
#define SMOOTHL1_ISA_DISPATCH 1

template <int W>
struct Vec;
template <>
struct Vec<2> {
  typedef double D __attribute__((vector_size(16)));
  typedef float F __attribute__((vector_size(8)));
  typedef int64_t I __attribute__((vector_size(16)));
};
template <>
struct Vec<4> {
  typedef double D __attribute__((vector_size(32)));
  typedef float F __attribute__((vector_size(16)));
  typedef int64_t I __attribute__((vector_size(32)));
};
template <>
struct Vec<8> {
  typedef double D __attribute__((vector_size(64)));
  typedef float F __attribute__((vector_size(32)));
  typedef int64_t I __attribute__((vector_size(64)));
};

template <int W>
inline __attribute__((always_inline)) typename Vec<W>::D LoadV(const float* p) {
#if defined(__SSE2__)
  if constexpr (W == 2) {  // GCC lowers the generic 2-wide conversion to two cvtss2sd
    return reinterpret_cast<typename Vec<W>::D>(
        _mm_cvtps_pd(_mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)))));
  }
#endif
  typename Vec<W>::F f;
  std::memcpy(&f, p, sizeof f);
  return __builtin_convertvector(f, typename Vec<W>::D);
}
template <int W>
inline __attribute__((always_inline)) typename Vec<W>::D LoadV(const double* p) {
  typename Vec<W>::D d;
  std::memcpy(&d, p, sizeof d);
  return d;
}
template <int W>
inline __attribute__((always_inline)) void StoreV(float* p, typename Vec<W>::D v) {
  const typename Vec<W>::F f = __builtin_convertvector(v, typename Vec<W>::F);
  std::memcpy(p, &f, sizeof f);
}
template <int W>
inline __attribute__((always_inline)) void StoreV(double* p, typename Vec<W>::D v) {
  std::memcpy(p, &v, sizeof v);
}

template <int W>
inline __attribute__((always_inline)) typename Vec<W>::D LossV(typename Vec<W>::D x,
                                                               typename Vec<W>::D y,
                                                               const Consts& c) {
  using D = typename Vec<W>::D;
  using I = typename Vec<W>::I;
  const D diff = x - y;
  const D d = reinterpret_cast<D>(reinterpret_cast<I>(diff) & (INT64_MAX - I{}));
  const D quad = d * d * (c.half_over_beta - D{});
  const D lin = d - (c.half_beta - D{});
  return d < (c.beta - D{}) ? quad : lin;
}

template <int W, typename T>
inline __attribute__((always_inline)) void SumBody(const T* __restrict x, const T* __restrict y,
                                                   int64_t n, const Consts& c,
                                                   double* __restrict acc) {
  using D = typename Vec<W>::D;
  constexpr int K = kLanes / W;
  D a[K];
  std::memcpy(a, acc, sizeof a);
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    PrefetchAhead(x + i);
    PrefetchAhead(y + i);
    for (int k = 0; k < K; ++k) a[k] += LossV<W>(LoadV<W>(x + i + W * k), LoadV<W>(y + i + W * k), c);
  }
  std::memcpy(acc, a, sizeof a);
  for (int j = 0; i < n; ++i, ++j) acc[j] += Loss(Load(x[i]), Load(y[i]), c);
}

template <int W, typename T>
inline __attribute__((always_inline)) void ElemBody(const T* __restrict x, const T* __restrict y,
                                                    T* __restrict out, int64_t n,
                                                    const Consts& c) {
  int64_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    PrefetchAhead(x + i);
    PrefetchAhead(y + i);
    StoreV<W>(out + i, LossV<W>(LoadV<W>(x + i), LoadV<W>(y + i), c));
    StoreV<W>(out + i + W, LossV<W>(LoadV<W>(x + i + W), LoadV<W>(y + i + W), c));
  }
  for (; i < n; ++i) out[i] = Store<T>(Loss(Load(x[i]), Load(y[i]), c));
}

template <typename T>
void SumSse2(const T* __restrict x, const T* __restrict y, int64_t n, const Consts& c,
             double* __restrict acc) {
  SumBody<2>(x, y, n, c, acc);
}
// AVX2 / AVX-512F: written with intrinsics (GCC lowers the generic wide float->double
// conversions to halves plus inserts). Same lanes and operations as SumBody / Loss:
// d = |x - y| (and-not of the sign), quad = (d * d) * hob, lin = d - hb, d < beta (ordered,
// quiet: NaN selects lin) ? quad : lin.
// GCC 12's _mm512_cvtps_pd uses _mm512_undefined_pd(), which -Wmaybe-uninitialized flags.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define SMOOTHL1_AVX2 __attribute__((target("avx2"), always_inline)) inline
#define SMOOTHL1_AVX512 __attribute__((target("avx512f"), always_inline)) inline
SMOOTHL1_AVX2 __m256d Load4(const float* p) { return _mm256_cvtps_pd(_mm_loadu_ps(p)); }
SMOOTHL1_AVX2 __m256d Load4(const double* p) { return _mm256_loadu_pd(p); }
SMOOTHL1_AVX2 __m256d Loss4(__m256d xv, __m256d yv, __m256d beta, __m256d hob, __m256d hb) {
  const __m256d abs_mask = _mm256_castsi256_pd(_mm256_set1_epi64x(INT64_MAX));
  const __m256d d = _mm256_and_pd(_mm256_sub_pd(xv, yv), abs_mask);
  const __m256d quad = _mm256_mul_pd(_mm256_mul_pd(d, d), hob);
  const __m256d lin = _mm256_sub_pd(d, hb);
  return _mm256_blendv_pd(lin, quad, _mm256_cmp_pd(d, beta, _CMP_LT_OQ));
}
SMOOTHL1_AVX512 __m512d Load8(const float* p) { return _mm512_cvtps_pd(_mm256_loadu_ps(p)); }
SMOOTHL1_AVX512 __m512d Load8(const double* p) { return _mm512_loadu_pd(p); }
SMOOTHL1_AVX512 void Store8(float* p, __m512d v) { _mm256_storeu_ps(p, _mm512_cvtpd_ps(v)); }
SMOOTHL1_AVX512 void Store8(double* p, __m512d v) { _mm512_storeu_pd(p, v); }
SMOOTHL1_AVX512 __m512d Loss8(__m512d xv, __m512d yv, __m512d beta, __m512d hob, __m512d hb) {
  const __m512d d = _mm512_castsi512_pd(_mm512_and_epi64(
      _mm512_castpd_si512(_mm512_sub_pd(xv, yv)), _mm512_set1_epi64(INT64_MAX)));
  const __m512d quad = _mm512_mul_pd(_mm512_mul_pd(d, d), hob);
  const __m512d lin = _mm512_sub_pd(d, hb);
  return _mm512_mask_blend_pd(_mm512_cmp_pd_mask(d, beta, _CMP_LT_OQ), lin, quad);
}

template <typename T>
__attribute__((target("avx2"))) void SumAvx2(const T* __restrict x, const T* __restrict y,
                                             int64_t n, const Consts& c, double* __restrict acc) {
  static_assert(kLanes == 8, "two 4-lane accumulators");
  const __m256d beta = _mm256_set1_pd(c.beta), hob = _mm256_set1_pd(c.half_over_beta);
  const __m256d hb = _mm256_set1_pd(c.half_beta);
  __m256d a0 = _mm256_loadu_pd(acc), a1 = _mm256_loadu_pd(acc + 4);
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    PrefetchAhead(x + i);
    PrefetchAhead(y + i);
    a0 = _mm256_add_pd(a0, Loss4(Load4(x + i), Load4(y + i), beta, hob, hb));
    a1 = _mm256_add_pd(a1, Loss4(Load4(x + i + 4), Load4(y + i + 4), beta, hob, hb));
  }
  _mm256_storeu_pd(acc, a0);
  _mm256_storeu_pd(acc + 4, a1);
  for (int j = 0; i < n; ++i, ++j) acc[j] += Loss(Load(x[i]), Load(y[i]), c);
}
template <typename T>
__attribute__((target("avx512f"))) void SumAvx512(const T* __restrict x, const T* __restrict y,
                                                  int64_t n, const Consts& c,
                                                  double* __restrict acc) {
  static_assert(kLanes == 8, "one 8-lane accumulator");
  const __m512d beta = _mm512_set1_pd(c.beta), hob = _mm512_set1_pd(c.half_over_beta);
  const __m512d hb = _mm512_set1_pd(c.half_beta);
  __m512d a = _mm512_loadu_pd(acc);
  int64_t i = 0;
  for (; i + 2 * kLanes <= n; i += 2 * kLanes) {  // unrolled; same order of additions
    PrefetchAhead(x + i);
    PrefetchAhead(y + i);
    a = _mm512_add_pd(a, Loss8(Load8(x + i), Load8(y + i), beta, hob, hb));
    a = _mm512_add_pd(a, Loss8(Load8(x + i + 8), Load8(y + i + 8), beta, hob, hb));
  }
  for (; i + kLanes <= n; i += kLanes) {
    a = _mm512_add_pd(a, Loss8(Load8(x + i), Load8(y + i), beta, hob, hb));
  }
  _mm512_storeu_pd(acc, a);
  for (int j = 0; i < n; ++i, ++j) acc[j] += Loss(Load(x[i]), Load(y[i]), c);
}
template <typename T>
void ElemSse2(const T* __restrict x, const T* __restrict y, T* __restrict out, int64_t n,
              const Consts& c) {
  ElemBody<2>(x, y, out, n, c);
}
template <typename T>
__attribute__((target("avx2"))) void ElemAvx2(const T* __restrict x, const T* __restrict y,
                                              T* __restrict out, int64_t n, const Consts& c) {
  ElemBody<4>(x, y, out, n, c);
}
template <typename T>
__attribute__((target("avx512f"))) void ElemAvx512(const T* __restrict x, const T* __restrict y,
                                                   T* __restrict out, int64_t n,
                                                   const Consts& c) {
  const __m512d beta = _mm512_set1_pd(c.beta), hob = _mm512_set1_pd(c.half_over_beta);
  const __m512d hb = _mm512_set1_pd(c.half_beta);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    PrefetchAhead(x + i);
    PrefetchAhead(y + i);
    Store8(out + i, Loss8(Load8(x + i), Load8(y + i), beta, hob, hb));
  }
  for (; i < n; ++i) out[i] = Store<T>(Loss(Load(x[i]), Load(y[i]), c));
}

#pragma GCC diagnostic pop

int DetectIsa() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return 2;
  if (__builtin_cpu_supports("avx2")) return 1;
  return 0;
}
std::atomic<int> g_isa{-1};  // -1: not detected yet
inline int Isa() {
  int isa = g_isa.load(std::memory_order_relaxed);
  if (isa < 0) {
    isa = DetectIsa();
    g_isa.store(isa, std::memory_order_relaxed);
  }
  return isa;
}

template <typename T>
void SumContigIsa(const T* __restrict x, const T* __restrict y, int64_t n, const Consts& c,
                  double* __restrict acc) {
  switch (Isa()) {
    case 2: SumAvx512(x, y, n, c, acc); return;
    case 1: SumAvx2(x, y, n, c, acc); return;
    default: SumSse2(x, y, n, c, acc); return;
  }
}
template <typename T>
void ElemContigIsa(const T* __restrict x, const T* __restrict y, T* __restrict out, int64_t n,
                   const Consts& c) {
  switch (Isa()) {
    case 2: ElemAvx512(x, y, out, n, c); return;
    case 1: ElemAvx2(x, y, out, n, c); return;
    default: ElemSse2(x, y, out, n, c); return;
  }
}

template <>
void SumContig<float>(const float* __restrict x, const float* __restrict y, int64_t n,
                      const Consts& c, double* __restrict acc) {
  SumContigIsa(x, y, n, c, acc);
}
template <>
void SumContig<double>(const double* __restrict x, const double* __restrict y, int64_t n,
                       const Consts& c, double* __restrict acc) {
  SumContigIsa(x, y, n, c, acc);
}
template <>
void ElemContig<float>(const float* __restrict x, const float* __restrict y,
                       float* __restrict out, int64_t n, const Consts& c) {
  ElemContigIsa(x, y, out, n, c);
}
template <>
void ElemContig<double>(const double* __restrict x, const double* __restrict y,
                        double* __restrict out, int64_t n, const Consts& c) {
  ElemContigIsa(x, y, out, n, c);
}
#endif

template <typename T>
void SumStrided(const T* x, int64_t sx, const T* y, int64_t sy, int64_t n, const Consts& c,
                double* __restrict acc) {
  double a[kLanes];
  for (int j = 0; j < kLanes; ++j) a[j] = acc[j];
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) a[j] += Loss(Load(x[(i + j) * sx]), Load(y[(i + j) * sy]), c);
  }
  for (int j = 0; i < n; ++i, ++j) a[j] += Loss(Load(x[i * sx]), Load(y[i * sy]), c);
  for (int j = 0; j < kLanes; ++j) acc[j] = a[j];
}

// Visit the output flat range [start, end) of a broadcast plan as runs along the innermost
// (coalesced) dimension: visit(x_ptr, y_ptr, run_length, flat_offset_of_run).
template <typename T, typename Visit>
void ForEachRun(const T* x, const T* y, const BroadcastPlan& p, int64_t start, int64_t end,
                Visit&& visit) {
  const int r = p.rank;
  int64_t idx[kMaxRank];
  int64_t rem = start, xo = 0, yo = 0;
  for (int d = r - 1; d >= 0; --d) {
    idx[d] = rem % p.dims[d];
    rem /= p.dims[d];
    xo += idx[d] * p.x_stride[d];
    yo += idx[d] * p.y_stride[d];
  }
  int64_t flat = start;
  const int last = r - 1;
  while (flat < end) {
    const int64_t len = std::min(p.dims[last] - idx[last], end - flat);
    visit(x + xo, y + yo, len, flat);
    flat += len;
    // Advance the multi-index by len along the innermost dim, carrying outwards.
    idx[last] += len;
    xo += len * p.x_stride[last];
    yo += len * p.y_stride[last];
    for (int d = last; d > 0 && idx[d] == p.dims[d]; --d) {
      xo -= idx[d] * p.x_stride[d];
      yo -= idx[d] * p.y_stride[d];
      idx[d] = 0;
      ++idx[d - 1];
      xo += p.x_stride[d - 1];
      yo += p.y_stride[d - 1];
    }
  }
}

template <typename T>
double BlockSum(const T* x, const T* y, const BroadcastPlan& p, int64_t start, int64_t end,
                const Consts& c) {
  double acc[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
  if (p.contiguous()) {
    SumContig(x + start, y + start, end - start, c, acc);
  } else {
    const int64_t sx = p.x_stride[p.rank - 1], sy = p.y_stride[p.rank - 1];
    ForEachRun(x, y, p, start, end, [&](const T* xs, const T* ys, int64_t n, int64_t) {
      if (sx == 1 && sy == 1) {
        SumContig(xs, ys, n, c, acc);
      } else {
        SumStrided(xs, sx, ys, sy, n, c, acc);
      }
    });
  }
  return CombineLanes(acc);
}

template <typename T>
void BlockElem(const T* x, const T* y, T* out, const BroadcastPlan& p, int64_t start,
               int64_t end, const Consts& c) {
  if (p.contiguous()) {
    ElemContig(x + start, y + start, out + start, end - start, c);
    return;
  }
  const int64_t sx = p.x_stride[p.rank - 1], sy = p.y_stride[p.rank - 1];
  ForEachRun(x, y, p, start, end, [&](const T* xs, const T* ys, int64_t n, int64_t flat) {
    if (sx == 1 && sy == 1) {
      ElemContig(xs, ys, out + flat, n, c);
    } else {
      ElemStrided(xs, sx, ys, sy, out + flat, n, c);
    }
  });
}

// Pairwise sum of v[0..n) in a fixed order.
double PairwiseSum(const double* v, int64_t n) {
  if (n <= 0) return 0.0;
  if (n == 1) return v[0];
  const int64_t h = n / 2;
  return PairwiseSum(v, h) + PairwiseSum(v + h, n - h);
}

template <typename T>
struct Task {
  const T* x;
  const T* y;
  T* out;  // 'none' only
  const BroadcastPlan* plan;
  const Consts* consts;
  double* partial;  // reductions only: one per block
  int64_t nblocks;
};

// One thread-pool task covers kTaskBlocks consecutive blocks (fewer, larger scheduling units;
// the results are still stored per block, so the grouping cannot change them).
constexpr int64_t kTaskBlocks = 4;

inline size_t NumTasks(int64_t nblocks) {
  return static_cast<size_t>((nblocks + kTaskBlocks - 1) / kTaskBlocks);
}

// Calls fn(block, start, end) for the blocks of thread-pool task `task`.
template <typename T, typename Fn>
void ForTaskBlocks(const Task<T>& t, size_t task, Fn&& fn) {
  const int64_t b0 = static_cast<int64_t>(task) * kTaskBlocks;
  const int64_t b1 = std::min(b0 + kTaskBlocks, t.nblocks);
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t start = b * kBlock;
    fn(b, start, std::min(start + kBlock, t.plan->numel));
  }
}

template <typename T>
void RunElemTask(void* data, size_t task) {
  const auto& t = *static_cast<const Task<T>*>(data);
  ForTaskBlocks(t, task, [&t](int64_t, int64_t start, int64_t end) {
    BlockElem(t.x, t.y, t.out, *t.plan, start, end, *t.consts);
  });
}

template <typename T>
void RunSumTask(void* data, size_t task) {
  const auto& t = *static_cast<const Task<T>*>(data);
  ForTaskBlocks(t, task, [&t](int64_t b, int64_t start, int64_t end) {
    t.partial[b] = BlockSum(t.x, t.y, *t.plan, start, end, *t.consts);
  });
}

void Run(const Parallel& par, void (*fn)(void*, size_t), size_t total, void* data) {
  if (total == 0) return;
  if (total == 1 || par.run == nullptr) {
    for (size_t i = 0; i < total; ++i) fn(data, i);
    return;
  }
  par.run(par.ctx, fn, total, data);
}

// Block sums live on the stack up to this many blocks (kBlock * 1024 = 2^24 elements);
// larger inputs allocate once per call, which is negligible next to reading 2^24+ elements.
constexpr int64_t kStackBlocks = 1024;

}  // namespace

int SetIsaForTesting(int level) {
#ifdef SMOOTHL1_ISA_DISPATCH
  const int best = DetectIsa();
  const int use = level < 0 || level > best ? best : level;
  g_isa.store(use, std::memory_order_relaxed);
  return use;
#else
  (void)level;
  return 0;
#endif
}

template <typename T>
bool SmoothL1Sum(const T* x, const T* y, const BroadcastPlan& plan, const Attrs& attrs,
                 const Parallel& parallel, double* sum) {
  const Consts c(attrs);
  const int64_t nblocks = (plan.numel + kBlock - 1) / kBlock;
  if (nblocks <= 1) {  // small-N path: no scratch, no thread pool
    *sum = nblocks == 0 ? 0.0 : BlockSum(x, y, plan, 0, plan.numel, c);
    return true;
  }
  double stack_partial[kStackBlocks];
  std::unique_ptr<double[]> heap_partial;
  double* partial = stack_partial;
  if (nblocks > kStackBlocks) {
    heap_partial.reset(new (std::nothrow) double[static_cast<size_t>(nblocks)]);
    if (!heap_partial) return false;
    partial = heap_partial.get();
  }
  Task<T> task{x, y, nullptr, &plan, &c, partial, nblocks};
  Run(parallel, &RunSumTask<T>, NumTasks(nblocks), &task);
  *sum = PairwiseSum(partial, nblocks);
  return true;
}

template <typename T>
bool SmoothL1Forward(const T* x, const T* y, T* out, const BroadcastPlan& plan,
                     const Attrs& attrs, const Parallel& parallel) {
  if (attrs.reduction == Reduction::kNone) {
    const Consts c(attrs);
    const int64_t nblocks = (plan.numel + kBlock - 1) / kBlock;
    Task<T> task{x, y, out, &plan, &c, nullptr, nblocks};
    Run(parallel, &RunElemTask<T>, NumTasks(nblocks), &task);
    return true;
  }
  double sum = 0.0;
  if (!SmoothL1Sum(x, y, plan, attrs, parallel, &sum)) return false;
  // 'mean' of an empty input is 0/0 = NaN, as SPEC requires.
  const double value =
      attrs.reduction == Reduction::kMean ? sum / static_cast<double>(plan.numel) : sum;
  out[0] = Store<T>(value);
  return true;
}

#define SMOOTHL1_INSTANTIATE(T)                                                              \
  template bool SmoothL1Forward<T>(const T*, const T*, T*, const BroadcastPlan&,           \
                                   const Attrs&, const Parallel&);                         \
  template bool SmoothL1Sum<T>(const T*, const T*, const BroadcastPlan&, const Attrs&,     \
                               const Parallel&, double*);

SMOOTHL1_INSTANTIATE(float)
SMOOTHL1_INSTANTIATE(double)
SMOOTHL1_INSTANTIATE(Half)
SMOOTHL1_INSTANTIATE(BFloat16)

#undef SMOOTHL1_INSTANTIATE

}  // namespace cpu
}  // namespace onnx_smoothl1
