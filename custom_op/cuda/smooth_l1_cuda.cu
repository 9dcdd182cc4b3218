// CUDA kernels for onnx_smoothl1::SmoothL1Loss and onnx_smoothl1::HuberLoss (see
// smooth_l1_cuda.h for the interface). Both losses run the same kernels: the element formula
// is a template parameter (Form) of every kernel and per-thread function.
//
// Design
// - Equal shapes (plan->rank == 0) with 16-byte aligned pointers: one streaming pass with
//   16-byte loads (float4 / 8 x half / 8 x bf16 / 2 x double), UNROLL independent loads per
//   input in flight per thread, a persistent grid of (SMs x full occupancy) blocks and a
//   grid-stride loop whose assignment of elements to threads depends only on n and the grid.
//   Anything else (broadcast, unaligned views) takes the strided kernels: one element per
//   thread per step, int64 index arithmetic over at most SMOOTHL1_CUDA_MAX_RANK dims.
// - Element loss, SmoothL1Loss: float64 inputs in double; float32 inputs in double too (the
//   difference x - y is then exact and 'none' is correctly rounded); float16/bfloat16 in
//   float (exact conversion, a few float roundings, far below the output type's rounding).
//   HuberLoss: torch's compute type and order (as the CPU kernel): float for float32,
//   float16 and bfloat16 (rounded once to the output type), double for float64.
// - 'mean'/'sum': every thread accumulates in double in a fixed order; a fixed warp-shuffle
//   tree reduces the block into partials[blockIdx.x] (scratch); one block then sums the
//   partials in a fixed order and writes the scalar. No atomics: bitwise reproducible.
// - No host synchronisation, no allocation; every launch is checked.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <atomic>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <type_traits>

#include "smooth_l1_cuda.h"
#include "smooth_l1_cuda_internal.h"

namespace smoothl1_cuda {
namespace {

constexpr int kUnroll = 2;

// Per-element and per-thread code is __host__ __device__: test_cuda_kernels.cu --emulate runs
// it on the CPU (every thread of a grid, the block trees emulated), so indexing and numerics
// are checked on machines without a GPU.
#define SL1_HD __host__ __device__ __forceinline__
#ifdef __CUDA_ARCH__
#define SL1_UNROLL _Pragma("unroll")
#else
#define SL1_UNROLL  // the host compiler has its own idea of unrolling
#endif
constexpr int kMaxDevices = 64;

int fail(char* err, size_t err_len, const char* fmt, ...) {
  if (err != nullptr && err_len > 0) {
    va_list args;
    va_start(args, fmt);
    std::vsnprintf(err, err_len, fmt, args);
    va_end(args);
  }
  return 1;
}

#define SL1_CUDA_CHECK(call)                                                                 \
  do {                                                                                       \
    cudaError_t status_ = (call);                                                            \
    if (status_ != cudaSuccess)                                                              \
      return fail(err, err_len, "CUDA kernel: %s failed: %s (%s)", #call,           \
                  cudaGetErrorString(status_), cudaGetErrorName(status_));                   \
  } while (0)

// ---------------------------------------------------------------------------------------
// Element arithmetic.

// The formula's constants. beta is SmoothL1Loss's beta or HuberLoss's delta (then
// half_beta = 0.5 * delta; half_over_beta and inv_beta_f are unused).
struct Params {
  double beta, half_beta, half_over_beta;  // double compute
  float beta_f, half_beta_f, inv_beta_f;  // float compute
};

// Which element formula a kernel computes (a template parameter of every kernel).
enum Form : int {
  kFormSmoothL1 = 0,  // SmoothL1Loss, beta > 0
  kFormL1 = 1,        // SmoothL1Loss, beta == 0: |x - y| (no division anywhere)
  kFormHuber = 2      // HuberLoss
};

template <typename T>
SL1_HD float to_float(T v);
template <>
SL1_HD float to_float<__half>(__half v) { return __half2float(v); }
template <>
SL1_HD float to_float<__nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}
template <>
SL1_HD float to_float<float>(float v) { return v; }

template <typename C, typename T>
SL1_HD C to_compute(T v) {
  if constexpr (std::is_same<T, double>::value) {
    return static_cast<C>(v);
  } else {
    return static_cast<C>(to_float<T>(v));
  }
}

template <typename T>
SL1_HD T from_double(double v) {
  if constexpr (std::is_same<T, __half>::value) {
    return __double2half(v);
  } else if constexpr (std::is_same<T, __nv_bfloat16>::value) {
    return __double2bfloat16(v);
  } else {
    return static_cast<T>(v);
  }
}

template <typename T, typename C>
SL1_HD T from_compute(C v) {
  if constexpr (std::is_same<C, double>::value) {
    return from_double<T>(v);
  } else if constexpr (std::is_same<T, __half>::value) {
    return __float2half_rn(v);
  } else if constexpr (std::is_same<T, __nv_bfloat16>::value) {
    return __float2bfloat16_rn(v);
  } else {
    return static_cast<T>(v);
  }
}

// SPEC's element loss. In double the quadratic branch is d*d*(0.5/beta), the CPU kernel's
// exact expression (so float32/float64 'none' match it bitwise; PyTorch's 0.5*d*d/beta
// differs by ~1 ulp of double; with beta a float32 attribute, d < beta keeps d*d finite).
// In float it is (0.5*d)*(d*(1/beta)): d*(1/beta) < ~1 there, so nothing overflows for
// inputs whose square would (bfloat16 reaches 3e38); the launcher uses double where 1/beta
// is not finite in float. NaN fails `d < beta` and propagates through d - 0.5*beta.
// HuberLoss is torch's d < delta ? (0.5 * d) * d : delta * (d - 0.5 * delta), in C (the CPU
// kernel's order).
template <typename C, int F>
SL1_HD C element_loss(C x, C y, const Params& p) {
  const C d = fabs(x - y);
  if constexpr (F == kFormL1) {
    return d;
  } else if constexpr (F == kFormHuber) {
    if constexpr (std::is_same<C, double>::value) {
      return d < p.beta ? 0.5 * d * d : p.beta * (d - p.half_beta);
    } else {
      return d < p.beta_f ? 0.5f * d * d : p.beta_f * (d - p.half_beta_f);
    }
  } else if constexpr (std::is_same<C, double>::value) {
    return d < p.beta ? d * d * p.half_over_beta : d - p.half_beta;
  } else {
    return d < p.beta_f ? (0.5f * d) * (d * p.inv_beta_f) : d - p.half_beta_f;
  }
}

// ---------------------------------------------------------------------------------------
// 16-byte vectors, streamed (evict-first: every byte is read or written exactly once).

template <typename T>
struct alignas(16) Vec {
  static constexpr int kN = 16 / sizeof(T);
  T v[kN];
};

template <typename T>
SL1_HD Vec<T> load_vec(const T* base, int64_t i) {
#ifdef __CUDA_ARCH__
  const uint4 raw = __ldcs(reinterpret_cast<const uint4*>(base) + i);
#else
  const uint4 raw = reinterpret_cast<const uint4*>(base)[i];
#endif
  Vec<T> out;
  memcpy(&out, &raw, sizeof(raw));
  return out;
}

template <typename T>
SL1_HD void store_vec(T* base, int64_t i, const Vec<T>& v) {
  uint4 raw;
  memcpy(&raw, &v, sizeof(raw));
#ifdef __CUDA_ARCH__
  __stcs(reinterpret_cast<uint4*>(base) + i, raw);
#else
  reinterpret_cast<uint4*>(base)[i] = raw;
#endif
}

// Sum of one vector's element losses, as a double.
template <typename T, typename C, int F>
SL1_HD double vec_loss_sum(const Vec<T>& a, const Vec<T>& b, const Params& p) {
  constexpr int N = Vec<T>::kN;
  if constexpr (std::is_same<C, double>::value) {
    double s = 0.0;
SL1_UNROLL
    for (int k = 0; k < N; ++k) s += element_loss<double, F>(to_compute<double>(a.v[k]),
                                                               to_compute<double>(b.v[k]), p);
    return s;
  } else {
    // Pairwise float sum of N (power of two) losses, then one conversion to double. A
    // non-finite float sum is recomputed in double (a bfloat16 vector can overflow float
    // while the double total, e.g. for 'mean', stays finite).
    float l[N];
SL1_UNROLL
    for (int k = 0; k < N; ++k) l[k] = element_loss<float, F>(to_float(a.v[k]), to_float(b.v[k]), p);
SL1_UNROLL
    for (int w = 1; w < N; w *= 2) {
SL1_UNROLL
      for (int k = 0; k + w < N; k += 2 * w) l[k] += l[k + w];
    }
    if (isfinite(l[0])) return static_cast<double>(l[0]);
    double s = 0.0;
SL1_UNROLL
    for (int k = 0; k < N; ++k)
      s += static_cast<double>(element_loss<float, F>(to_float(a.v[k]), to_float(b.v[k]), p));
    return s;
  }
}

template <typename T, typename C, int F>
SL1_HD Vec<T> vec_loss(const Vec<T>& a, const Vec<T>& b, const Params& p) {
  Vec<T> o;
SL1_UNROLL
  for (int k = 0; k < Vec<T>::kN; ++k)
    o.v[k] = from_compute<T, C>(element_loss<C, F>(to_compute<C>(a.v[k]), to_compute<C>(b.v[k]), p));
  return o;
}

// Fixed-order block reduction of one double per thread; result valid in thread 0.
__device__ __forceinline__ double block_sum(double v) {
  __shared__ double warp_sums[32];
SL1_UNROLL
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  if (warp == 0) {
    const int warps = (blockDim.x + 31) >> 5;
    v = lane < warps ? warp_sums[lane] : 0.0;
SL1_UNROLL
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  }
  return v;
}

// ---------------------------------------------------------------------------------------
// Kernels.

// Per-thread work of thread `tid` of `stride` threads in all (grid-stride loops). The
// assignment of elements to threads depends only on n and the grid: deterministic.
template <typename T, typename C, int F>
SL1_HD double thread_sum_contig(const T* __restrict__ x, const T* __restrict__ y, int64_t n,
                                const Params& p, int64_t tid, int64_t stride) {
  constexpr int V = Vec<T>::kN;
  const int64_t nvec = n / V;
  double acc = 0.0;
  int64_t i = tid;
  for (; i + (kUnroll - 1) * stride < nvec; i += kUnroll * stride) {
    Vec<T> a[kUnroll], b[kUnroll];
SL1_UNROLL
    for (int u = 0; u < kUnroll; ++u) {
      a[u] = load_vec(x, i + u * stride);
      b[u] = load_vec(y, i + u * stride);
    }
SL1_UNROLL
    for (int u = 0; u < kUnroll; ++u) acc += vec_loss_sum<T, C, F>(a[u], b[u], p);
  }
  for (; i < nvec; i += stride) acc += vec_loss_sum<T, C, F>(load_vec(x, i), load_vec(y, i), p);
  const int64_t tail = n - nvec * V;  // < V elements after the last full vector
  if (tid < tail) {
    const int64_t e = nvec * V + tid;
    acc += static_cast<double>(element_loss<C, F>(to_compute<C>(x[e]), to_compute<C>(y[e]), p));
  }
  return acc;
}

template <typename T, typename C, int F>
SL1_HD void thread_none_contig(const T* __restrict__ x, const T* __restrict__ y,
                               T* __restrict__ out, int64_t n, const Params& p, int64_t tid,
                               int64_t stride) {
  constexpr int V = Vec<T>::kN;
  const int64_t nvec = n / V;
  int64_t i = tid;
  for (; i + (kUnroll - 1) * stride < nvec; i += kUnroll * stride) {
    Vec<T> a[kUnroll], b[kUnroll];
SL1_UNROLL
    for (int u = 0; u < kUnroll; ++u) {
      a[u] = load_vec(x, i + u * stride);
      b[u] = load_vec(y, i + u * stride);
    }
SL1_UNROLL
    for (int u = 0; u < kUnroll; ++u) store_vec(out, i + u * stride, vec_loss<T, C, F>(a[u], b[u], p));
  }
  for (; i < nvec; i += stride) store_vec(out, i, vec_loss<T, C, F>(load_vec(x, i), load_vec(y, i), p));
  const int64_t tail = n - nvec * V;
  if (tid < tail) {
    const int64_t e = nvec * V + tid;
    out[e] = from_compute<T, C>(element_loss<C, F>(to_compute<C>(x[e]), to_compute<C>(y[e]), p));
  }
}

// Offsets of output element `idx` in x and y under the plan (row-major over plan.dims).
SL1_HD void strided_offsets(const SmoothL1CudaPlan& plan, int64_t idx, int64_t& xo, int64_t& yo) {
  xo = 0;
  yo = 0;
SL1_UNROLL
  for (int k = SMOOTHL1_CUDA_MAX_RANK - 1; k >= 0; --k) {
    if (k < plan.rank) {
      const int64_t d = plan.dims[k];
      const int64_t q = idx / d;
      const int64_t r = idx - q * d;
      xo += r * plan.x_strides[k];
      yo += r * plan.y_strides[k];
      idx = q;
    }
  }
}

template <typename T, typename C, int F>
SL1_HD double thread_sum_strided(const T* __restrict__ x, const T* __restrict__ y,
                                 const SmoothL1CudaPlan& plan, const Params& p, int64_t tid,
                                 int64_t stride) {
  double acc = 0.0;
  for (int64_t i = tid; i < plan.n; i += stride) {
    int64_t xo, yo;
    strided_offsets(plan, i, xo, yo);
    acc += static_cast<double>(element_loss<C, F>(to_compute<C>(x[xo]), to_compute<C>(y[yo]), p));
  }
  return acc;
}

template <typename T, typename C, int F>
SL1_HD void thread_none_strided(const T* __restrict__ x, const T* __restrict__ y,
                                T* __restrict__ out, const SmoothL1CudaPlan& plan,
                                const Params& p, int64_t tid, int64_t stride) {
  for (int64_t i = tid; i < plan.n; i += stride) {
    int64_t xo, yo;
    strided_offsets(plan, i, xo, yo);
    out[i] = from_compute<T, C>(element_loss<C, F>(to_compute<C>(x[xo]), to_compute<C>(y[yo]), p));
  }
}

// Stage two, per thread: partials t, t + kFinalThreads, ... in order.
SL1_HD double thread_sum_partials(const double* __restrict__ partials, int count, int t) {
  double acc = 0.0;
  for (int i = t; i < count; i += kFinalThreads) acc += partials[i];
  return acc;
}

__device__ __forceinline__ int64_t global_tid() {
  return static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_threads() {
  return static_cast<int64_t>(gridDim.x) * kThreads;
}

template <typename T, typename C, int F>
__global__ void __launch_bounds__(kThreads)
    reduce_contig(const T* __restrict__ x, const T* __restrict__ y, int64_t n, Params p,
                  double* __restrict__ partials) {
  const double acc = block_sum(thread_sum_contig<T, C, F>(x, y, n, p, global_tid(), grid_threads()));
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

template <typename T, typename C, int F>
__global__ void __launch_bounds__(kThreads)
    none_contig(const T* __restrict__ x, const T* __restrict__ y, T* __restrict__ out,
                int64_t n, Params p) {
  thread_none_contig<T, C, F>(x, y, out, n, p, global_tid(), grid_threads());
}

template <typename T, typename C, int F>
__global__ void __launch_bounds__(kThreads)
    reduce_strided(const T* __restrict__ x, const T* __restrict__ y, const SmoothL1CudaPlan plan,
                   Params p, double* __restrict__ partials) {
  const double acc = block_sum(thread_sum_strided<T, C, F>(x, y, plan, p, global_tid(), grid_threads()));
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

template <typename T, typename C, int F>
__global__ void __launch_bounds__(kThreads)
    none_strided(const T* __restrict__ x, const T* __restrict__ y, T* __restrict__ out,
                 const SmoothL1CudaPlan plan, Params p) {
  thread_none_strided<T, C, F>(x, y, out, plan, p, global_tid(), grid_threads());
}

// Stage two: one block sums `count` partials in a fixed order; mean divides by n (n == 0
// gives 0/0 = NaN, SPEC's empty mean; the empty sum is 0).
template <typename T>
__global__ void __launch_bounds__(kFinalThreads)
    finalize(const double* __restrict__ partials, int count, int64_t n, int mean,
             T* __restrict__ out) {
  double acc = block_sum(thread_sum_partials(partials, count, threadIdx.x));
  if (threadIdx.x == 0) {
    if (mean) acc = acc / static_cast<double>(n);
    out[0] = from_double<T>(acc);
  }
}

// ---------------------------------------------------------------------------------------
// Host side.

// SM count per device, read once (cudaDeviceGetAttribute does not synchronise).
std::atomic<int> g_sm_count[kMaxDevices];

int sm_count(int device, int* out, char* err, size_t err_len) {
  if (device < 0 || device >= kMaxDevices)
    return fail(err, err_len, "CUDA kernel: device ordinal %d out of range", device);
  int v = g_sm_count[device].load(std::memory_order_relaxed);
  if (v <= 0) {
    SL1_CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, device));
    if (v <= 0) return fail(err, err_len, "CUDA kernel: device reports %d SMs", v);
    g_sm_count[device].store(v, std::memory_order_relaxed);
  }
  *out = v;
  return 0;
}

// Resident blocks per SM of one kernel (full occupancy), read once per kernel and device.
// Keyed by the kernel itself (not its signature), so the grid, and with it the summation
// order, depends only on the kernel, the device and n: never on which kernel ran first.
template <auto Kernel>
int blocks_per_sm(int device, int* out, char* err, size_t err_len) {
  static std::atomic<int> cache[kMaxDevices];
  int v = cache[device].load(std::memory_order_relaxed);
  if (v <= 0) {
    SL1_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&v, Kernel, kThreads, 0));
    if (v <= 0) v = 1;
    cache[device].store(v, std::memory_order_relaxed);
  }
  *out = v;
  return 0;
}

struct Launch {
  int loss;  // SmoothL1CudaLoss
  int dtype, reduction;
  const void* x;
  const void* y;
  void* out;
  const SmoothL1CudaPlan* plan;
  double* partials;
  size_t scratch_bytes;
  cudaStream_t stream;
  Params params;
  const SmoothL1CudaTuning* tuning;
  bool contiguous;  // use the vector kernels
  int64_t* grid_only;  // non-null: only report stage one's grid, launch nothing
  char* err;
  size_t err_len;
};

template <auto Kernel>
int grid_for(const Launch& L, int64_t work_blocks, int* grid) {
  char* err = L.err;
  size_t err_len = L.err_len;
  int device = 0;
  SL1_CUDA_CHECK(cudaGetDevice(&device));
  int sms = 0, per_sm = 0;
  if (sm_count(device, &sms, err, err_len)) return 1;
  if (L.tuning && L.tuning->blocks_per_sm > 0) {
    per_sm = L.tuning->blocks_per_sm;
  } else if (blocks_per_sm<Kernel>(device, &per_sm, err, err_len)) {
    return 1;
  }
  int64_t g = static_cast<int64_t>(sms) * per_sm;
  if (work_blocks < 1) work_blocks = 1;
  if (g > work_blocks) g = work_blocks;
  if (g > SMOOTHL1_CUDA_MAX_PARTIALS) g = SMOOTHL1_CUDA_MAX_PARTIALS;
  *grid = static_cast<int>(g);
  return 0;
}

template <typename T, typename C, int F>
int run_typed(const Launch& L) {
  char* err = L.err;
  size_t err_len = L.err_len;
  const int64_t n = L.plan->n;
  const T* x = static_cast<const T*>(L.x);
  const T* y = static_cast<const T*>(L.y);
  T* out = static_cast<T*>(L.out);
  constexpr int V = Vec<T>::kN;
  if (L.reduction == SMOOTHL1_CUDA_NONE) {
    if (n == 0 && !L.grid_only) return 0;
    int grid = 0;
    if (L.contiguous) {
      if (grid_for<none_contig<T, C, F>>(L, (n / V + kThreads - 1) / kThreads, &grid)) return 1;
      if (L.grid_only) return *L.grid_only = grid, 0;
      none_contig<T, C, F><<<grid, kThreads, 0, L.stream>>>(x, y, out, n, L.params);
    } else {
      if (grid_for<none_strided<T, C, F>>(L, (n + kThreads - 1) / kThreads, &grid)) return 1;
      if (L.grid_only) return *L.grid_only = grid, 0;
      none_strided<T, C, F><<<grid, kThreads, 0, L.stream>>>(x, y, out, *L.plan, L.params);
    }
    SL1_CUDA_CHECK(cudaGetLastError());
    return 0;
  }
  int grid = 0;
  if (n > 0) {
    if (L.contiguous) {
      if (grid_for<reduce_contig<T, C, F>>(L, (n / V + kThreads - 1) / kThreads, &grid)) return 1;
    } else {
      if (grid_for<reduce_strided<T, C, F>>(L, (n + kThreads - 1) / kThreads, &grid)) return 1;
    }
  }
  if (L.grid_only) return *L.grid_only = grid, 0;
  if (static_cast<size_t>(grid) * sizeof(double) > L.scratch_bytes)
    return fail(err, err_len,
                "CUDA kernel: scratch buffer of %zu bytes is too small (%zu needed)",
                L.scratch_bytes, static_cast<size_t>(grid) * sizeof(double));
  if (grid > 0) {
    if (L.contiguous) {
      reduce_contig<T, C, F><<<grid, kThreads, 0, L.stream>>>(x, y, n, L.params, L.partials);
    } else {
      reduce_strided<T, C, F><<<grid, kThreads, 0, L.stream>>>(x, y, *L.plan, L.params, L.partials);
    }
    SL1_CUDA_CHECK(cudaGetLastError());
  }
  finalize<T><<<1, kFinalThreads, 0, L.stream>>>(L.partials, grid, n,
                                                 L.reduction == SMOOTHL1_CUDA_MEAN ? 1 : 0, out);
  SL1_CUDA_CHECK(cudaGetLastError());
  return 0;
}

// The element formula of a launch: HuberLoss, SmoothL1Loss, or SmoothL1Loss's beta == 0 (L1).
inline int form_of(const Launch& L) {
  if (L.loss == SMOOTHL1_CUDA_LOSS_HUBER) return kFormHuber;
  return L.params.beta == 0.0 ? kFormL1 : kFormSmoothL1;
}

// Calls exec.template go<T, C, F>(L) for the launch's formula F (device launcher or the CPU
// emulation of test_cuda_kernels.cu: the same selection either way).
template <typename T, typename C, typename Exec>
int with_form(const Launch& L, Exec& exec) {
  switch (form_of(L)) {
    case kFormHuber: return exec.template go<T, C, kFormHuber>(L);
    case kFormL1: return exec.template go<T, C, kFormL1>(L);
    default: return exec.template go<T, C, kFormSmoothL1>(L);
  }
}

// Picks the element type and compute type and hands them to exec.run<T, C>(L): the device
// launcher below, or the CPU emulation in test_cuda_emulated (same selection either way).
template <typename Exec>
int dispatch_to(Launch& L, Exec& exec) {
  if (L.loss == SMOOTHL1_CUDA_LOSS_HUBER) {  // torch's compute types (file comment)
    switch (L.dtype) {
      case SMOOTHL1_CUDA_F16: return exec.template run<__half, float>(L);
      case SMOOTHL1_CUDA_BF16: return exec.template run<__nv_bfloat16, float>(L);
      case SMOOTHL1_CUDA_F32: return exec.template run<float, float>(L);
      case SMOOTHL1_CUDA_F64: return exec.template run<double, double>(L);
      default:
        return fail(L.err, L.err_len, "CUDA kernel: unsupported element type code %d", L.dtype);
    }
  }
  const double beta = L.params.beta;
  // float compute needs beta exact in float and a finite float 1/beta.
  const float beta_f = static_cast<float>(beta);
  const bool float_ok = static_cast<double>(beta_f) == beta && std::isfinite(1.0f / beta_f);
  switch (L.dtype) {
    case SMOOTHL1_CUDA_F16:
      return float_ok ? exec.template run<__half, float>(L) : exec.template run<__half, double>(L);
    case SMOOTHL1_CUDA_BF16:
      return float_ok ? exec.template run<__nv_bfloat16, float>(L)
                      : exec.template run<__nv_bfloat16, double>(L);
    case SMOOTHL1_CUDA_F32:
      if (float_ok && L.tuning && L.tuning->f32_compute_in_float) return exec.template run<float, float>(L);
      return exec.template run<float, double>(L);
    case SMOOTHL1_CUDA_F64:
      return exec.template run<double, double>(L);
    default:
      return fail(L.err, L.err_len, "CUDA kernel: unsupported element type code %d",
                  L.dtype);
  }
}

struct DeviceExec {
  template <typename T, typename C>
  int run(const Launch& L) {
    return with_form<T, C>(L, *this);
  }
  template <typename T, typename C, int F>
  int go(const Launch& L) {
    return run_typed<T, C, F>(L);
  }
};

int dispatch(Launch& L) {
  DeviceExec exec;
  return dispatch_to(L, exec);
}

// `beta` is SmoothL1Loss's beta or HuberLoss's delta (by `loss`).
int prepare(Launch& L, int loss, int dtype, int reduction, double beta, const void* x,
            const void* y, void* out, const SmoothL1CudaPlan* plan, void* scratch,
            size_t scratch_bytes, void* stream, const SmoothL1CudaTuning* tuning, char* err,
            size_t err_len) {
  if (err && err_len) err[0] = '\0';
  if (plan == nullptr) return fail(err, err_len, "CUDA kernel: null plan");
  if (loss != SMOOTHL1_CUDA_LOSS_SMOOTH_L1 && loss != SMOOTHL1_CUDA_LOSS_HUBER)
    return fail(err, err_len, "CUDA kernel: unknown loss code %d", loss);
  if (reduction != SMOOTHL1_CUDA_NONE && reduction != SMOOTHL1_CUDA_MEAN &&
      reduction != SMOOTHL1_CUDA_SUM)
    return fail(err, err_len, "CUDA kernel: unknown reduction code %d", reduction);
  if (loss == SMOOTHL1_CUDA_LOSS_HUBER && !(beta > 0.0 && std::isfinite(beta)))
    return fail(err, err_len, "CUDA kernel: delta must be a finite float > 0, got %g", beta);
  if (!(beta >= 0.0))  // +inf is allowed (SPEC/spec.check_beta): every finite d is quadratic
    return fail(err, err_len, "CUDA kernel: beta must be >= 0, got %g", beta);
  if (plan->n < 0 || plan->rank < 0 || plan->rank > SMOOTHL1_CUDA_MAX_RANK)
    return fail(err, err_len, "CUDA kernel: invalid plan (n=%lld, rank=%d)",
                static_cast<long long>(plan->n), plan->rank);
  if (plan->n > 0 && (x == nullptr || y == nullptr))
    return fail(err, err_len, "CUDA kernel: null input pointer");
  if (out == nullptr && (reduction != SMOOTHL1_CUDA_NONE || plan->n > 0))
    return fail(err, err_len, "CUDA kernel: null output pointer");
  if (reduction != SMOOTHL1_CUDA_NONE && plan->n > 0 &&
      (scratch == nullptr || reinterpret_cast<uintptr_t>(scratch) % alignof(double) != 0))
    return fail(err, err_len, "CUDA kernel: scratch must be a non-null, 8-byte aligned "
                              "device pointer");
  L = Launch{};
  L.loss = loss;
  L.dtype = dtype;
  L.reduction = reduction;
  L.x = x;
  L.y = y;
  L.out = out;
  L.plan = plan;
  L.partials = static_cast<double*>(scratch);
  L.scratch_bytes = scratch_bytes;
  L.stream = static_cast<cudaStream_t>(stream);
  L.tuning = tuning;
  L.err = err;
  L.err_len = err_len;
  L.params.beta = beta;
  L.params.half_beta = 0.5 * beta;
  L.params.half_over_beta = beta > 0.0 ? 0.5 / beta : 0.0;  // beta = inf: quadratic gives 0
  L.params.beta_f = static_cast<float>(beta);
  // HuberLoss in float: torch's scalar_t(delta * 0.5), delta * 0.5 taken in double.
  L.params.half_beta_f = loss == SMOOTHL1_CUDA_LOSS_HUBER ? static_cast<float>(0.5 * beta)
                                                          : 0.5f * L.params.beta_f;
  L.params.inv_beta_f = beta > 0.0 ? 1.0f / L.params.beta_f : 0.0f;
  // The vector kernels need equal shapes and 16-byte aligned x, y (and out for 'none').
  auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  L.contiguous = plan->rank == 0 && aligned(x) && aligned(y) &&
                 (reduction != SMOOTHL1_CUDA_NONE || aligned(out)) &&
                 !(tuning && tuning->force_strided);
  return 0;
}

}  // namespace
}  // namespace smoothl1_cuda

using smoothl1_cuda::Launch;

// Equal shapes taking the strided kernels (unaligned pointers, tests) read through a
// rank-1 identity plan.
static const SmoothL1CudaPlan* effective_plan(const Launch& L, SmoothL1CudaPlan* tmp) {
  if (L.contiguous || L.plan->rank > 0) return L.plan;
  *tmp = SmoothL1CudaPlan{};
  tmp->n = L.plan->n;
  tmp->rank = 1;
  tmp->dims[0] = L.plan->n > 0 ? L.plan->n : 1;
  tmp->x_strides[0] = 1;
  tmp->y_strides[0] = 1;
  return tmp;
}

namespace smoothl1_cuda {
namespace {
// Oldest GPU the kernels are built for (CMAKE_CUDA_ARCHITECTURES starts at 75).
constexpr int kMinSm = 75;
// 1 once a device passed the check (a failed check is repeated: the message is cheap).
std::atomic<int> g_device_ok[kMaxDevices];

// The decision, on the versions the driver and the device report (kept apart from the CUDA
// calls so the launcher test can feed it what an old driver or an old GPU reports).
int judge_device(int device, cudaError_t driver_status, int driver, int major, int minor, char* err,
                 size_t err_len) {
  if (driver_status != cudaSuccess || driver == 0)
    return fail(err, err_len, "no NVIDIA driver found (%s): install the NVIDIA driver for "
                "CUDA %d.%d or newer", cudaGetErrorString(driver_status), CUDART_VERSION / 1000,
                (CUDART_VERSION % 1000) / 10);
  if (driver / 1000 < CUDART_VERSION / 1000)
    return fail(err, err_len, "the NVIDIA driver supports CUDA %d.%d, but these kernels were "
                "built with CUDA %d.%d: update the driver (CUDA %d needs driver >= 580)",
                driver / 1000, (driver % 1000) / 10, CUDART_VERSION / 1000,
                (CUDART_VERSION % 1000) / 10, CUDART_VERSION / 1000);
  if (major >= 0 && major * 10 + minor < kMinSm)
    return fail(err, err_len, "GPU %d is sm_%d%d; the kernels need sm_%d or newer (run the "
                "model on the CPU provider instead)", device, major, minor, kMinSm);
  return 0;
}

int check_device(int device, char* err, size_t err_len) {
  if (device < 0 || device >= kMaxDevices)
    return fail(err, err_len, "CUDA kernel: device ordinal %d out of range", device);
  if (g_device_ok[device].load(std::memory_order_relaxed)) return 0;
  int driver = 0;
  const cudaError_t st = cudaDriverGetVersion(&driver);
  if (judge_device(device, st, driver, -1, 0, err, err_len)) return 1;  // the driver first
  int major = 0, minor = 0;
  SL1_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  SL1_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
  if (judge_device(device, st, driver, major, minor, err, err_len)) return 1;
  g_device_ok[device].store(1, std::memory_order_relaxed);
  return 0;
}
}  // namespace
}  // namespace smoothl1_cuda

extern "C" int smooth_l1_cuda_device_check(int device, char* err, size_t err_len) {
  if (err && err_len) err[0] = '\0';
  return smoothl1_cuda::check_device(device, err, err_len);
}

extern "C" int smooth_l1_cuda_runtime_version(void) { return CUDART_VERSION; }

extern "C" int smooth_l1_cuda_judge_device(int driver, int major, int minor, char* err, size_t err_len) {
  if (err && err_len) err[0] = '\0';
  return smoothl1_cuda::judge_device(0, cudaSuccess, driver, major, minor, err, err_len);
}

extern "C" int smooth_l1_cuda_host_status(char* msg, size_t msg_len) {
  using smoothl1_cuda::fail;
  if (msg && msg_len) msg[0] = '\0';
  int driver = 0;
  cudaDriverGetVersion(&driver);
  int count = 0;
  cudaError_t st = cudaGetDeviceCount(&count);
  if (st != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error state for later calls
    return fail(msg, msg_len, "no usable GPU: %s", cudaGetErrorString(st));
  }
  if (count == 0) return fail(msg, msg_len, "no usable GPU: no CUDA device found");
  if (smoothl1_cuda::check_device(0, msg, msg_len)) return 1;
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) prop.name[0] = '\0';
  std::snprintf(msg, msg_len, "%s sm_%d%d, driver CUDA %d.%d", prop.name[0] ? prop.name : "GPU 0",
                prop.major, prop.minor, driver / 1000, (driver % 1000) / 10);
  return 0;
}

extern "C" int smooth_l1_cuda_loss_tuned(int loss, int dtype, int reduction, double param,
                                         const void* x, const void* y, void* out,
                                         const SmoothL1CudaPlan* plan, void* scratch,
                                         size_t scratch_bytes, void* stream,
                                         const SmoothL1CudaTuning* tuning, char* err,
                                         size_t err_len) {
  Launch L{};
  if (smoothl1_cuda::prepare(L, loss, dtype, reduction, param, x, y, out, plan, scratch,
                             scratch_bytes, stream, tuning, err, err_len))
    return 1;
  int device = 0;
  cudaError_t st = cudaGetDevice(&device);
  if (st != cudaSuccess)
    return smoothl1_cuda::fail(err, err_len, "no usable NVIDIA driver or GPU (%s, %s): the CUDA "
                               "kernels need a driver for CUDA %d (>= 580); run on the CPU provider "
                               "otherwise", cudaGetErrorString(st), cudaGetErrorName(st),
                               CUDART_VERSION / 1000);
  if (smoothl1_cuda::check_device(device, err, err_len)) return 1;
  SmoothL1CudaPlan tmp;
  L.plan = effective_plan(L, &tmp);
  return smoothl1_cuda::dispatch(L);
}

extern "C" int smooth_l1_cuda_loss(int loss, int dtype, int reduction, double param,
                                   const void* x, const void* y, void* out,
                                   const SmoothL1CudaPlan* plan, void* scratch,
                                   size_t scratch_bytes, void* stream, char* err,
                                   size_t err_len) {
  return smooth_l1_cuda_loss_tuned(loss, dtype, reduction, param, x, y, out, plan, scratch,
                                   scratch_bytes, stream, nullptr, err, err_len);
}

extern "C" int smooth_l1_cuda_tuned(int dtype, int reduction, double beta, const void* x,
                                    const void* y, void* out, const SmoothL1CudaPlan* plan,
                                    void* scratch, size_t scratch_bytes, void* stream,
                                    const SmoothL1CudaTuning* tuning, char* err,
                                    size_t err_len) {
  return smooth_l1_cuda_loss_tuned(SMOOTHL1_CUDA_LOSS_SMOOTH_L1, dtype, reduction, beta, x, y,
                                   out, plan, scratch, scratch_bytes, stream, tuning, err,
                                   err_len);
}

extern "C" int smooth_l1_cuda(int dtype, int reduction, double beta, const void* x,
                              const void* y, void* out, const SmoothL1CudaPlan* plan,
                              void* scratch, size_t scratch_bytes, void* stream, char* err,
                              size_t err_len) {
  return smooth_l1_cuda_tuned(dtype, reduction, beta, x, y, out, plan, scratch, scratch_bytes,
                              stream, nullptr, err, err_len);
}

extern "C" int smooth_l1_cuda_grid_size(int dtype, int reduction, const SmoothL1CudaPlan* plan,
                                        int64_t* blocks, char* err, size_t err_len) {
  // Aligned dummy pointers: only the plan, dtype and reduction matter here.
  static double dummy[2];
  Launch L{};
  if (smoothl1_cuda::prepare(L, SMOOTHL1_CUDA_LOSS_SMOOTH_L1, dtype, reduction, 1.0, dummy, dummy,
                             dummy, plan, dummy, sizeof(dummy), nullptr, nullptr, err, err_len))
    return 1;
  SmoothL1CudaPlan tmp;
  L.plan = effective_plan(L, &tmp);
  L.grid_only = blocks;
  return smoothl1_cuda::dispatch(L);
}

extern "C" size_t smooth_l1_cuda_scratch_bytes(const SmoothL1CudaPlan* plan, int reduction) {
  if (plan == nullptr || reduction == SMOOTHL1_CUDA_NONE || plan->n <= 0) return 0;
  return static_cast<size_t>(smoothl1_cuda::max_partials(plan->n)) * sizeof(double);
}
