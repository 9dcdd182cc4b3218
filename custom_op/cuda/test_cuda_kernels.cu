// Standalone test of the CUDA launchers (smooth_l1_cuda.h) against a host double reference,
// for SmoothL1Loss and HuberLoss (HuberLoss: against PyTorch's formula in its compute type).
//
//   test_cuda_kernels                 plan/host checks; kernel checks when a GPU is present
//   test_cuda_kernels --require-gpu   as above, but no GPU is a failure (gpu_check.sh)
//   test_cuda_kernels --big           also 2^31 + 3 float16 elements (int64 indexing, 13 GB)
//   test_cuda_kernels --bench         raw kernel bandwidth vs cudaMemcpy, tuning variants
//   test_cuda_kernels --bench-only    only that (no kernel checks)
//   test_cuda_kernels --quick         kernel checks on small sizes only (for compute-sanitizer)
//   test_cuda_kernels --emulate       no GPU needed: the same kernel checks, each kernel's
//                                     per-thread code run on the CPU for every thread of a
//                                     (small) grid and the block trees emulated
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

// The launcher source itself (not its object), so the emulation below can reach the
// per-thread functions; this binary is built from this one translation unit.
#include "smooth_l1_cuda.cu"
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

// PyTorch's huber_loss as its CPU kernel computes it: in float for float32 / float16 /
// bfloat16 inputs (delta and delta * 0.5 as floats, (0.5 * d) * d, delta * (d - delta/2)),
// in double for float64. The HuberLoss kernels claim exactly this, so 'none' of float32 is
// compared bitwise with it.
double ref_huber(double x, double y, double delta, bool in_float) {
  if (in_float) {
    const float d = std::fabs(static_cast<float>(x) - static_cast<float>(y));
    const float df = static_cast<float>(delta), hf = static_cast<float>(0.5 * delta);
    return d < df ? 0.5f * d * d : df * (d - hf);
  }
  const double d = std::fabs(x - y);
  return d < delta ? 0.5 * d * d : delta * (d - 0.5 * delta);
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

// ---- CPU emulation of the kernels (--emulate) -----------------------------------------
bool g_emulate = false;
int g_emu_grid_cap = 3;  // blocks emulated at most (varied per case: 1, 3, 7, 64)

// __shfl_down_sync tree over one warp, as the hardware does it: a lane whose source lane is
// out of range reads its own value.
void emu_warp_tree(double* lanes) {
  for (int off = 16; off > 0; off >>= 1) {
    double next[32];
    for (int l = 0; l < 32; ++l) next[l] = lanes[l] + (l + off < 32 ? lanes[l + off] : lanes[l]);
    std::memcpy(lanes, next, sizeof next);
  }
}

// smoothl1_cuda::block_sum for one block whose threads hold v.
double emu_block_sum(const std::vector<double>& v) {
  const int warps = static_cast<int>((v.size() + 31) / 32);
  double warp_sums[32] = {};
  for (int w = 0; w < warps; ++w) {
    double lanes[32];
    for (int l = 0; l < 32; ++l) lanes[l] = v[w * 32 + l];
    emu_warp_tree(lanes);
    warp_sums[w] = lanes[0];
  }
  double lanes[32];
  for (int l = 0; l < 32; ++l) lanes[l] = l < warps ? warp_sums[l] : 0.0;
  emu_warp_tree(lanes);
  return lanes[0];
}

// Stands in for smoothl1_cuda::DeviceExec: same grid sizing rule (capped small), every
// thread's per-thread function, the block trees, the final block.
struct EmuExec {
  int grid_cap;
  size_t scratch_bytes;

  template <typename T, typename C>
  int run(const smoothl1_cuda::Launch& L) {
    return smoothl1_cuda::with_form<T, C>(L, *this);
  }

  template <typename T, typename C, int F>
  int go(const smoothl1_cuda::Launch& L) {
    using namespace smoothl1_cuda;
    const int64_t n = L.plan->n;
    const T* x = static_cast<const T*>(L.x);
    const T* y = static_cast<const T*>(L.y);
    T* out = static_cast<T*>(L.out);
    constexpr int V = Vec<T>::kN;
    const int64_t work = L.contiguous ? (n / V + kThreads - 1) / kThreads : (n + kThreads - 1) / kThreads;
    const int grid = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(work, grid_cap)));
    const int64_t stride = static_cast<int64_t>(grid) * kThreads;
    if (L.reduction == SMOOTHL1_CUDA_NONE) {
      if (n == 0) return 0;
      for (int64_t t = 0; t < stride; ++t) {
        if (L.contiguous) thread_none_contig<T, C, F>(x, y, out, n, L.params, t, stride);
        else thread_none_strided<T, C, F>(x, y, out, *L.plan, L.params, t, stride);
      }
      return 0;
    }
    std::vector<double> partials;
    if (n > 0) {
      if (static_cast<size_t>(grid) * sizeof(double) > scratch_bytes) {
        std::printf("FAIL emulation: grid %d exceeds scratch %zu\n", grid, scratch_bytes);
        return 1;
      }
      std::vector<double> v(kThreads);
      for (int b = 0; b < grid; ++b) {
        for (int t = 0; t < kThreads; ++t) {
          const int64_t tid = static_cast<int64_t>(b) * kThreads + t;
          v[t] = L.contiguous ? thread_sum_contig<T, C, F>(x, y, n, L.params, tid, stride)
                              : thread_sum_strided<T, C, F>(x, y, *L.plan, L.params, tid, stride);
        }
        partials.push_back(emu_block_sum(v));
      }
    }
    std::vector<double> f(kFinalThreads);
    for (int t = 0; t < kFinalThreads; ++t)
      f[t] = thread_sum_partials(partials.data(), static_cast<int>(partials.size()), t);
    double acc = emu_block_sum(f);
    if (L.reduction == SMOOTHL1_CUDA_MEAN) acc = acc / static_cast<double>(n);
    out[0] = from_double<T>(acc);
    return 0;
  }
};

// smooth_l1_cuda_loss_tuned with the kernels emulated on the CPU (host pointers).
int emu_launch(int loss, int dtype, int reduction, double beta, const void* x, const void* y,
               void* out, const SmoothL1CudaPlan* plan, const SmoothL1CudaTuning* tuning,
               char* err, size_t err_len) {
  static double dummy_scratch;
  const size_t sb = smooth_l1_cuda_scratch_bytes(plan, reduction);
  smoothl1_cuda::Launch L{};
  if (smoothl1_cuda::prepare(L, loss, dtype, reduction, beta, x, y, out, plan,
                             sb ? &dummy_scratch : nullptr, sb, nullptr, tuning, err, err_len))
    return 1;
  SmoothL1CudaPlan tmp;
  L.plan = effective_plan(L, &tmp);
  EmuExec exec{g_emu_grid_cap, sb};
  return smoothl1_cuda::dispatch_to(L, exec);
}

// Host memory, 16-byte aligned, holding `count` T after `misalign` elements.
template <typename T>
struct HostBuf {
  std::vector<uint4> storage;
  T* p;
  HostBuf(size_t count, int misalign) : storage((count + misalign) * sizeof(T) / 16 + 2) {
    p = reinterpret_cast<T*>(storage.data()) + misalign;
  }
};

// Runs one case; x has shape xs, y has ys (host vectors already filled). `beta` is delta for
// loss == SMOOTHL1_CUDA_LOSS_HUBER.
template <typename T>
void run_case(const std::vector<int64_t>& xs, const std::vector<int64_t>& ys,
              const std::vector<T>& hx, const std::vector<T>& hy, double beta, int reduction,
              const std::string& label, int misalign = 0, const SmoothL1CudaTuning* tuning = nullptr,
              int loss = SMOOTHL1_CUDA_LOSS_SMOOTH_L1) {
  SmoothL1CudaPlan plan;
  std::string why;
  onnx_smoothl1::BroadcastPlan bp;
  if (!onnx_smoothl1::MakeBroadcastPlan(xs.data(), (int)xs.size(), ys.data(), (int)ys.size(), &bp, &why) ||
      !onnx_smoothl1::cuda::ToCudaPlan(bp, &plan, &why)) {
    check(false, label + ": plan: " + why);
    return;
  }
  const int64_t n = plan.n;
  const size_t out_n = reduction == SMOOTHL1_CUDA_NONE ? static_cast<size_t>(n) : 1;
  std::vector<T> got(out_n), again(out_n);
  if (g_emulate) {
    static const int caps[] = {3, 1, 7, 64};  // grids of various sizes, one per case in turn
    static int next_cap = 0;
    g_emu_grid_cap = caps[next_cap++ % 4];
    HostBuf<T> ex(hx.size(), misalign), ey(hy.size(), misalign), eout(out_n, misalign);
    std::copy(hx.begin(), hx.end(), ex.p);
    std::copy(hy.begin(), hy.end(), ey.p);
    char err[512];
    for (int rep = 0; rep < 2; ++rep) {
      std::memset(static_cast<void*>(eout.p), 0xFF, out_n * sizeof(T));
      if (emu_launch(loss, type_code<T>(), reduction, beta, ex.p, ey.p, eout.p, &plan, tuning, err,
                     sizeof err)) {
        check(false, label + ": launcher error: " + err);
        return;
      }
      std::copy(eout.p, eout.p + out_n, (rep ? again : got).begin());
    }
  } else {
  DeviceBuf dx((hx.size() + misalign) * sizeof(T)), dy((hy.size() + misalign) * sizeof(T));
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
  for (int rep = 0; rep < 2; ++rep) {
    CUDA_OK(cudaMemsetAsync(dout.p, 0xFF, (out_n + misalign) * sizeof(T), stream));
    if (smooth_l1_cuda_loss_tuned(loss, type_code<T>(), reduction, beta, px, py, pout, &plan,
                                  scratch.p, sb, stream, tuning, err, sizeof err)) {
      check(false, label + ": launcher error: " + err);
      cudaStreamDestroy(stream);
      return;
    }
    CUDA_OK(cudaStreamSynchronize(stream));
    CUDA_OK(cudaGetLastError());
    CUDA_OK(cudaMemcpy((rep ? again : got).data(), pout, out_n * sizeof(T), cudaMemcpyDeviceToHost));
  }
  CUDA_OK(cudaStreamDestroy(stream));
  }
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
  const bool huber = loss == SMOOTHL1_CUDA_LOSS_HUBER;
  auto ref_of = [&](int64_t xo, int64_t yo) {
    return huber ? ref_huber(to_d(hx[xo]), to_d(hy[yo]), beta, !is_f64)
                 : ref_loss(to_d(hx[xo]), to_d(hy[yo]), beta);
  };
  if (reduction == SMOOTHL1_CUDA_NONE) {
    int bad = 0;
    std::string detail, first;
    for (int64_t i = 0; i < n; ++i) {
      int64_t xo, yo;
      offsets(i, &xo, &yo);
      const double ref = ref_of(xo, yo);
      // HuberLoss float32 is PyTorch's float arithmetic itself: bitwise.
      bool ok = close<T>(to_d(got[i]), ref, [&](double r) {
        return is_f64 ? 1e-12 * std::fabs(r) + 1e-300 : huber && is_f32 ? 0.0 : ulp_at<T>(r);
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
    sum += ref_of(xo, yo);
  }
  double ref = static_cast<double>(reduction == SMOOTHL1_CUDA_MEAN ? sum / (long double)n : sum);
  if (n == 0) ref = reduction == SMOOTHL1_CUDA_MEAN ? std::nan("") : 0.0;
  std::string detail;
  const bool ok = close<T>(to_d(got[0]), ref, [&](double r) {
    if (is_f64) return 1e-12 * std::fabs(r) + 1e-300;
    // HuberLoss float32: float vectors of 4 losses are summed in float first (two roundings
    // of a partial), so allow SPEC's float32 reduction floor, 2^-22 relative.
    if (is_f32 && huber) return std::max(std::ldexp(std::fabs(r), -22), ulp_at<float>(r) * 0.5);
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

// HuberLoss: the SmoothL1Loss cases' shapes and paths (sizes with and without a vector tail,
// NaN/inf, rank 0, unaligned, forced strided, broadcasting), deltas exact in float.
template <typename T>
void test_huber(bool quick) {
  const double deltas[] = {0.5, 1.0, static_cast<double>(0.3f), 7.5};
  std::vector<int64_t> sizes = {0, 1, 7, 8, 9, 31, 1000, 4099};
  if (!quick) sizes.push_back((1 << 20) + 3);
  const int64_t mid = quick ? 10007 : 100003;
  const int H = SMOOTHL1_CUDA_LOSS_HUBER;
  for (int64_t n : sizes) {
    const bool specials = n == 1000;
    auto hx = random_values<T>(static_cast<size_t>(n), 3.0, specials);
    auto hy = random_values<T>(static_cast<size_t>(n), 3.0, false);
    for (double delta : deltas)
      for (int red = 0; red < 3; ++red) {
        char label[160];
        std::snprintf(label, sizeof label, "huber %s n=%lld delta=%g %s%s", type_name<T>(),
                      (long long)n, delta, red_name(red), specials ? " (nan/inf)" : "");
        run_case<T>({n}, {n}, hx, hy, delta, red, label, 0, nullptr, H);
      }
  }
  auto s = random_values<T>(1, 3.0, false), t = random_values<T>(1, 3.0, false);
  for (int red = 0; red < 3; ++red) {
    std::string r = std::string("huber ") + type_name<T>() + " " + red_name(red);
    run_case<T>({}, {}, s, t, 1.0, red, r + " rank 0", 0, nullptr, H);
    auto hx = random_values<T>(mid, 3.0, false), hy = random_values<T>(mid, 3.0, false);
    run_case<T>({mid}, {mid}, hx, hy, 0.5, red, r + " misaligned by one element", 1, nullptr, H);
    SmoothL1CudaTuning strided{};
    strided.force_strided = 1;
    run_case<T>({mid}, {mid}, hx, hy, 0.5, red, r + " forced strided", 0, &strided, H);
    auto bx = random_values<T>(4 * 1 * 3000, 3.0, false), by = random_values<T>(5 * 3000, 3.0, false);
    run_case<T>({4, 1, 3000}, {5, 3000}, bx, by, 1.0, red, r + " broadcast [4,1,3000] vs [5,3000]",
                0, nullptr, H);
    run_case<T>({4, 1, 3000}, {}, bx, t, 1.0, red, r + " broadcast vs scalar", 0, nullptr, H);
  }
}

// The launcher refuses a delta that is not finite and > 0 (host check: no GPU needed).
void test_huber_bad_delta() {
  SmoothL1CudaPlan p{};  // n = 0: nothing would be read
  const double bad[] = {0.0, -1.0, std::nan(""), std::numeric_limits<double>::infinity()};
  for (double delta : bad) {
    char err[256] = "";
    const int rc = smooth_l1_cuda_loss(SMOOTHL1_CUDA_LOSS_HUBER, SMOOTHL1_CUDA_F32, SMOOTHL1_CUDA_NONE,
                                       delta, nullptr, nullptr, nullptr, &p, nullptr, 0, nullptr,
                                       err, sizeof err);
    check(rc != 0 && std::strstr(err, "delta") != nullptr,
          "huber launcher refuses delta=" + std::to_string(delta) + ": " + err);
  }
  char err[256] = "";
  check(smooth_l1_cuda_loss(7, SMOOTHL1_CUDA_F32, SMOOTHL1_CUDA_NONE, 1.0, nullptr, nullptr, nullptr,
                            &p, nullptr, 0, nullptr, err, sizeof err) != 0 &&
            std::strstr(err, "loss") != nullptr,
        std::string("unknown loss code refused: ") + err);
}

// A few values near the top of bfloat16: float overflow inside a vector, finite mean.
void test_bf16_overflow() {
  std::vector<__nv_bfloat16> x(16), y(16);
  for (int i = 0; i < 16; ++i) { x[i] = from_d<__nv_bfloat16>(3.0e38); y[i] = from_d<__nv_bfloat16>(-1.0e37); }
  run_case<__nv_bfloat16>({16}, {16}, x, y, 1.0, SMOOTHL1_CUDA_MEAN, "bfloat16 mean near float max");
  run_case<__nv_bfloat16>({16}, {16}, x, y, 1.0, SMOOTHL1_CUDA_MEAN,
                          "huber bfloat16 mean near float max", 0, nullptr, SMOOTHL1_CUDA_LOSS_HUBER);
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
                   void* out, void* scratch, size_t sb, cudaEvent_t a, cudaEvent_t b,
                   int loss = SMOOTHL1_CUDA_LOSS_SMOOTH_L1) {
  SmoothL1CudaPlan plan{};
  plan.n = n;
  char err[512];
  auto once = [&] {
    if (smooth_l1_cuda_loss_tuned(loss, type_code<T>(), reduction, 1.0, x, y, out, &plan, scratch,
                                  sb, nullptr, tuning, err, sizeof err)) {
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
  struct Variant { const char* name; SmoothL1CudaTuning t; int loss; };
  const int S = SMOOTHL1_CUDA_LOSS_SMOOTH_L1;
  std::vector<Variant> variants = {{"default", {0, 0, 0}, S}, {"blocks/SM=2", {0, 2, 0}, S},
                                   {"blocks/SM=4", {0, 4, 0}, S}, {"strided", {0, 0, 1}, S},
                                   {"huber", {0, 0, 0}, SMOOTHL1_CUDA_LOSS_HUBER}};
  if (std::is_same<T, float>::value) variants.push_back({"f32-in-float", {1, 0, 0}, S});
  for (const auto& v : variants)
    for (int red : {SMOOTHL1_CUDA_MEAN, SMOOTHL1_CUDA_NONE}) {
      const double t = time_launch<T>(red, n, &v.t, x.p, y.p, out.p, scratch.p, sb, a, b, v.loss);
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
  bool require_gpu = false, big = false, bench = false, quick = false, bench_only = false,
       emulate = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--require-gpu") require_gpu = true;
    else if (a == "--big") big = true;
    else if (a == "--bench") bench = true;
    else if (a == "--quick") quick = true;
    else if (a == "--bench-only") bench = bench_only = true;
    else if (a == "--emulate") emulate = true;
    else { std::fprintf(stderr, "usage: %s [--require-gpu] [--big] [--bench] [--bench-only] [--quick] [--emulate]\n", argv[0]); return 2; }
  }
  test_plans();
  test_huber_bad_delta();
  {  // what the device check says to an old driver or an old GPU (their reported values)
    char err[512];
    check(smooth_l1_cuda_judge_device(12040, 9, 0, err, sizeof err) == 1 &&
              std::strstr(err, "supports CUDA 12.4") && std::strstr(err, "update the driver"),
          std::string("CUDA 12.4 driver refused: ") + err);
    check(smooth_l1_cuda_judge_device(13000, 7, 0, err, sizeof err) == 1 && std::strstr(err, "sm_70") &&
              std::strstr(err, "sm_75 or newer"),
          std::string("sm_70 GPU refused: ") + err);
    check(smooth_l1_cuda_judge_device(13000, 7, 5, err, sizeof err) == 0 &&
              smooth_l1_cuda_judge_device(13020, 12, 1, err, sizeof err) == 0,
          "CUDA 13 driver with sm_75 / sm_121 accepted");
  }
  if (emulate) {  // every kernel check, on the CPU
    g_emulate = true;
    test_dtype<double>(quick);
    test_dtype<float>(quick);
    test_dtype<__half>(quick);
    test_dtype<__nv_bfloat16>(quick);
    test_huber<double>(quick);
    test_huber<float>(quick);
    test_huber<__half>(quick);
    test_huber<__nv_bfloat16>(quick);
    test_bf16_overflow();
    {  // the float32 tuning variant (element loss in float) still meets 1e-7 on such data
      auto hx = random_values<float>(50021, 2.0, false), hy = random_values<float>(50021, 2.0, false);
      SmoothL1CudaTuning t{};
      t.f32_compute_in_float = 1;
      for (int red : {SMOOTHL1_CUDA_MEAN, SMOOTHL1_CUDA_SUM})
        run_case<float>({50021}, {50021}, hx, hy, 0.5, red, std::string("float32 f32-in-float ") + red_name(red), 0, &t);
    }
    std::printf("emulated: %d checks, %d failed\n", g_checks, g_failures);
    return g_failures ? 1 : 0;
  }
  int devices = 0;
  const cudaError_t e = cudaGetDeviceCount(&devices);
  if (e != cudaSuccess || devices == 0) {
    // No usable driver/GPU: the launcher must refuse with a message naming the problem,
    // never crash (the check every launch makes once per device, then a whole launch).
    char err[512];
    const int rc = smooth_l1_cuda_device_check(0, err, sizeof err);
    check(rc == 1 && (std::strstr(err, "driver") != nullptr || std::strstr(err, "GPU") != nullptr),
          std::string("device check without a usable GPU: ") + err);
    float dummy[4] = {0, 0, 0, 0};
    SmoothL1CudaPlan plan{};
    plan.n = 4;
    const int lrc = smooth_l1_cuda_loss(SMOOTHL1_CUDA_LOSS_SMOOTH_L1, SMOOTHL1_CUDA_F32, SMOOTHL1_CUDA_NONE,
                                        1.0, dummy, dummy, dummy, &plan, nullptr, 0, nullptr, err, sizeof err);
    check(lrc == 1 && err[0] != '\0', std::string("launch without a usable GPU refused: ") + err);
    std::printf("without a usable GPU the launcher says: %s\n", err);
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
    test_huber<double>(quick);
    test_huber<float>(quick);
    test_huber<__half>(quick);
    test_huber<__nv_bfloat16>(quick);
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
