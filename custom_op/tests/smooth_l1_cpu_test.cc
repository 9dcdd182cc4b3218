// C++ test of the plain CPU kernel functions (no onnxruntime): conversions, broadcasting,
// the element formulas (SmoothL1Loss and HuberLoss), reductions, and bitwise determinism
// across "thread" schedules and instruction-set variants.
// Run by ctest and by tests/test_kernel_cpu_cxx.py. Prints "N passed, M failed".
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cpu/smooth_l1_cpu.h"
#include "smooth_l1_common.h"

using namespace onnx_smoothl1;
using namespace onnx_smoothl1::cpu;

static int g_pass = 0, g_fail = 0;
#define CHECK(cond, ...)                                   \
  do {                                                     \
    if (cond) {                                            \
      ++g_pass;                                            \
    } else {                                               \
      ++g_fail;                                            \
      std::printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      std::printf(__VA_ARGS__);                            \
      std::printf("\n");                                   \
    }                                                      \
  } while (0)

static uint64_t Bits(double v) {
  uint64_t b;
  std::memcpy(&b, &v, 8);
  return b;
}

// ---- parallel runners (simulate different thread schedules)
static void ReverseRun(void*, void (*fn)(void*, size_t), size_t total, void* data) {
  for (size_t i = total; i-- > 0;) fn(data, i);
}
static void ThreadsRun(void* ctx, void (*fn)(void*, size_t), size_t total, void* data) {
  const int nthreads = *static_cast<int*>(ctx);
  std::atomic<size_t> next{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < nthreads; ++t) {
    pool.emplace_back([&] {
      for (size_t i; (i = next.fetch_add(1)) < total;) fn(data, i);
    });
  }
  for (auto& th : pool) th.join();
}

// ---- reference: the SPEC formula, torch's operation order, in long double
static long double RefLoss(double x, double y, double beta) {
  const long double d = std::fabs(static_cast<long double>(x) - static_cast<long double>(y));
  if (beta == 0.0) return d;
  return d < beta ? 0.5L * d * d / beta : d - 0.5L * beta;
}

// HuberLoss, exact math (long double): d < delta ? d^2 / 2 : delta * (d - delta / 2).
static long double RefHuber(double x, double y, double delta) {
  const long double d = std::fabs(static_cast<long double>(x) - static_cast<long double>(y));
  return d < delta ? 0.5L * d * d : static_cast<long double>(delta) * (d - 0.5L * delta);
}

// HuberLoss as PyTorch's CPU kernel computes it in float (float32, and float16 upcast per
// element): z = |x - y|, z < delta ? (0.5 * z) * z : delta * (z - delta * 0.5), delta and
// delta * 0.5 (taken in double) as floats. The kernel claims these bits for float compute.
static float TorchHuberFloat(float x, float y, float delta) {
  const float z = std::fabs(x - y);
  const float half = static_cast<float>(static_cast<double>(delta) * 0.5);
  return z < delta ? 0.5f * z * z : delta * (z - half);
}

static void TestConversions() {
  // Every half / bfloat16 bit pattern decodes exactly and re-encodes to itself.
  int bad_h = 0, bad_b = 0;
  for (uint32_t b = 0; b < 65536; ++b) {
    const double h = ToDouble(Half{static_cast<uint16_t>(b)});
    const double f = ToDouble(BFloat16{static_cast<uint16_t>(b)});
    if (!std::isnan(h) && HalfFromDouble(h).bits != b) ++bad_h;
    if (std::isnan(h) && (HalfFromDouble(h).bits & 0x7c00u) != 0x7c00u) ++bad_h;
    if (!std::isnan(f) && BFloat16FromDouble(f).bits != b) ++bad_b;
    if (std::isnan(f) && (BFloat16FromDouble(f).bits & 0x7f80u) != 0x7f80u) ++bad_b;
  }
  CHECK(bad_h == 0, "%d half patterns do not round-trip", bad_h);
  CHECK(bad_b == 0, "%d bfloat16 patterns do not round-trip", bad_b);
  CHECK(ToDouble(Half{0x3c00}) == 1.0, "half 1.0");
  CHECK(ToDouble(Half{0x0001}) == std::ldexp(1.0, -24), "smallest half subnormal");
  CHECK(ToDouble(BFloat16{0x3f80}) == 1.0, "bf16 1.0");
  CHECK(HalfFromDouble(65520.0).bits == 0x7c00, "half overflow rounds to inf");
  CHECK(HalfFromDouble(65519.99).bits == 0x7bff, "half max");
  CHECK(HalfFromDouble(std::ldexp(1.0, -25)).bits == 0x0000, "half tie to even (zero)");
  CHECK(HalfFromDouble(std::ldexp(3.0, -25)).bits == 0x0002, "half tie to even (2 units)");
  CHECK(HalfFromDouble(-0.0).bits == 0x8000, "half -0");
  // Random doubles round to the nearest representable value, ties to even (checked
  // against the neighbours), with no double rounding.
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> mant(1.0, 2.0);
  std::uniform_int_distribution<int> ex(-30, 17);
  int bad = 0;
  for (int i = 0; i < 200000; ++i) {
    const double v = std::ldexp(mant(rng), ex(rng)) * (i & 1 ? -1.0 : 1.0);
    for (int kind = 0; kind < 2; ++kind) {
      const uint16_t r = kind ? BFloat16FromDouble(v).bits : HalfFromDouble(v).bits;
      auto dec = [&](uint16_t b) {
        return kind ? ToDouble(BFloat16{b}) : ToDouble(Half{b});
      };
      const double rv = dec(r);
      if (std::isinf(rv)) continue;  // overflow checked above
      const double err = std::fabs(rv - v);
      for (int step : {-1, 1}) {
        const uint16_t nb = static_cast<uint16_t>(r + step);
        const double nv = dec(nb);
        if (std::isnan(nv) || ((nb ^ r) & 0x8000u)) continue;
        const double nerr = std::fabs(nv - v);
        if (nerr < err || (nerr == err && (r & 1u))) ++bad;
      }
    }
  }
  CHECK(bad == 0, "%d random values not rounded to nearest even", bad);
}

static void TestBroadcastPlan() {
  BroadcastPlan p;
  std::string why;
  const int64_t a[] = {4, 1, 3}, b[] = {5, 3};
  CHECK(MakeBroadcastPlan(a, 3, b, 2, &p, &why), "[4,1,3] vs [5,3]");
  CHECK(p.out_rank == 3 && p.out_dims[0] == 4 && p.out_dims[1] == 5 && p.out_dims[2] == 3 &&
            p.numel == 60,
        "broadcast shape");
  CHECK(!p.contiguous(), "broadcast is not contiguous");
  const int64_t c[] = {3, 4, 5};
  CHECK(MakeBroadcastPlan(c, 3, c, 3, &p, &why) && p.contiguous() && p.rank == 1 &&
            p.dims[0] == 60,
        "equal shapes coalesce to one contiguous dim");
  const int64_t d[] = {1, 5}, e[] = {5};
  CHECK(MakeBroadcastPlan(d, 2, e, 1, &p, &why) && p.contiguous() && p.out_rank == 2,
        "[1,5] vs [5] is contiguous");
  CHECK(MakeBroadcastPlan(nullptr, 0, nullptr, 0, &p, &why) && p.numel == 1 &&
            p.out_rank == 0 && p.contiguous(),
        "rank 0");
  const int64_t z[] = {0}, one[] = {1};
  CHECK(MakeBroadcastPlan(z, 1, one, 1, &p, &why) && p.numel == 0 && p.out_rank == 1 &&
            p.out_dims[0] == 0,
        "[0] vs [1]");
  const int64_t f[] = {3, 4}, g[] = {5};
  CHECK(!MakeBroadcastPlan(f, 2, g, 1, &p, &why) && why.find("[3, 4]") != std::string::npos &&
            why.find("[5]") != std::string::npos,
        "mismatch names both shapes: %s", why.c_str());
  int64_t big[kMaxRank + 1];
  std::fill(big, big + kMaxRank + 1, 1);
  CHECK(!MakeBroadcastPlan(big, kMaxRank + 1, big, 1, &p, &why), "rank too large rejected");
}

// Elementwise + reductions against the long double reference, for one shape pair.
// ``param`` is beta (SmoothL1Loss) or delta (HuberLoss), by ``loss``.
template <typename T, typename FromD, typename ToD>
static void CheckCase(const std::vector<int64_t>& xs, const std::vector<int64_t>& ys,
                      float param, FromD from_d, ToD to_d, double tol, const char* name,
                      Loss loss = Loss::kSmoothL1) {
  BroadcastPlan p;
  std::string why;
  if (!MakeBroadcastPlan(xs.data(), (int)xs.size(), ys.data(), (int)ys.size(), &p, &why)) {
    CHECK(false, "%s: %s", name, why.c_str());
    return;
  }
  int64_t nx = 1, ny = 1;
  for (auto v : xs) nx *= v;
  for (auto v : ys) ny *= v;
  std::mt19937 rng(11);
  std::normal_distribution<double> nd(0.0, 2.0);
  std::vector<T> x(nx), y(ny);
  for (auto& v : x) v = from_d(nd(rng));
  for (auto& v : y) v = from_d(nd(rng));
  // Reference over the broadcast index space.
  std::vector<long double> ref(p.numel);
  const int r = p.out_rank;
  for (int64_t i = 0; i < p.numel; ++i) {
    int64_t rem = i, xi = 0, yi = 0, xm = 1, ym = 1;
    for (int dd = r - 1; dd >= 0; --dd) {
      const int64_t idx = rem % p.out_dims[dd];
      rem /= p.out_dims[dd];
      const int xd = dd - (r - (int)xs.size()), yd = dd - (r - (int)ys.size());
      if (xd >= 0) { if (xs[xd] != 1) xi += idx * xm; xm *= xs[xd]; }
      if (yd >= 0) { if (ys[yd] != 1) yi += idx * ym; ym *= ys[yd]; }
    }
    ref[i] = loss == Loss::kHuber ? RefHuber(to_d(x[xi]), to_d(y[yi]), param)
                                  : RefLoss(to_d(x[xi]), to_d(y[yi]), param);
  }
  Attrs attrs;
  attrs.loss = loss;
  (loss == Loss::kHuber ? attrs.delta : attrs.beta) = param;
  Parallel serial;
  // none
  attrs.reduction = Reduction::kNone;
  std::vector<T> out(std::max<int64_t>(p.numel, 1));
  CHECK(LossForward(x.data(), y.data(), out.data(), p, attrs, serial), "%s none", name);
  int bad = 0;
  for (int64_t i = 0; i < p.numel; ++i) {
    const double got = to_d(out[i]), want = (double)ref[i];
    // within tol relative, or one unit of the type's subnormal step (tiny values)
    const double floor = sizeof(T) == 2 ? std::ldexp(1.0, -24) : 1e-300;
    if (!(std::fabs(got - want) <= tol * std::fabs(want) + floor)) ++bad;
  }
  CHECK(bad == 0, "%s none: %d of %lld elements off", name, bad, (long long)p.numel);
  // sum / mean
  long double rsum = 0;
  for (auto v : ref) rsum += v;
  for (Reduction red : {Reduction::kSum, Reduction::kMean}) {
    attrs.reduction = red;
    T o[1];
    CHECK(LossForward(x.data(), y.data(), o, p, attrs, serial), "%s reduce", name);
    const long double want = red == Reduction::kSum ? rsum : rsum / (long double)p.numel;
    const double got = to_d(o[0]);
    if (p.numel == 0) {
      CHECK(red == Reduction::kSum ? got == 0.0 : std::isnan(got), "%s empty %s = %g", name,
            ReductionName(red), got);
    } else if (std::isinf(to_d(from_d((double)want)))) {
      CHECK(std::isinf(got), "%s %s overflows the type: got %g", name, ReductionName(red), got);
    } else {
      CHECK(std::fabs(got - (double)want) <= tol * std::fabs((double)want), "%s %s got %.17g want %.17Lg",
            name, ReductionName(red), got, want);
    }
  }
}

static void TestNumerics() {
  auto fd = [](double v) { return v; };
  auto ff = [](double v) { return (float)v; };
  auto tf = [](float v) { return (double)v; };
  auto fh = [](double v) { return HalfFromDouble(v); };
  auto th = [](Half v) { return ToDouble(v); };
  auto fb = [](double v) { return BFloat16FromDouble(v); };
  auto tb = [](BFloat16 v) { return ToDouble(v); };
  const std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> shapes = {
      {{}, {}}, {{1}, {1}}, {{0}, {0}}, {{5}, {5}}, {{3, 4, 5}, {3, 4, 5}},
      {{4, 1, 3}, {5, 3}}, {{7}, {}}, {{}, {7}}, {{70000}, {70000}}, {{3, 40000}, {40000}},
      {{300, 1}, {1, 200}}};
  for (float beta : {0.0f, 1e-3f, 0.5f, 1.0f, 7.5f}) {
    for (const auto& s : shapes) {
      char name[128];
      std::snprintf(name, sizeof name, "beta=%g shapes %s %s", beta,
                    ShapeToString(s.first.data(), (int)s.first.size()).c_str(),
                    ShapeToString(s.second.data(), (int)s.second.size()).c_str());
      CheckCase<double>(s.first, s.second, beta, fd, fd, 1e-13, (std::string("f64 ") + name).c_str());
      CheckCase<float>(s.first, s.second, beta, ff, tf, 1.2e-7, (std::string("f32 ") + name).c_str());
      CheckCase<Half>(s.first, s.second, beta, fh, th, 1e-3, (std::string("f16 ") + name).c_str());
      CheckCase<BFloat16>(s.first, s.second, beta, fb, tb, 8e-3, (std::string("bf16 ") + name).c_str());
    }
  }
  // beta == 0 is exactly L1; NaN / inf follow IEEE.
  BroadcastPlan p;
  std::string why;
  const int64_t n4[] = {4};
  MakeBroadcastPlan(n4, 1, n4, 1, &p, &why);
  const double x[4] = {1.5, NAN, INFINITY, INFINITY}, y[4] = {-2.0, 0.0, 1.0, INFINITY};
  double out[4];
  Attrs a;
  a.beta = 0.0f;
  a.reduction = Reduction::kNone;
  LossForward(x, y, out, p, a, Parallel{});
  CHECK(out[0] == 3.5 && std::isnan(out[1]) && std::isinf(out[2]) && std::isnan(out[3]),
        "L1/NaN/inf: %g %g %g %g", out[0], out[1], out[2], out[3]);
  a.beta = 1.0f;
  LossForward(x, y, out, p, a, Parallel{});
  CHECK(out[0] == 3.0 && std::isnan(out[1]) && std::isinf(out[2]) && std::isnan(out[3]),
        "beta 1 NaN/inf");
  a.reduction = Reduction::kMean;
  LossForward(x, y, out, p, a, Parallel{});
  CHECK(std::isnan(out[0]), "mean with NaN is NaN");
}

// HuberLoss: the same shapes (broadcast, rank 0, empty, several blocks) within tolerance of
// the exact formula, and bitwise PyTorch's float arithmetic for float32 / float16 'none'.
static void TestHuberNumerics() {
  auto fd = [](double v) { return v; };
  auto ff = [](double v) { return (float)v; };
  auto tf = [](float v) { return (double)v; };
  auto fh = [](double v) { return HalfFromDouble(v); };
  auto th = [](Half v) { return ToDouble(v); };
  auto fb = [](double v) { return BFloat16FromDouble(v); };
  auto tb = [](BFloat16 v) { return ToDouble(v); };
  const std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> shapes = {
      {{}, {}}, {{1}, {1}}, {{0}, {0}}, {{5}, {5}}, {{3, 4, 5}, {3, 4, 5}},
      {{4, 1, 3}, {5, 3}}, {{7}, {}}, {{}, {7}}, {{70000}, {70000}}, {{3, 40000}, {40000}},
      {{300, 1}, {1, 200}}};
  const Loss H = Loss::kHuber;
  // float32 computes in float (torch): up to ~1.5 float32 roundings per element, so 2^-22.
  const double f32_tol = std::ldexp(1.0, -22);
  for (float delta : {1e-3f, 0.3f, 0.5f, 1.0f, 7.5f}) {
    for (const auto& s : shapes) {
      char name[128];
      std::snprintf(name, sizeof name, "huber delta=%g shapes %s %s", delta,
                    ShapeToString(s.first.data(), (int)s.first.size()).c_str(),
                    ShapeToString(s.second.data(), (int)s.second.size()).c_str());
      CheckCase<double>(s.first, s.second, delta, fd, fd, 1e-13, (std::string("f64 ") + name).c_str(), H);
      CheckCase<float>(s.first, s.second, delta, ff, tf, f32_tol, (std::string("f32 ") + name).c_str(), H);
      CheckCase<Half>(s.first, s.second, delta, fh, th, 1e-3, (std::string("f16 ") + name).c_str(), H);
      CheckCase<BFloat16>(s.first, s.second, delta, fb, tb, 8e-3, (std::string("bf16 ") + name).c_str(), H);
    }
  }
  // Bitwise: float32 'none' is torch's float formula; float16 / bfloat16 that float value
  // rounded once; float64 the formula in double; sums add exactly those element values.
  std::mt19937 rng(21);
  std::normal_distribution<double> nd(0.0, 3.0);
  const int64_t n = 100003;  // several blocks, a vector tail
  BroadcastPlan p;
  std::string why;
  MakeBroadcastPlan(&n, 1, &n, 1, &p, &why);
  std::vector<float> xf(n), yf(n), of(n);
  std::vector<Half> xh(n), yh(n), oh(n);
  std::vector<BFloat16> xb(n), yb(n), ob(n);
  std::vector<double> xd(n), yd(n), od(n);
  for (int64_t i = 0; i < n; ++i) {
    xd[i] = nd(rng) * std::exp(nd(rng));  // |x - y| from ~1e-5 to ~1e4
    yd[i] = nd(rng);
    if (i % 50 == 7) {  // subnormal squares (float: d ~ 1e-20; double: d ~ 1e-160), where
      xd[i] = nd(rng) * (i % 100 == 7 ? 1e-20 : 1e-160);  // (0.5 * d) * d != (d * d) * 0.5
      yd[i] = 0.0;
    }
    xf[i] = (float)xd[i];
    yf[i] = (float)yd[i];
    xh[i] = HalfFromDouble(xd[i]);
    yh[i] = HalfFromDouble(yd[i]);
    xb[i] = BFloat16FromDouble(xd[i]);
    yb[i] = BFloat16FromDouble(yd[i]);
  }
  for (float delta : {0.3f, 1.0f, 7.5f}) {
    Attrs a;
    a.loss = H;
    a.delta = delta;
    a.reduction = Reduction::kNone;
    LossForward(xf.data(), yf.data(), of.data(), p, a, Parallel{});
    LossForward(xh.data(), yh.data(), oh.data(), p, a, Parallel{});
    LossForward(xb.data(), yb.data(), ob.data(), p, a, Parallel{});
    LossForward(xd.data(), yd.data(), od.data(), p, a, Parallel{});
    int bad_f = 0, bad_h = 0, bad_b = 0, bad_d = 0;
    long double sum_f = 0;
    for (int64_t i = 0; i < n; ++i) {
      const float want = TorchHuberFloat(xf[i], yf[i], delta);
      sum_f += want;
      bad_f += std::memcmp(&of[i], &want, 4) != 0;
      bad_h += oh[i].bits != HalfFromDouble(TorchHuberFloat((float)ToDouble(xh[i]), (float)ToDouble(yh[i]), delta)).bits;
      bad_b += ob[i].bits != BFloat16FromDouble(TorchHuberFloat((float)ToDouble(xb[i]), (float)ToDouble(yb[i]), delta)).bits;
      const double dd = std::fabs(xd[i] - yd[i]), dl = delta;
      const double wd = dd < dl ? 0.5 * dd * dd : dl * (dd - dl * 0.5);
      bad_d += Bits(od[i]) != Bits(wd);
    }
    CHECK(bad_f == 0, "huber f32 delta=%g: %d elements differ from torch's float formula", delta, bad_f);
    CHECK(bad_h == 0, "huber f16 delta=%g: %d elements not the float value rounded once", delta, bad_h);
    CHECK(bad_b == 0, "huber bf16 delta=%g: %d elements not the float value rounded once", delta, bad_b);
    CHECK(bad_d == 0, "huber f64 delta=%g: %d elements differ from the double formula", delta, bad_d);
    double sum = 0;
    LossSum(xf.data(), yf.data(), p, a, Parallel{}, &sum);
    CHECK(std::fabs(sum - (double)sum_f) <= 1e-13 * std::fabs((double)sum_f),
          "huber f32 sum %.17g vs the exact sum of torch's elements %.17Lg", sum, sum_f);
  }
  // NaN / inf follow IEEE: inf - inf is NaN, an infinite difference is linear (inf).
  const int64_t n4[] = {4};
  MakeBroadcastPlan(n4, 1, n4, 1, &p, &why);
  const double x[4] = {1.5, NAN, INFINITY, INFINITY}, y[4] = {-2.0, 0.0, 1.0, INFINITY};
  double out[4];
  Attrs a;
  a.loss = H;
  a.delta = 1.0f;
  a.reduction = Reduction::kNone;
  LossForward(x, y, out, p, a, Parallel{});
  CHECK(out[0] == 3.0 && std::isnan(out[1]) && std::isinf(out[2]) && std::isnan(out[3]),
        "huber NaN/inf: %g %g %g %g", out[0], out[1], out[2], out[3]);
  a.delta = 0.5f;  // quadratic: 0.5 * 0.25^2; linear: 0.5 * (3.5 - 0.25)
  const double x2[2] = {0.25, 1.5}, y2[2] = {0.0, -2.0};
  const int64_t n2[] = {2};
  MakeBroadcastPlan(n2, 1, n2, 1, &p, &why);
  LossForward(x2, y2, out, p, a, Parallel{});
  CHECK(out[0] == 0.03125 && out[1] == 1.625, "huber delta=0.5: %g %g", out[0], out[1]);
  a.reduction = Reduction::kSum;
  LossForward(x2, y2, out, p, a, Parallel{});
  CHECK(out[0] == 1.65625, "huber sum: %g", out[0]);
}

static void TestDeltaValidation() {
  for (float bad : {0.0f, -0.0f, -1.0f, NAN, INFINITY, -INFINITY}) {
    const std::string why = CheckDelta(bad);
    CHECK(why.find("delta") != std::string::npos, "delta=%g must be refused: '%s'", bad, why.c_str());
  }
  for (float good : {1e-30f, 0.3f, 1.0f, 3e38f}) {
    CHECK(CheckDelta(good).empty(), "delta=%g must be accepted: '%s'", good, CheckDelta(good).c_str());
  }
  CHECK(std::string(LossOpType(Loss::kHuber)) == "HuberLoss" &&
            std::string(LossParamName(Loss::kHuber)) == "delta" &&
            std::string(LossOpType(Loss::kSmoothL1)) == "SmoothL1Loss",
        "op type / attribute names");
}

static void TestDeterminism(Loss loss) {
  const int64_t n = (int64_t{1} << 20) + 3;
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  std::vector<float> x(n), y(n);
  for (auto& v : x) v = nd(rng);
  for (auto& v : y) v = nd(rng);
  BroadcastPlan p;
  std::string why;
  MakeBroadcastPlan(&n, 1, &n, 1, &p, &why);
  Attrs a;
  a.loss = loss;
  a.beta = 0.5f;
  a.delta = 0.5f;
  double s_serial, s_rev, s_t2, s_t4;
  LossSum(x.data(), y.data(), p, a, Parallel{}, &s_serial);
  Parallel rev{&ReverseRun, nullptr};
  LossSum(x.data(), y.data(), p, a, rev, &s_rev);
  int two = 2, four = 4;
  Parallel t2{&ThreadsRun, &two}, t4{&ThreadsRun, &four};
  LossSum(x.data(), y.data(), p, a, t2, &s_t2);
  LossSum(x.data(), y.data(), p, a, t4, &s_t4);
  CHECK(Bits(s_serial) == Bits(s_rev) && Bits(s_serial) == Bits(s_t2) &&
            Bits(s_serial) == Bits(s_t4),
        "sums differ across schedules: %.17g %.17g %.17g %.17g", s_serial, s_rev, s_t2, s_t4);
  // 'none' in parallel equals serial.
  a.reduction = Reduction::kNone;
  std::vector<float> o1(n), o2(n);
  LossForward(x.data(), y.data(), o1.data(), p, a, Parallel{});
  LossForward(x.data(), y.data(), o2.data(), p, a, t4);
  CHECK(std::memcmp(o1.data(), o2.data(), n * sizeof(float)) == 0, "parallel none differs");
  // float32 mean accuracy at 2^22 elements of a skewed distribution.
  long double ref = 0;
  for (int64_t i = 0; i < n; ++i) ref += loss == Loss::kHuber ? RefHuber(x[i], y[i], 0.5) : RefLoss(x[i], y[i], 0.5);
  a.reduction = Reduction::kMean;
  float m;
  LossForward(x.data(), y.data(), &m, p, a, t2);
  const double rel = std::fabs((double)m - (double)(ref / n)) / (double)(ref / n);
  CHECK(rel <= 1e-7, "f32 mean rel err %g", rel);
}

// Every instruction-set variant of the float/double loops gives bitwise the same results.
template <typename T>
static void CheckIsaVariants(const char* name, Loss loss = Loss::kSmoothL1) {
  std::mt19937 rng(5);
  std::normal_distribution<double> nd(0.0, 2.0);
  const std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> shapes = {
      {{100003}, {100003}}, {{13}, {13}}, {{7, 1, 300}, {5, 300}}, {{40001}, {}}};
  for (const auto& s : shapes) {
    BroadcastPlan p;
    std::string why;
    MakeBroadcastPlan(s.first.data(), (int)s.first.size(), s.second.data(), (int)s.second.size(), &p, &why);
    int64_t nx = 1, ny = 1;
    for (auto v : s.first) nx *= v;
    for (auto v : s.second) ny *= v;
    std::vector<T> x(nx), y(ny);
    for (auto& v : x) v = (T)nd(rng);
    for (auto& v : y) v = (T)nd(rng);
    Attrs a;
    a.loss = loss;
    a.beta = 0.75f;
    a.delta = 0.75f;
    std::vector<std::vector<T>> nones;
    std::vector<double> sums;
    const int best = SetIsaForTesting(-1);
    for (int level = 0; level <= best; ++level) {
      SetIsaForTesting(level);
      double sum;
      LossSum(x.data(), y.data(), p, a, Parallel{}, &sum);
      sums.push_back(sum);
      a.reduction = Reduction::kNone;
      nones.emplace_back(p.numel);
      LossForward(x.data(), y.data(), nones.back().data(), p, a, Parallel{});
      a.reduction = Reduction::kMean;
    }
    SetIsaForTesting(-1);
    for (size_t k = 1; k < sums.size(); ++k) {
      CHECK(Bits(sums[k]) == Bits(sums[0]), "%s isa %zu sum %.17g vs %.17g", name, k, sums[k], sums[0]);
      CHECK(std::memcmp(nones[k].data(), nones[0].data(), nones[0].size() * sizeof(T)) == 0,
            "%s isa %zu none differs", name, k);
    }
    std::printf("%s: %zu ISA variant(s) compared\n", name, sums.size());
  }
}

int main() {
  TestConversions();
  TestBroadcastPlan();
  TestNumerics();
  TestHuberNumerics();
  TestDeltaValidation();
  TestDeterminism(Loss::kSmoothL1);
  TestDeterminism(Loss::kHuber);
  CheckIsaVariants<float>("f32");
  CheckIsaVariants<double>("f64");
  CheckIsaVariants<float>("huber f32", Loss::kHuber);
  CheckIsaVariants<double>("huber f64", Loss::kHuber);
  std::printf("%d passed, %d failed\n", g_pass, g_fail);
  return g_fail == 0 ? 0 : 1;
}
