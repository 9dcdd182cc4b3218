// Standalone test of the CUDA launchers (smooth_l1_cuda.h) against a host double reference.
//
//   test_cuda_kernels                 plan/host checks; kernel checks when a GPU is present
//   test_cuda_kernels --require-gpu   as above, but no GPU is a failure (gpu_check.sh)
//   test_cuda_kernels --big           also 2^31 + 3 float16 elements (int64 indexing, 13 GB)
//   test_cuda_kernels --bench         raw kernel bandwidth vs cudaMemcpy, tuning variants
//   test_cuda_kernels --bench-only    only that (no kernel checks)
//   test_cuda_kernels --quick         kernel checks on small sizes only (for compute-sanitizer)
//
// Exit status 0 when every check passed (kernel checks count as passed when skipped for
// lack of a GPU, unless --require-gpu).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "smooth_l1_cuda.h"
#include "smooth_l1_cuda_internal.h"
#include "smooth_l1_cuda_plan.h"

namespace {

int g_failures = 0;
int g_checks = 0;

void check(bool ok, const std::string& what) {
  ++g_checks;
  if (!ok) {
    ++g_failures;
    std::printf("FAIL %s\n", what.c_str());
    std::fflush(stdout);
  }
}

#define CUDA_OK(call)                                                                    \
  do {                                                                                   \
    cudaError_t e_ = (call);                                                             \
    if (e_ != cudaSuccess) {                                                             \
      std::printf("FAIL %s:%d %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
      std::exit(2);                                                                      \
    }                                                                                    \
  } while (0)

// ---- element types on the host ------------------------------------------------------
template <typename T> const char* type_name();
template <> const char* type_name<__half>() { return "float16"; }
template <> const char* type_name<__nv_bfloat16>() { return "bfloat16"; }
template <> const char* type_name<float>() { return "float32"; }
template <> const char* type_name<double>() { return "float64"; }
template <typename T> int type_code();
template <> int type_code<__half>() { return SMOOTHL1_CUDA_F16; }
template <> int type_code<__nv_bfloat16>() { return SMOOTHL1_CUDA_BF16; }
template <> int type_code<float>() { return SMOOTHL1_CUDA_F32; }
template <> int type_code<double>() { return SMOOTHL1_CUDA_F64; }

double to_d(__half v) { return static_cast<double>(__half2float(v)); }
double to_d(__nv_bfloat16 v) { return static_cast<double>(__bfloat162float(v)); }
double to_d(float v) { return v; }
double to_d(double v) { return v; }
template <typename T> T from_d(double v);
template <> __half from_d<__half>(double v) { return __double2half(v); }
template <> __nv_bfloat16 from_d<__nv_bfloat16>(double v) { return __double2bfloat16(v); }
template <> float from_d<float>(double v) { return static_cast<float>(v); }
template <> double from_d<double>(double v) { return v; }

// Spacing of T at |v| (one unit in the last place), as a double.
template <typename T> double ulp_at(double v) {
  int mant, min_exp;
  if (std::is_same<T, __half>::value) { mant = 10; min_exp = -14; }
  else if (std::is_same<T, __nv_bfloat16>::value) { mant = 7; min_exp = -126; }
  else if (std::is_same<T, float>::value) { mant = 23; min_exp = -126; }
  else { mant = 52; min_exp = -1022; }
  int e = v == 0 ? min_exp : std::max(static_cast<int>(std::floor(std::log2(std::fabs(v)))), min_exp);
  return std::ldexp(1.0, e - mant);
}

// PyTorch's formula in double: ((0.5 * d) * d) / beta, or d - 0.5 * beta.
double ref_loss(double x, double y, double beta) {
  const double d = std::fabs(x - y);
  if (beta == 0.0) return d;
  return d < beta ? 0.5 * d * d / beta : d - 0.5 * beta;
}

uint64_t g_rng = 0x9E3779B97F4A7C15ull;
double uniform() {  // [0, 1)
  g_rng ^= g_rng << 13; g_rng ^= g_rng >> 7; g_rng ^= g_rng << 17;
  return static_cast<double>(g_rng >> 11) * (1.0 / 9007199254740992.0);
}

// ---- broadcast plan checks (host only) ----------------------------------------------
bool plan_of(std::vector<int64_t> xs, std::vector<int64_t> ys, SmoothL1CudaPlan* p,
             std::string* why) {
  onnx_smoothl1::BroadcastPlan bp;
  if (!onnx_smoothl1::MakeBroadcastPlan(xs.data(), static_cast<int>(xs.size()), ys.data(),
                                        static_cast<int>(ys.size()), &bp, why))
    return false;
  return onnx_smoothl1::cuda::ToCudaPlan(bp, p, why);
}

void test_plans() {
  SmoothL1CudaPlan p;
  std::string why;
  check(plan_of({2, 3}, {2, 3}, &p, &why) && p.rank == 0 && p.n == 6, "plan: equal shapes");
  check(plan_of({}, {}, &p, &why) && p.rank == 0 && p.n == 1, "plan: rank 0");
  check(plan_of({0, 3}, {0, 3}, &p, &why) && p.rank == 0 && p.n == 0, "plan: empty");
  check(plan_of({3}, {1, 3}, &p, &why) && p.rank == 0 && p.n == 3, "plan: [3] vs [1,3]");
  check(plan_of({4, 1, 3}, {5, 3}, &p, &why) && p.n == 60 && p.rank == 3, "plan: [4,1,3] vs [5,3]");
  check(p.x_strides[1] == 0 && p.y_strides[0] == 0 && p.dims[0] == 4 && p.dims[1] == 5,
        "plan: [4,1,3] vs [5,3] strides");
  check(plan_of({6, 7}, {}, &p, &why) && p.rank == 1 && p.x_strides[0] == 1 &&
            p.y_strides[0] == 0 && p.n == 42, "plan: scalar target");
  check(plan_of({2, 3, 4}, {1, 1, 4}, &p, &why) && p.rank == 2 && p.dims[0] == 6, "plan: merge");
  check(!plan_of({2, 3}, {3, 2}, &p, &why) && !why.empty(), "plan: incompatible shapes fail");
  why.clear();
  // 9 alternating broadcast groups exceed SMOOTHL1_CUDA_MAX_RANK: a clear error.
  std::vector<int64_t> a, b;
  for (int i = 0; i < 9; ++i) { a.push_back(2); a.push_back(1); b.push_back(1); b.push_back(3); }
  check(!plan_of(a, b, &p, &why) && why.find("CUDA") != std::string::npos, "plan: too many groups");
  check(smooth_l1_cuda_scratch_bytes(&p, SMOOTHL1_CUDA_NONE) == 0, "scratch: none needs 0");
  SmoothL1CudaPlan q{};
  q.n = int64_t{1} << 40;
  check(smooth_l1_cuda_scratch_bytes(&q, SMOOTHL1_CUDA_MEAN) ==
            SMOOTHL1_CUDA_MAX_PARTIALS * sizeof(double), "scratch: bounded");
  q.n = 0;
  check(smooth_l1_cuda_scratch_bytes(&q, SMOOTHL1_CUDA_SUM) == 0, "scratch: empty needs 0");
}

// ---- kernel checks ------------------------------------------------------------------
struct DeviceBuf {
  void* p = nullptr;
  explicit DeviceBuf(size_t bytes) { CUDA_OK(cudaMalloc(&p, bytes ? bytes : 1)); }
  ~DeviceBuf() { cudaFree(p); }
};

template <typename T>
std::vector<T> random_values(size_t n, double scale, bool specials) {
  std::vector<T> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = from_d<T>((uniform() * 2.0 - 1.0) * scale);
  if (specials && n >= 8) {
    v[1] = from_d<T>(std::numeric_limits<double>::quiet_NaN());
    v[3] = from_d<T>(std::numeric_limits<double>::infinity());
    v[5] = from_d<T>(-std::numeric_limits<double>::infinity());
  }
  return v;
}

// Same NaN-ness, same infinities, finite values within tol(ref).
template <typename T, typename Tol>
bool close(double got, double ref, Tol tol, std::string* detail) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "got %.17g ref %.17g", got, ref);
  *detail = buf;
  if (std::isnan(ref) || std::isnan(got)) return std::isnan(ref) && std::isnan(got);
  const double rounded = to_d(from_d<T>(ref));
  if (std::isinf(rounded) || std::isinf(got)) return got == rounded;
  return std::fabs(got - ref) <= tol(ref);
}

// Runs one case; x has shape xs, y has ys (host vectors already filled).
template <typename T>
void run_case(const std::vector<int64_t>& xs, const std::vector<int64_t>& ys,
              const std::vector<T>& hx, const std::vector<T>& hy, double beta, int reduction,
              const std::string& label, int misalign = 0, const SmoothL1CudaTuning* tuning = nullptr) {
  SmoothL1CudaPlan plan;
  std::string why;
  onnx_smoothl1::BroadcastPlan bp;
  if (!onnx_smoothl1::MakeBroadcastPlan(xs.data(), (int)xs.size(), ys.data(), (int)ys.size(), &bp, &why) ||
      !onnx_smoothl1::cuda::ToCudaPlan(bp, &plan, &why)) {
    check(false, label + ": plan: " + why);
    return;
  }
  const int64_t n = plan.n;
  DeviceBuf dx((hx.size() + misalign) * sizeof(T)), dy((hy.size() + misalign) * sizeof(T));
  const size_t out_n = reduction == SMOOTHL1_CUDA_NONE ? static_cast<size_t>(n) : 1;
  DeviceBuf dout((out_n + misalign) * sizeof(T));
  T* px = static_cast<T*>(dx.p) + misalign;
  T* py = static_cast<T*>(dy.p) + misalign;
  T* pout = static_cast<T*>(dout.p) + misalign;
  CUDA_OK(cudaMemcpy(px, hx.data(), hx.size() * sizeof(T), cudaMemcpyHostToDevice));
  CUDA_OK(cudaMemcpy(py, hy.data(), hy.size() * sizeof(T), cudaMemcpyHostToDevice));
  const size_t sb = smooth_l1_cuda_scratch_bytes(&plan, reduction);
  DeviceBuf scratch(sb);
  cudaStream_t stream;
  CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  char err[512];
  std::vector<T> got(out_n), again(out_n);
  for (int rep = 0; rep < 2; ++rep) {
    CUDA_OK(cudaMemsetAsync(dout.p, 0xFF, (out_n + misalign) * sizeof(T), stream));
    if (smooth_l1_cuda_tuned(type_code<T>(), reduction, beta, px, py, pout, &plan, scratch.p, sb,
                             stream, tuning, err, sizeof err)) {
      check(false, label + ": launcher error: " + err);
      cudaStreamDestroy(stream);
      return;
    }
    CUDA_OK(cudaStreamSynchronize(stream));
    CUDA_OK(cudaGetLastError());
    CUDA_OK(cudaMemcpy((rep ? again : got).data(), pout, out_n * sizeof(T), cudaMemcpyDeviceToHost));
  }
  CUDA_OK(cudaStreamDestroy(stream));
  check(std::memcmp(got.data(), again.data(), out_n * sizeof(T)) == 0,
        label + ": bitwise identical over two runs");
  // Host reference over the broadcast iteration (same plan semantics, independently indexed).
  auto offsets = [&](int64_t i, int64_t* xo, int64_t* yo) {
    *xo = 0; *yo = 0;
    if (plan.rank == 0) { *xo = i; *yo = i; return; }
    for (int k = plan.rank - 1; k >= 0; --k) {
      const int64_t r = i % plan.dims[k];
      i /= plan.dims[k];
      *xo += r * plan.x_strides[k];
      *yo += r * plan.y_strides[k];
    }
  };
  const bool is_f64 = std::is_same<T, double>::value, is_f32 = std::is_same<T, float>::value;
  if (reduction == SMOOTHL1_CUDA_NONE) {
    int bad = 0;
    std::string detail, first;
    for (int64_t i = 0; i < n; ++i) {
      int64_t xo, yo;
      offsets(i, &xo, &yo);
      const double ref = ref_loss(to_d(hx[xo]), to_d(hy[yo]), beta);
      bool ok = close<T>(to_d(got[i]), ref, [&](double r) {
        return is_f64 ? 1e-12 * std::fabs(r) + 1e-300 : ulp_at<T>(r);
      }, &detail);
      if (!ok && bad++ == 0) first = "element " + std::to_string(i) + ": " + detail;
    }
    check(bad == 0, label + ": " + std::to_string(bad) + " wrong elements; first " + first);
    return;
  }
  // Reference sum in long double, pairwise-free (n is at most a few 10^8 here).
  long double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    int64_t xo, yo;
    offsets(i, &xo, &yo);
    sum += ref_loss(to_d(hx[xo]), to_d(hy[yo]), beta);
  }
  double ref = static_cast<double>(reduction == SMOOTHL1_CUDA_MEAN ? sum / (long double)n : sum);
  if (n == 0) ref = reduction == SMOOTHL1_CUDA_MEAN ? std::nan("") : 0.0;
  std::string detail;
  const bool ok = close<T>(to_d(got[0]), ref, [&](double r) {
    if (is_f64) return 1e-12 * std::fabs(r) + 1e-300;
    if (is_f32) return std::max(1e-7 * std::fabs(r), ulp_at<float>(r) * 0.5);
    return ulp_at<T>(r);
  }, &detail);
  check(ok, label + ": " + detail);
}

const char* red_name(int r) { return r == 0 ? "none" : r == 1 ? "mean" : "sum"; }

template <typename T>
void test_dtype(bool quick) {
  const double betas[] = {0.0, 0.5, 1.0};
  std::vector<int64_t> sizes = {0, 1, 7, 8, 9, 31, 1000, 4099};
  if (!quick) {
    sizes.push_back((1 << 20) + 3);
    sizes.push_back((int64_t{1} << 24) + 5);
  }
  const int64_t mid = quick ? 10007 : 100003;  // odd: the vector loop always has a tail
  for (int64_t n : sizes) {
    const bool specials = n == 1000;
    auto hx = random_values<T>(static_cast<size_t>(n), 2.0, specials);
    auto hy = random_values<T>(static_cast<size_t>(n), 2.0, false);
    for (double beta : betas)
      for (int red = 0; red < 3; ++red) {
        char label[160];
        std::snprintf(label, sizeof label, "%s n=%lld beta=%g %s%s", type_name<T>(),
                      (long long)n, beta, red_name(red), specials ? " (nan/inf)" : "");
        run_case<T>({n}, {n}, hx, hy, beta, red, label);
      }
  }
  // Rank 0, unaligned pointers (strided path), broadcasting, an odd beta, beta = inf.
  auto s = random_values<T>(1, 2.0, false), t = random_values<T>(1, 2.0, false);
  for (int red = 0; red < 3; ++red) {
    std::string r = std::string(type_name<T>()) + " " + red_name(red);
    run_case<T>({}, {}, s, t, 1.0, red, r + " rank 0");
    auto hx = random_values<T>(mid, 2.0, false), hy = random_values<T>(mid, 2.0, false);
    run_case<T>({mid}, {mid}, hx, hy, 0.5, red, r + " misaligned by one element", 1);
    SmoothL1CudaTuning strided{};
    strided.force_strided = 1;
    run_case<T>({mid}, {mid}, hx, hy, 0.5, red, r + " forced strided", 0, &strided);
    auto bx = random_values<T>(4 * 1 * 3000, 2.0, false), by = random_values<T>(5 * 3000, 2.0, false);
    run_case<T>({4, 1, 3000}, {5, 3000}, bx, by, 1.0, red, r + " broadcast [4,1,3000] vs [5,3000]");
    run_case<T>({4, 1, 3000}, {}, bx, t, 1.0, red, r + " broadcast vs scalar");
    run_case<T>({mid}, {mid}, hx, hy, static_cast<double>(0.3f), red, r + " beta=0.3f");
    run_case<T>({mid}, {mid}, hx, hy, 0.3, red, r + " beta=0.3 (not a float)");
    run_case<T>({mid}, {mid}, hx, hy, std::numeric_limits<double>::infinity(), red,
                r + " beta=inf");
    run_case<T>({mid}, {mid}, hx, hy, 1e-40, red, r + " beta=1e-40");
  }
}

// A few values near the top of bfloat16: float overflow inside a vector, finite mean.
void test_bf16_overflow() {
  std::vector<__nv_bfloat16> x(16), y(16);
  for (int i = 0; i < 16; ++i) { x[i] = from_d<__nv_bfloat16>(3.0e38); y[i] = from_d<__nv_bfloat16>(-1.0e37); }
  run_case<__nv_bfloat16>({16}, {16}, x, y, 1.0, SMOOTHL1_CUDA_MEAN, "bfloat16 mean near float max");
}

// 2^31 + 3 float16 elements: every index beyond int32. Values are i % 5 quarters against 0,
// so the exact sum is known; 'none' spot-checks elements at the end.
__global__ void fill_pattern(__half* x, __half* y, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    x[i] = __float2half(0.25f * static_cast<float>(i % 5));
    y[i] = __float2half(0.0f);
  }
}

void test_big() {
  const int64_t n = (int64_t{1} << 31) + 3;
  SmoothL1CudaPlan plan{};
  plan.n = n;
  DeviceBuf dx(n * 2), dy(n * 2), dout(n * 2);
  fill_pattern<<<1024, 256>>>(static_cast<__half*>(dx.p), static_cast<__half*>(dy.p), n);
  CUDA_OK(cudaGetLastError());
  const size_t sb = smooth_l1_cuda_scratch_bytes(&plan, SMOOTHL1_CUDA_SUM);
  DeviceBuf scratch(sb);
  char err[512];
  // beta 1: losses of 0, .25, .5, .75, 1.0 are 0, 1/32, 1/8, 9/32, 1/2.
  const double per[5] = {0.0, 1.0 / 32, 1.0 / 8, 9.0 / 32, 0.5};
  double ref = 0;
  for (int r = 0; r < 5; ++r) ref += per[r] * static_cast<double>(n / 5 + (r < n % 5 ? 1 : 0));
  for (int red : {SMOOTHL1_CUDA_SUM, SMOOTHL1_CUDA_MEAN}) {
    if (smooth_l1_cuda(SMOOTHL1_CUDA_F16, red, 1.0, dx.p, dy.p, dout.p, &plan, scratch.p, sb,
                       nullptr, err, sizeof err)) { check(false, std::string("big: ") + err); return; }
    __half h;
    CUDA_OK(cudaMemcpy(&h, dout.p, 2, cudaMemcpyDeviceToHost));
    const double want = red == SMOOTHL1_CUDA_MEAN ? ref / n : ref;
    std::string detail;
    check(close<__half>(to_d(h), want, [](double r) { return ulp_at<__half>(r); }, &detail),
          std::string("float16 n=2^31+3 ") + red_name(red) + ": " + detail);
  }
  if (smooth_l1_cuda(SMOOTHL1_CUDA_F16, SMOOTHL1_CUDA_NONE, 1.0, dx.p, dy.p, dout.p, &plan, nullptr,
                     0, nullptr, err, sizeof err)) { check(false, std::string("big none: ") + err); return; }
  std::vector<__half> tail(64);
  CUDA_OK(cudaMemcpy(tail.data(), static_cast<__half*>(dout.p) + (n - 64), 64 * 2, cudaMemcpyDeviceToHost));
  int bad = 0;
  for (int k = 0; k < 64; ++k) bad += to_d(tail[k]) != per[(n - 64 + k) % 5];
  check(bad == 0, "float16 n=2^31+3 none: last 64 elements");
}

// ---- raw kernel bandwidth -----------------------------------------------------------
template <typename T>
double time_launch(int reduction, int64_t n, const SmoothL1CudaTuning* tuning, void* x, void* y,
                   void* out, void* scratch, size_t sb, cudaEvent_t a, cudaEvent_t b) {
  SmoothL1CudaPlan plan{};
  plan.n = n;
  char err[512];
  auto once = [&] {
    if (smooth_l1_cuda_tuned(type_code<T>(), reduction, 1.0, x, y, out, &plan, scratch, sb,
                             nullptr, tuning, err, sizeof err)) {
      std::printf("FAIL bench launch: %s\n", err);
      std::exit(2);
    }
  };
  for (int i = 0; i < 3; ++i) once();
  const int reps = 20;
  CUDA_OK(cudaEventRecord(a));
  for (int i = 0; i < reps; ++i) once();
  CUDA_OK(cudaEventRecord(b));
  CUDA_OK(cudaEventSynchronize(b));
  float ms = 0;
  CUDA_OK(cudaEventElapsedTime(&ms, a, b));
  return ms / reps * 1e-3;
}

template <typename T>
void bench_dtype(int64_t n) {
  const size_t bytes = n * sizeof(T);
  DeviceBuf x(bytes), y(bytes), out(bytes), c(2 * bytes), d(2 * bytes);
  CUDA_OK(cudaMemset(x.p, 0x3c, bytes));
  CUDA_OK(cudaMemset(y.p, 0x01, bytes));
  SmoothL1CudaPlan plan{};
  plan.n = n;
  const size_t sb = smooth_l1_cuda_scratch_bytes(&plan, SMOOTHL1_CUDA_MEAN);
  DeviceBuf scratch(sb);
  cudaEvent_t a, b;
  CUDA_OK(cudaEventCreate(&a));
  CUDA_OK(cudaEventCreate(&b));
  // Copy of both inputs' bytes (2n elements): counts bytes read + written.
  for (int i = 0; i < 3; ++i) CUDA_OK(cudaMemcpyAsync(d.p, c.p, 2 * bytes, cudaMemcpyDeviceToDevice));
  CUDA_OK(cudaEventRecord(a));
  for (int i = 0; i < 20; ++i) CUDA_OK(cudaMemcpyAsync(d.p, c.p, 2 * bytes, cudaMemcpyDeviceToDevice));
  CUDA_OK(cudaEventRecord(b));
  CUDA_OK(cudaEventSynchronize(b));
  float ms = 0;
  CUDA_OK(cudaEventElapsedTime(&ms, a, b));
  const double copy_bw = 4.0 * bytes / (ms / 20 * 1e-3);
  std::printf("bench %-8s n=%lld copy %.3f TB/s (read+write)\n", type_name<T>(), (long long)n, copy_bw / 1e12);
  struct Variant { const char* name; SmoothL1CudaTuning t; };
  std::vector<Variant> variants = {{"default", {0, 0, 0}}, {"blocks/SM=2", {0, 2, 0}},
                                   {"blocks/SM=4", {0, 4, 0}}, {"strided", {0, 0, 1}}};
  if (std::is_same<T, float>::value) variants.push_back({"f32-in-float", {1, 0, 0}});
  for (const auto& v : variants)
    for (int red : {SMOOTHL1_CUDA_MEAN, SMOOTHL1_CUDA_NONE}) {
      const double t = time_launch<T>(red, n, &v.t, x.p, y.p, out.p, scratch.p, sb, a, b);
      const double moved = (red == SMOOTHL1_CUDA_NONE ? 3.0 : 2.0) * bytes;
      std::printf("bench %-8s n=%lld %-4s %-13s %9.1f us  %.3f TB/s  %5.1f%% of copy\n",
                  type_name<T>(), (long long)n, red_name(red), v.name, t * 1e6, moved / t / 1e12,
                  100.0 * moved / t / copy_bw);
    }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
}

}  // namespace

int main(int argc, char** argv) {
  bool require_gpu = false, big = false, bench = false, quick = false, bench_only = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--require-gpu") require_gpu = true;
    else if (a == "--big") big = true;
    else if (a == "--bench") bench = true;
    else if (a == "--quick") quick = true;
    else if (a == "--bench-only") bench = bench_only = true;
    else { std::fprintf(stderr, "usage: %s [--require-gpu] [--big] [--bench] [--bench-only] [--quick]\n", argv[0]); return 2; }
  }
  test_plans();
  int devices = 0;
  const cudaError_t e = cudaGetDeviceCount(&devices);
  if (e != cudaSuccess || devices == 0) {
    std::printf("%s: no CUDA device (%s): kernel checks skipped\n",
                require_gpu ? "FAIL" : "SKIP", e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    std::printf("%d checks, %d failed\n", g_checks, g_failures + (require_gpu ? 1 : 0));
    return g_failures || require_gpu ? 1 : 0;
  }
  cudaDeviceProp prop;
  CUDA_OK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, sm_%d%d, %d SMs\n", prop.name, prop.major, prop.minor, prop.multiProcessorCount);
  for (int red = 0; red < 3; ++red) {
    SmoothL1CudaPlan p{};
    p.n = int64_t{1} << 28;
    int64_t blocks = 0;
    char err[256];
    check(smooth_l1_cuda_grid_size(SMOOTHL1_CUDA_F32, red, &p, &blocks, err, sizeof err) == 0 &&
              blocks > 0 && blocks <= SMOOTHL1_CUDA_MAX_PARTIALS, "grid size query");
    std::printf("grid for float32 %s at 2^28: %lld blocks of %d\n", red_name(red), (long long)blocks,
                smoothl1_cuda::kThreads);
  }
  if (!bench_only) {
    test_dtype<double>(quick);
    test_dtype<float>(quick);
    test_dtype<__half>(quick);
    test_dtype<__nv_bfloat16>(quick);
    test_bf16_overflow();
    if (big) test_big();
  }
  std::printf("%d checks, %d failed\n", g_checks, g_failures);
  if (bench) {
    bench_dtype<float>(int64_t{1} << 28);
    bench_dtype<__half>(int64_t{1} << 28);
    bench_dtype<__nv_bfloat16>(int64_t{1} << 28);
  }
  return g_failures ? 1 : 0;
}
