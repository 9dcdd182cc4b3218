// SmoothL1Loss / HuberLoss CPU kernels: see smooth_l1_cpu.h for the numerics and the
// determinism design.
#include "smooth_l1_cpu.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <type_traits>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
#if defined(__aarch64__)
#include <arm_neon.h>
// NEON intrinsics where GCC's generic vector code lowers badly on aarch64 (2-wide
// float<->double conversions go through scalar fcvt and GPR moves; |x - y| is an AND with a
// mask instead of fabd). -DSMOOTHL1_NEON_GENERIC builds the plain vector-extension code
// instead, which benchmarks/aarch64_insns.py compares against (docs/kernels.md, "aarch64").
#if !defined(SMOOTHL1_NEON_GENERIC)
#define SMOOTHL1_NEON_INTRINSICS 1
#endif
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

// ---------------------------------------------------------------------------------------
// Compute types and element loads / stores.

// The type each loss computes its element formula in, per storage type T (header comment):
// SmoothL1Loss always double; HuberLoss torch's: float for float32 / float16 / bfloat16,
// double for float64.
template <Loss L, typename T>
struct ComputeType {
  using type = double;
};
template <>
struct ComputeType<Loss::kHuber, float> {
  using type = float;
};
template <>
struct ComputeType<Loss::kHuber, Half> {
  using type = float;
};
template <>
struct ComputeType<Loss::kHuber, BFloat16> {
  using type = float;
};
template <Loss L, typename T>
using Compute = typename ComputeType<L, T>::type;

// Exact widening of a stored element to the compute type C (C is never narrower than T).
template <typename C>
inline C LoadAs(float v) {
  return static_cast<C>(v);
}
template <typename C>
inline C LoadAs(double v) {
  static_assert(std::is_same<C, double>::value, "double elements compute in double");
  return v;
}
template <typename C>
inline C LoadAs(Half v) {
  return static_cast<C>(ToDouble(v));  // exact in float too
}
template <typename C>
inline C LoadAs(BFloat16 v) {
  return static_cast<C>(ToDouble(v));
}

// One rounding from double (which holds every compute-type value exactly) to T.
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

// ---------------------------------------------------------------------------------------
// The element formulas: the only place where SmoothL1Loss and HuberLoss differ.

// The formula's three constants in the compute type C, computed once per call from the
// validated attributes (no division on the hot path, none at all when beta == 0):
//   SmoothL1Loss: p0 = beta,  p1 = 0.5 / beta (0 when beta == 0), p2 = 0.5 * beta
//   HuberLoss:    p0 = delta, p1 = 0.5,                           p2 = 0.5 * delta
// (torch's delta_val_times_half: delta * 0.5 in double, then converted to C).
template <Loss L, typename C>
struct Consts {
  C p0, p1, p2;
  explicit Consts(const Attrs& a) {
    if constexpr (L == Loss::kSmoothL1) {
      static_assert(std::is_same<C, double>::value, "SmoothL1Loss computes in double");
      p0 = a.beta_d();
      p1 = a.half_over_beta();
      p2 = a.half_beta();
    } else {
      p0 = static_cast<C>(a.delta);
      p1 = static_cast<C>(0.5);
      p2 = static_cast<C>(0.5 * static_cast<double>(a.delta));
    }
  }
};
template <Loss L, typename T>
using ConstsFor = Consts<L, Compute<L, T>>;

// The loss of d = |x - y| for a scalar or a GCC vector V (p0..p2 then splatted). Both sides
// are computed and selected, so the compiler emits a blend. NaN fails `d < p0` and propagates
// through the second branch.
//   SmoothL1Loss: d < beta ? (d * d) * (0.5/beta) : d - 0.5*beta. With beta == 0, d < 0 is
//                 never true and d - 0.0 == d exactly.
//   HuberLoss:    d < delta ? (0.5 * d) * d : delta * (d - 0.5*delta), SPEC's and torch's
//                 formula in the order its scalar loop computes it (torch's vectorised loop
//                 squares first, (d * d) * 0.5: the same value unless d * d is subnormal, where
//                 that rounds twice).
template <Loss L>
struct Formula {
  template <typename V>
  static inline __attribute__((always_inline)) V Apply(V d, V p0, V p1, V p2) {
    if constexpr (L == Loss::kSmoothL1) {
      const V quad = d * d * p1;
      const V lin = d - p2;
      return d < p0 ? quad : lin;
    } else {
      const V quad = p1 * d * d;
      const V lin = p0 * (d - p2);
      return d < p0 ? quad : lin;
    }
  }
};

template <Loss L, typename C>
inline C LossOf(C x, C y, const Consts<L, C>& c) {
  return Formula<L>::Apply(std::fabs(x - y), c.p0, c.p1, c.p2);
}

// The loss of one stored element pair, exactly as a double (sums add these).
template <Loss L, typename T>
inline double LossD(T x, T y, const ConstsFor<L, T>& c) {
  using C = Compute<L, T>;
  return static_cast<double>(LossOf<L, C>(LoadAs<C>(x), LoadAs<C>(y), c));
}

// The loss of one stored element pair, rounded once to T ('none').
template <Loss L, typename T>
inline T LossT(T x, T y, const ConstsFor<L, T>& c) {
  return Store<T>(LossD<L>(x, y, c));
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

// ---------------------------------------------------------------------------------------
// Portable loops (every type; float16 / bfloat16 always take these).

// On aarch64 the portable contiguous loops stay functions of their own (called once per run
// of up to kBlock elements), which benchmarks/aarch64_insns.py finds by name.
#if defined(__aarch64__)
#define SMOOTHL1_A64_NOINLINE __attribute__((noinline))
#else
#define SMOOTHL1_A64_NOINLINE
#endif

template <Loss L, typename T>
SMOOTHL1_A64_NOINLINE void ElemContigPortable(const T* __restrict x, const T* __restrict y, T* __restrict out,
                        int64_t n, const ConstsFor<L, T>& c) {
  for (int64_t i = 0; i < n; ++i) out[i] = LossT<L>(x[i], y[i], c);
}

template <Loss L, typename T>
void ElemStrided(const T* x, int64_t sx, const T* y, int64_t sy, T* __restrict out, int64_t n,
                 const ConstsFor<L, T>& c) {
  for (int64_t i = 0; i < n; ++i) out[i] = LossT<L>(x[i * sx], y[i * sy], c);
}

// Adds the losses of n elements into the kLanes accumulators ``acc`` (lane = i % kLanes
// for the full groups of kLanes, then the tail from lane 0).
template <Loss L, typename T>
SMOOTHL1_A64_NOINLINE void SumContigPortable(const T* __restrict x, const T* __restrict y, int64_t n,
                       const ConstsFor<L, T>& c, double* __restrict acc) {
  double a[kLanes];
  for (int j = 0; j < kLanes; ++j) a[j] = acc[j];
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) a[j] += LossD<L>(x[i + j], y[i + j], c);
  }
  for (int j = 0; i < n; ++i, ++j) a[j] += LossD<L>(x[i], y[i], c);
  for (int j = 0; j < kLanes; ++j) acc[j] = a[j];
}

template <Loss L, typename T>
void SumStrided(const T* x, int64_t sx, const T* y, int64_t sy, int64_t n,
                const ConstsFor<L, T>& c, double* __restrict acc) {
  double a[kLanes];
  for (int j = 0; j < kLanes; ++j) a[j] = acc[j];
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) a[j] += LossD<L>(x[(i + j) * sx], y[(i + j) * sy], c);
  }
  for (int j = 0; i < n; ++i, ++j) a[j] += LossD<L>(x[i * sx], y[i * sy], c);
  for (int j = 0; j < kLanes; ++j) acc[j] = a[j];
}

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__) || defined(__aarch64__))
// float / double on x86: the same arithmetic lane by lane, written with GCC/Clang vector
// extensions (the intrinsic types are such vectors too, so Formula<L>::Apply runs on them
// unchanged) so it is vectorised whatever the auto-vectoriser decides, in three widths
// picked at run time (SSE2 baseline, AVX2, AVX-512F: the library is built on the user's
// machine without -march, so the wider ones are compiled with target attributes). The
// kLanes accumulators are the same 8 double lanes in every width, element i + j of a group
// of 8 always goes to lane j, and no FMA is formed (-ffp-contract=off), so every width gives
// bitwise the portable code's result. Float compute (HuberLoss on float32) runs the formula
// on float vectors twice as wide and widens the losses exactly into the double lanes.
// On aarch64 the same 128-bit loops (SumBody128 / ElemBodyD<2> / ElemBodyF<F4>) are the NEON
// variant: NEON (ASIMD) is part of the aarch64 baseline, so there is nothing to detect; level
// 0 there is the portable scalar code, which the C++ test compares the NEON loops against.
#define SMOOTHL1_ISA_DISPATCH 1

// |v| of a GCC vector: clear the sign bits.
template <typename V>
inline __attribute__((always_inline)) V AbsV(V v) {
  using I = decltype(v < v);
  using E = std::remove_cv_t<std::remove_reference_t<decltype(I{}[0])>>;
  return reinterpret_cast<V>(reinterpret_cast<I>(v) & (I{} + std::numeric_limits<E>::max()));
}

template <typename V, typename S>
inline __attribute__((always_inline)) V Splat(S s) {
  V v{};
  for (size_t k = 0; k < sizeof(V) / sizeof(S); ++k) v[k] = s;
  return v;
}

// The formula's constants as vectors of V.
template <typename V>
struct VConsts {
  V p0, p1, p2;
  template <Loss L, typename C>
  explicit VConsts(const Consts<L, C>& c)
      : p0(Splat<V>(c.p0)), p1(Splat<V>(c.p1)), p2(Splat<V>(c.p2)) {}
};

// |x - y| of two vectors. NEON's fabd is |x - y| rounded once, as fsub then fabs: the
// absolute value of the rounded difference (ARM's FPAbs(FPSub(x, y)), NaNs included).
template <typename V>
inline __attribute__((always_inline)) V AbsDiff(V x, V y) {
#if defined(SMOOTHL1_NEON_INTRINSICS)
  using E = std::remove_cv_t<std::remove_reference_t<decltype(x[0])>>;
  if constexpr (sizeof(V) == 16 && std::is_same<E, double>::value) {
    return reinterpret_cast<V>(
        vabdq_f64(reinterpret_cast<float64x2_t>(x), reinterpret_cast<float64x2_t>(y)));
  } else if constexpr (sizeof(V) == 16 && std::is_same<E, float>::value) {
    return reinterpret_cast<V>(
        vabdq_f32(reinterpret_cast<float32x4_t>(x), reinterpret_cast<float32x4_t>(y)));
  }
#endif
  return AbsV(x - y);
}

template <Loss L, typename V>
inline __attribute__((always_inline)) V LossV(V x, V y, const VConsts<V>& c) {
  return Formula<L>::Apply(AbsDiff(x, y), c.p0, c.p1, c.p2);
}

template <typename V, typename T>
inline __attribute__((always_inline)) V LoadRaw(const T* p) {  // same element type
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <typename T, typename V>
inline __attribute__((always_inline)) void StoreRaw(T* p, V v) {
  std::memcpy(p, &v, sizeof v);
}

template <int W>
struct Vec;
template <>
struct Vec<2> {
  typedef double D __attribute__((vector_size(16)));
  typedef float F __attribute__((vector_size(8)));
};
template <>
struct Vec<4> {
  typedef double D __attribute__((vector_size(32)));
  typedef float F __attribute__((vector_size(16)));
};
template <>
struct Vec<8> {
  typedef double D __attribute__((vector_size(64)));
  typedef float F __attribute__((vector_size(32)));
};

// W stored elements as W doubles (double compute).
template <int W>
inline __attribute__((always_inline)) typename Vec<W>::D LoadV(const float* p) {
#if defined(__SSE2__)
  if constexpr (W == 2) {  // GCC lowers the generic 2-wide conversion to two cvtss2sd
    return reinterpret_cast<typename Vec<W>::D>(
        _mm_cvtps_pd(_mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)))));
  }
#elif defined(SMOOTHL1_NEON_INTRINSICS)
  if constexpr (W == 2) return reinterpret_cast<typename Vec<W>::D>(vcvt_f64_f32(vld1_f32(p)));
#endif
  typename Vec<W>::F f;
  std::memcpy(&f, p, sizeof f);
  return __builtin_convertvector(f, typename Vec<W>::D);
}
template <int W>
inline __attribute__((always_inline)) typename Vec<W>::D LoadV(const double* p) {
  return LoadRaw<typename Vec<W>::D>(p);
}
template <int W>
inline __attribute__((always_inline)) void StoreV(float* p, typename Vec<W>::D v) {
#if defined(SMOOTHL1_NEON_INTRINSICS)
  if constexpr (W == 2) {  // fcvtn; the same rounding as the scalar conversion
    vst1_f32(p, vcvt_f32_f64(reinterpret_cast<float64x2_t>(v)));
    return;
  }
#endif
  const typename Vec<W>::F f = __builtin_convertvector(v, typename Vec<W>::F);
  std::memcpy(p, &f, sizeof f);
}
template <int W>
inline __attribute__((always_inline)) void StoreV(double* p, typename Vec<W>::D v) {
  std::memcpy(p, &v, sizeof v);
}

// Plain float vectors for float compute (the intrinsic types carry may_alias, which template
// arguments drop with a warning).
typedef float F4 __attribute__((vector_size(16)));
typedef float F8 __attribute__((vector_size(32)));
typedef float F16 __attribute__((vector_size(64)));
typedef Vec<4>::D D4;
typedef Vec<8>::D D8;

// The low and high halves of 4 float losses, widened exactly to 2 doubles each.
#if defined(__SSE2__)
inline __attribute__((always_inline)) Vec<2>::D WidenLo(__m128 l) {
  return reinterpret_cast<Vec<2>::D>(_mm_cvtps_pd(l));
}
inline __attribute__((always_inline)) Vec<2>::D WidenHi(__m128 l) {
  return reinterpret_cast<Vec<2>::D>(_mm_cvtps_pd(_mm_movehl_ps(l, l)));
}
#define SMOOTHL1_F4 __m128
#elif defined(SMOOTHL1_NEON_INTRINSICS)  // fcvtl / fcvtl2
inline __attribute__((always_inline)) Vec<2>::D WidenLo(float32x4_t l) {
  return reinterpret_cast<Vec<2>::D>(vcvt_f64_f32(vget_low_f32(l)));
}
inline __attribute__((always_inline)) Vec<2>::D WidenHi(float32x4_t l) {
  return reinterpret_cast<Vec<2>::D>(vcvt_high_f64_f32(l));
}
#define SMOOTHL1_F4 float32x4_t
#else  // generic vector extensions
inline __attribute__((always_inline)) Vec<2>::D WidenLo(F4 l) {
  return __builtin_convertvector(__builtin_shufflevector(l, l, 0, 1), Vec<2>::D);
}
inline __attribute__((always_inline)) Vec<2>::D WidenHi(F4 l) {
  return __builtin_convertvector(__builtin_shufflevector(l, l, 2, 3), Vec<2>::D);
}
#define SMOOTHL1_F4 F4
#endif

// --- 128-bit (SSE2, the x86 baseline; NEON on aarch64): 2-double vectors, 4 of them make
// the 8 lanes; float compute on 4-float vectors.

template <Loss L, typename T>
inline __attribute__((always_inline)) void SumBody128(const T* __restrict x,
                                                       const T* __restrict y, int64_t n,
                                                       const ConstsFor<L, T>& c,
                                                       double* __restrict acc) {
  using D = Vec<2>::D;
  constexpr int K = kLanes / 2;
  D a[K];
  std::memcpy(a, acc, sizeof a);
  int64_t i = 0;
  if constexpr (std::is_same<Compute<L, T>, float>::value) {
    const VConsts<F4> v(c);
    for (; i + kLanes <= n; i += kLanes) {
      PrefetchAhead(x + i);
      PrefetchAhead(y + i);
      for (int h = 0; h < 2; ++h) {
        const SMOOTHL1_F4 l = reinterpret_cast<SMOOTHL1_F4>(
            LossV<L>(LoadRaw<F4>(x + i + 4 * h), LoadRaw<F4>(y + i + 4 * h), v));
        a[2 * h] += WidenLo(l);
        a[2 * h + 1] += WidenHi(l);
      }
    }
  } else {
    const VConsts<D> v(c);
    for (; i + kLanes <= n; i += kLanes) {
      PrefetchAhead(x + i);
      PrefetchAhead(y + i);
      for (int k = 0; k < K; ++k) a[k] += LossV<L>(LoadV<2>(x + i + 2 * k), LoadV<2>(y + i + 2 * k), v);
    }
  }
  std::memcpy(acc, a, sizeof a);
  for (int j = 0; i < n; ++i, ++j) acc[j] += LossD<L>(x[i], y[i], c);
}

// 'none' over a contiguous run with double-compute vectors of W (SSE2 and AVX2 widths).
template <int W, Loss L, typename T>
inline __attribute__((always_inline)) void ElemBodyD(const T* __restrict x,
                                                     const T* __restrict y, T* __restrict out,
                                                     int64_t n, const ConstsFor<L, T>& c) {
  const VConsts<typename Vec<W>::D> v(c);
  int64_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    PrefetchAhead(x + i);
    PrefetchAhead(y + i);
    StoreV<W>(out + i, LossV<L>(LoadV<W>(x + i), LoadV<W>(y + i), v));
    StoreV<W>(out + i + W, LossV<L>(LoadV<W>(x + i + W), LoadV<W>(y + i + W), v));
  }
  for (; i < n; ++i) out[i] = LossT<L>(x[i], y[i], c);
}

// 'none' over a contiguous float run in float compute, with float vectors FV.
template <typename FV, Loss L>
inline __attribute__((always_inline)) void ElemBodyF(const float* __restrict x,
                                                     const float* __restrict y,
                                                     float* __restrict out, int64_t n,
                                                     const ConstsFor<L, float>& c) {
  constexpr int64_t W = sizeof(FV) / sizeof(float);
  const VConsts<FV> v(c);
  int64_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    PrefetchAhead(x + i);
    PrefetchAhead(y + i);
    StoreRaw(out + i, LossV<L>(LoadRaw<FV>(x + i), LoadRaw<FV>(y + i), v));
    StoreRaw(out + i + W, LossV<L>(LoadRaw<FV>(x + i + W), LoadRaw<FV>(y + i + W), v));
  }
  for (; i < n; ++i) out[i] = LossT<L>(x[i], y[i], c);
}

#if defined(__x86_64__) || defined(__i386__)
template <Loss L, typename T>
void SumSse2(const T* __restrict x, const T* __restrict y, int64_t n, const ConstsFor<L, T>& c,
             double* __restrict acc) {
  SumBody128<L>(x, y, n, c, acc);
}
template <Loss L, typename T>
void ElemSse2(const T* __restrict x, const T* __restrict y, T* __restrict out, int64_t n,
              const ConstsFor<L, T>& c) {
  if constexpr (std::is_same<Compute<L, T>, float>::value) {
    ElemBodyF<F4, L>(x, y, out, n, c);
  } else {
    ElemBodyD<2, L>(x, y, out, n, c);
  }
}

// --- AVX2 / AVX-512F: loads and widening with intrinsics (GCC lowers the generic wide
// float->double conversions to halves plus inserts), arithmetic through Formula<L>::Apply on
// the intrinsic vector types. Same lanes and operations as the portable code.
// GCC 12's _mm512_cvtps_pd uses _mm512_undefined_pd(), which -Wmaybe-uninitialized flags.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define SMOOTHL1_AVX2 __attribute__((target("avx2"), always_inline)) inline
#define SMOOTHL1_AVX512 __attribute__((target("avx512f"), always_inline)) inline
SMOOTHL1_AVX2 D4 Load4(const float* p) {
  return reinterpret_cast<D4>(_mm256_cvtps_pd(_mm_loadu_ps(p)));
}
SMOOTHL1_AVX2 D4 Load4(const double* p) { return LoadRaw<D4>(p); }
SMOOTHL1_AVX512 D8 Load8(const float* p) {
  return reinterpret_cast<D8>(_mm512_cvtps_pd(_mm256_loadu_ps(p)));
}
SMOOTHL1_AVX512 D8 Load8(const double* p) { return LoadRaw<D8>(p); }
SMOOTHL1_AVX512 void Store8(float* p, D8 v) {
  _mm256_storeu_ps(p, _mm512_cvtpd_ps(reinterpret_cast<__m512d>(v)));
}
SMOOTHL1_AVX512 void Store8(double* p, D8 v) { StoreRaw(p, v); }

template <Loss L, typename T>
__attribute__((target("avx2"))) void SumAvx2(const T* __restrict x, const T* __restrict y,
                                             int64_t n, const ConstsFor<L, T>& c,
                                             double* __restrict acc) {
  static_assert(kLanes == 8, "two 4-lane accumulators");
  __m256d a0 = _mm256_loadu_pd(acc), a1 = _mm256_loadu_pd(acc + 4);
  int64_t i = 0;
  if constexpr (std::is_same<Compute<L, T>, float>::value) {
    const VConsts<F8> v(c);
    for (; i + kLanes <= n; i += kLanes) {
      PrefetchAhead(x + i);
      PrefetchAhead(y + i);
      const __m256 l = reinterpret_cast<__m256>(LossV<L>(LoadRaw<F8>(x + i), LoadRaw<F8>(y + i), v));
      a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(l)));
      a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(l, 1)));
    }
  } else {
    const VConsts<D4> v(c);
    for (; i + kLanes <= n; i += kLanes) {
      PrefetchAhead(x + i);
      PrefetchAhead(y + i);
      a0 = _mm256_add_pd(a0, reinterpret_cast<__m256d>(LossV<L>(Load4(x + i), Load4(y + i), v)));
      a1 = _mm256_add_pd(a1, reinterpret_cast<__m256d>(LossV<L>(Load4(x + i + 4), Load4(y + i + 4), v)));
    }
  }
  _mm256_storeu_pd(acc, a0);
  _mm256_storeu_pd(acc + 4, a1);
  for (int j = 0; i < n; ++i, ++j) acc[j] += LossD<L>(x[i], y[i], c);
}

template <Loss L, typename T>
__attribute__((target("avx512f"))) void SumAvx512(const T* __restrict x, const T* __restrict y,
                                                  int64_t n, const ConstsFor<L, T>& c,
                                                  double* __restrict acc) {
  static_assert(kLanes == 8, "one 8-lane accumulator");
  __m512d a = _mm512_loadu_pd(acc);
  int64_t i = 0;
  if constexpr (std::is_same<Compute<L, T>, float>::value) {
    const VConsts<F16> v16(c);
    const VConsts<F8> v8(c);
    for (; i + 2 * kLanes <= n; i += 2 * kLanes) {  // 16 floats; same order of additions
      PrefetchAhead(x + i);
      PrefetchAhead(y + i);
      const __m512 l =
          reinterpret_cast<__m512>(LossV<L>(LoadRaw<F16>(x + i), LoadRaw<F16>(y + i), v16));
      a = _mm512_add_pd(a, _mm512_cvtps_pd(_mm512_castps512_ps256(l)));
      a = _mm512_add_pd(a, _mm512_cvtps_pd(_mm256_castpd_ps(
                               _mm512_extractf64x4_pd(_mm512_castps_pd(l), 1))));
    }
    for (; i + kLanes <= n; i += kLanes) {
      const __m256 l =
          reinterpret_cast<__m256>(LossV<L>(LoadRaw<F8>(x + i), LoadRaw<F8>(y + i), v8));
      a = _mm512_add_pd(a, _mm512_cvtps_pd(l));
    }
  } else {
    const VConsts<D8> v(c);
    for (; i + 2 * kLanes <= n; i += 2 * kLanes) {  // unrolled; same order of additions
      PrefetchAhead(x + i);
      PrefetchAhead(y + i);
      a = _mm512_add_pd(a, reinterpret_cast<__m512d>(LossV<L>(Load8(x + i), Load8(y + i), v)));
      a = _mm512_add_pd(a, reinterpret_cast<__m512d>(LossV<L>(Load8(x + i + 8), Load8(y + i + 8), v)));
    }
    for (; i + kLanes <= n; i += kLanes) {
      a = _mm512_add_pd(a, reinterpret_cast<__m512d>(LossV<L>(Load8(x + i), Load8(y + i), v)));
    }
  }
  _mm512_storeu_pd(acc, a);
  for (int j = 0; i < n; ++i, ++j) acc[j] += LossD<L>(x[i], y[i], c);
}

template <Loss L, typename T>
__attribute__((target("avx2"))) void ElemAvx2(const T* __restrict x, const T* __restrict y,
                                              T* __restrict out, int64_t n,
                                              const ConstsFor<L, T>& c) {
  if constexpr (std::is_same<Compute<L, T>, float>::value) {
    ElemBodyF<F8, L>(x, y, out, n, c);
  } else {
    ElemBodyD<4, L>(x, y, out, n, c);
  }
}

template <Loss L, typename T>
__attribute__((target("avx512f"))) void ElemAvx512(const T* __restrict x, const T* __restrict y,
                                                   T* __restrict out, int64_t n,
                                                   const ConstsFor<L, T>& c) {
  if constexpr (std::is_same<Compute<L, T>, float>::value) {
    ElemBodyF<F16, L>(x, y, out, n, c);
  } else {
    const VConsts<D8> v(c);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
      PrefetchAhead(x + i);
      PrefetchAhead(y + i);
      Store8(out + i, LossV<L>(Load8(x + i), Load8(y + i), v));
    }
    for (; i < n; ++i) out[i] = LossT<L>(x[i], y[i], c);
  }
}

#pragma GCC diagnostic pop

int DetectIsa() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return 2;
  if (__builtin_cpu_supports("avx2")) return 1;
  return 0;
}
#else  // aarch64
// --- NEON: 128-bit vectors, 8 elements per iteration, the 8 double lanes as four 2-double
// accumulators (element i + j of a group of 8 goes to lane j, as everywhere). noinline keeps
// each a function of its own, which benchmarks/aarch64_insns.py finds by name to count the
// instructions of its loop. With -DSMOOTHL1_NEON_GENERIC they run the x86 baseline's
// 128-bit loops in plain vector extensions instead (for that comparison only).
#if defined(SMOOTHL1_NEON_INTRINSICS)
using D2 = Vec<2>::D;
// Four stored elements as two 2-double vectors (float: one 128-bit load, fcvtl / fcvtl2).
inline __attribute__((always_inline)) void Load4D(const float* p, D2& lo, D2& hi) {
  const float32x4_t f = vld1q_f32(p);
  lo = reinterpret_cast<D2>(vcvt_f64_f32(vget_low_f32(f)));
  hi = reinterpret_cast<D2>(vcvt_high_f64_f32(f));
}
inline __attribute__((always_inline)) void Load4D(const double* p, D2& lo, D2& hi) {
  lo = LoadRaw<D2>(p);
  hi = LoadRaw<D2>(p + 2);
}
// Two 2-double vectors stored as four elements (float: fcvtn / fcvtn2, each rounding once
// to nearest even like the scalar conversion, then one 128-bit store).
inline __attribute__((always_inline)) void Store4D(float* p, D2 lo, D2 hi) {
  vst1q_f32(p, vcvt_high_f32_f64(vcvt_f32_f64(reinterpret_cast<float64x2_t>(lo)),
                                 reinterpret_cast<float64x2_t>(hi)));
}
inline __attribute__((always_inline)) void Store4D(double* p, D2 lo, D2 hi) {
  StoreRaw(p, lo);
  StoreRaw(p + 2, hi);
}
#endif

template <Loss L, typename T>
__attribute__((noinline)) void SumNeon(const T* __restrict x, const T* __restrict y, int64_t n,
                                       const ConstsFor<L, T>& c, double* __restrict acc) {
#if defined(SMOOTHL1_NEON_INTRINSICS)
  static_assert(kLanes == 8, "four 2-lane accumulators");
  // Named accumulators, not an array: GCC keeps an array's vectors in memory (two stp per
  // iteration).
  D2 a0 = LoadRaw<D2>(acc), a1 = LoadRaw<D2>(acc + 2), a2 = LoadRaw<D2>(acc + 4),
     a3 = LoadRaw<D2>(acc + 6);
  int64_t i = 0;
  if constexpr (std::is_same<Compute<L, T>, float>::value) {
    const VConsts<F4> v(c);
    for (; i + kLanes <= n; i += kLanes) {
      PrefetchAhead(x + i);
      PrefetchAhead(y + i);
      const float32x4_t l0 =
          reinterpret_cast<float32x4_t>(LossV<L>(LoadRaw<F4>(x + i), LoadRaw<F4>(y + i), v));
      const float32x4_t l1 = reinterpret_cast<float32x4_t>(
          LossV<L>(LoadRaw<F4>(x + i + 4), LoadRaw<F4>(y + i + 4), v));
      a0 += WidenLo(l0);
      a1 += WidenHi(l0);
      a2 += WidenLo(l1);
      a3 += WidenHi(l1);
    }
  } else {
    const VConsts<D2> v(c);
    for (; i + kLanes <= n; i += kLanes) {
      PrefetchAhead(x + i);
      PrefetchAhead(y + i);
      D2 x0, x1, x2, x3, y0, y1, y2, y3;
      Load4D(x + i, x0, x1);
      Load4D(x + i + 4, x2, x3);
      Load4D(y + i, y0, y1);
      Load4D(y + i + 4, y2, y3);
      a0 += LossV<L>(x0, y0, v);
      a1 += LossV<L>(x1, y1, v);
      a2 += LossV<L>(x2, y2, v);
      a3 += LossV<L>(x3, y3, v);
    }
  }
  StoreRaw(acc, a0);
  StoreRaw(acc + 2, a1);
  StoreRaw(acc + 4, a2);
  StoreRaw(acc + 6, a3);
  for (int j = 0; i < n; ++i, ++j) acc[j] += LossD<L>(x[i], y[i], c);
#else
  SumBody128<L>(x, y, n, c, acc);
#endif
}

template <Loss L, typename T>
__attribute__((noinline)) void ElemNeon(const T* __restrict x, const T* __restrict y,
                                        T* __restrict out, int64_t n, const ConstsFor<L, T>& c) {
  if constexpr (std::is_same<Compute<L, T>, float>::value) {
    ElemBodyF<F4, L>(x, y, out, n, c);  // 8 floats per iteration, 128-bit loads and stores
  } else {
#if defined(SMOOTHL1_NEON_INTRINSICS)
    const VConsts<D2> v(c);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
      PrefetchAhead(x + i);
      PrefetchAhead(y + i);
      for (int h = 0; h < 8; h += 4) {
        D2 x0, x1, y0, y1;
        Load4D(x + i + h, x0, x1);
        Load4D(y + i + h, y0, y1);
        Store4D(out + i + h, LossV<L>(x0, y0, v), LossV<L>(x1, y1, v));
      }
    }
    for (; i < n; ++i) out[i] = LossT<L>(x[i], y[i], c);
#else
    ElemBodyD<2, L>(x, y, out, n, c);
#endif
  }
}
int DetectIsa() { return 1; }  // NEON (ASIMD) is baseline on aarch64: no SVE, nothing to detect
#endif  // x86 / aarch64
std::atomic<int> g_isa{-1};  // -1: not detected yet
inline int Isa() {
  int isa = g_isa.load(std::memory_order_relaxed);
  if (isa < 0) {
    isa = DetectIsa();
    g_isa.store(isa, std::memory_order_relaxed);
  }
  return isa;
}

template <Loss L, typename T>
void SumContig(const T* __restrict x, const T* __restrict y, int64_t n, const ConstsFor<L, T>& c,
               double* __restrict acc) {
  if constexpr (std::is_same<T, float>::value || std::is_same<T, double>::value) {
    switch (Isa()) {
#if defined(__x86_64__) || defined(__i386__)
      case 2: SumAvx512<L>(x, y, n, c, acc); return;
      case 1: SumAvx2<L>(x, y, n, c, acc); return;
      default: SumSse2<L>(x, y, n, c, acc); return;
#else
      case 1: SumNeon<L>(x, y, n, c, acc); return;
      default: SumContigPortable<L>(x, y, n, c, acc); return;
#endif
    }
  } else {
    SumContigPortable<L>(x, y, n, c, acc);
  }
}
template <Loss L, typename T>
void ElemContig(const T* __restrict x, const T* __restrict y, T* __restrict out, int64_t n,
                const ConstsFor<L, T>& c) {
  if constexpr (std::is_same<T, float>::value || std::is_same<T, double>::value) {
    switch (Isa()) {
#if defined(__x86_64__) || defined(__i386__)
      case 2: ElemAvx512<L>(x, y, out, n, c); return;
      case 1: ElemAvx2<L>(x, y, out, n, c); return;
      default: ElemSse2<L>(x, y, out, n, c); return;
#else
      case 1: ElemNeon<L>(x, y, out, n, c); return;
      default: ElemContigPortable<L>(x, y, out, n, c); return;
#endif
    }
  } else {
    ElemContigPortable<L>(x, y, out, n, c);
  }
}
#else
template <Loss L, typename T>
void SumContig(const T* __restrict x, const T* __restrict y, int64_t n, const ConstsFor<L, T>& c,
               double* __restrict acc) {
  SumContigPortable<L>(x, y, n, c, acc);
}
template <Loss L, typename T>
void ElemContig(const T* __restrict x, const T* __restrict y, T* __restrict out, int64_t n,
                const ConstsFor<L, T>& c) {
  ElemContigPortable<L>(x, y, out, n, c);
}
#endif

// ---------------------------------------------------------------------------------------
// Blocks, broadcasting, tasks: shared by both losses.

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

template <Loss L, typename T>
double BlockSum(const T* x, const T* y, const BroadcastPlan& p, int64_t start, int64_t end,
                const ConstsFor<L, T>& c) {
  double acc[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
  if (p.contiguous()) {
    SumContig<L>(x + start, y + start, end - start, c, acc);
  } else {
    const int64_t sx = p.x_stride[p.rank - 1], sy = p.y_stride[p.rank - 1];
    ForEachRun(x, y, p, start, end, [&](const T* xs, const T* ys, int64_t n, int64_t) {
      if (sx == 1 && sy == 1) {
        SumContig<L>(xs, ys, n, c, acc);
      } else {
        SumStrided<L>(xs, sx, ys, sy, n, c, acc);
      }
    });
  }
  return CombineLanes(acc);
}

template <Loss L, typename T>
void BlockElem(const T* x, const T* y, T* out, const BroadcastPlan& p, int64_t start,
               int64_t end, const ConstsFor<L, T>& c) {
  if (p.contiguous()) {
    ElemContig<L>(x + start, y + start, out + start, end - start, c);
    return;
  }
  const int64_t sx = p.x_stride[p.rank - 1], sy = p.y_stride[p.rank - 1];
  ForEachRun(x, y, p, start, end, [&](const T* xs, const T* ys, int64_t n, int64_t flat) {
    if (sx == 1 && sy == 1) {
      ElemContig<L>(xs, ys, out + flat, n, c);
    } else {
      ElemStrided<L>(xs, sx, ys, sy, out + flat, n, c);
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

template <Loss L, typename T>
struct Task {
  const T* x;
  const T* y;
  T* out;  // 'none' only
  const BroadcastPlan* plan;
  const ConstsFor<L, T>* consts;
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
template <typename TaskT, typename Fn>
void ForTaskBlocks(const TaskT& t, size_t task, Fn&& fn) {
  const int64_t b0 = static_cast<int64_t>(task) * kTaskBlocks;
  const int64_t b1 = std::min(b0 + kTaskBlocks, t.nblocks);
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t start = b * kBlock;
    fn(b, start, std::min(start + kBlock, t.plan->numel));
  }
}

template <Loss L, typename T>
void RunElemTask(void* data, size_t task) {
  const auto& t = *static_cast<const Task<L, T>*>(data);
  ForTaskBlocks(t, task, [&t](int64_t, int64_t start, int64_t end) {
    BlockElem<L>(t.x, t.y, t.out, *t.plan, start, end, *t.consts);
  });
}

template <Loss L, typename T>
void RunSumTask(void* data, size_t task) {
  const auto& t = *static_cast<const Task<L, T>*>(data);
  ForTaskBlocks(t, task, [&t](int64_t b, int64_t start, int64_t end) {
    t.partial[b] = BlockSum<L>(t.x, t.y, *t.plan, start, end, *t.consts);
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

template <Loss L, typename T>
bool SumImpl(const T* x, const T* y, const BroadcastPlan& plan, const Attrs& attrs,
             const Parallel& parallel, double* sum) {
  const ConstsFor<L, T> c(attrs);
  const int64_t nblocks = (plan.numel + kBlock - 1) / kBlock;
  if (nblocks <= 1) {  // small-N path: no scratch, no thread pool
    *sum = nblocks == 0 ? 0.0 : BlockSum<L>(x, y, plan, 0, plan.numel, c);
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
  Task<L, T> task{x, y, nullptr, &plan, &c, partial, nblocks};
  Run(parallel, &RunSumTask<L, T>, NumTasks(nblocks), &task);
  *sum = PairwiseSum(partial, nblocks);
  return true;
}

template <Loss L, typename T>
bool ForwardImpl(const T* x, const T* y, T* out, const BroadcastPlan& plan, const Attrs& attrs,
                 const Parallel& parallel) {
  if (attrs.reduction == Reduction::kNone) {
    const ConstsFor<L, T> c(attrs);
    const int64_t nblocks = (plan.numel + kBlock - 1) / kBlock;
    Task<L, T> task{x, y, out, &plan, &c, nullptr, nblocks};
    Run(parallel, &RunElemTask<L, T>, NumTasks(nblocks), &task);
    return true;
  }
  double sum = 0.0;
  if (!SumImpl<L>(x, y, plan, attrs, parallel, &sum)) return false;
  // 'mean' of an empty input is 0/0 = NaN, as SPEC requires.
  const double value =
      attrs.reduction == Reduction::kMean ? sum / static_cast<double>(plan.numel) : sum;
  out[0] = Store<T>(value);
  return true;
}

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
bool LossSum(const T* x, const T* y, const BroadcastPlan& plan, const Attrs& attrs,
             const Parallel& parallel, double* sum) {
  return attrs.loss == Loss::kHuber ? SumImpl<Loss::kHuber>(x, y, plan, attrs, parallel, sum)
                                    : SumImpl<Loss::kSmoothL1>(x, y, plan, attrs, parallel, sum);
}

template <typename T>
bool LossForward(const T* x, const T* y, T* out, const BroadcastPlan& plan, const Attrs& attrs,
                 const Parallel& parallel) {
  return attrs.loss == Loss::kHuber
             ? ForwardImpl<Loss::kHuber>(x, y, out, plan, attrs, parallel)
             : ForwardImpl<Loss::kSmoothL1>(x, y, out, plan, attrs, parallel);
}

#define SMOOTHL1_INSTANTIATE(T)                                                              \
  template bool LossForward<T>(const T*, const T*, T*, const BroadcastPlan&, const Attrs&,  \
                               const Parallel&);                                            \
  template bool LossSum<T>(const T*, const T*, const BroadcastPlan&, const Attrs&,          \
                           const Parallel&, double*);

SMOOTHL1_INSTANTIATE(float)
SMOOTHL1_INSTANTIATE(double)
SMOOTHL1_INSTANTIATE(Half)
SMOOTHL1_INSTANTIATE(BFloat16)

#undef SMOOTHL1_INSTANTIATE

}  // namespace cpu
}  // namespace onnx_smoothl1
