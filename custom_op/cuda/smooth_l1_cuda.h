/* CUDA kernels for onnx_smoothl1::SmoothL1Loss and onnx_smoothl1::HuberLoss behind a plain C
 * interface (one set of kernels; the loss is a parameter).
 *
 * Nothing here needs CUDA or onnxruntime headers: the ORT registration (built by the host
 * compiler) includes this file, and the kernels live in smooth_l1_cuda.cu (built by nvcc).
 * The behaviour is SPEC.md's (PyTorch's smooth_l1_loss):
 *   d = |x - y|;  l = 0.5 * d * d / beta if d < beta else d - 0.5 * beta;  beta == 0 -> l = d.
 * and PyTorch's huber_loss:
 *   d = |x - y|;  l = 0.5 * d * d if d < delta else delta * (d - 0.5 * delta);  delta > 0.
 *
 * Calling sequence (no host synchronisation anywhere, no allocation inside):
 *   SmoothL1CudaPlan plan;   // from the shared broadcast rule: smooth_l1_cuda_plan.h
 *   size_t bytes = smooth_l1_cuda_scratch_bytes(&plan, reduction);   // device memory, may be 0
 *   smooth_l1_cuda(dtype, reduction, beta, x, y, out, &plan, scratch, bytes, stream, err, ...);
 *   // HuberLoss: smooth_l1_cuda_loss(SMOOTHL1_CUDA_LOSS_HUBER, dtype, reduction, delta, ...)
 * Every function returns 0 on success, or nonzero with a NUL-terminated message in err.
 */
#ifndef ONNX_SMOOTHL1_CUDA_H_
#define ONNX_SMOOTHL1_CUDA_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Broadcast plans keep at most this many dimension groups after merging size-1 dims and
 * contiguous runs (numpy broadcasting of any rank is accepted as long as the merged pattern
 * fits; otherwise the caller reports a clear error, see smooth_l1_cuda_plan.h). */
#define SMOOTHL1_CUDA_MAX_RANK 8
/* Upper bound on the number of per-block partial sums (scratch = 8 bytes each). */
#define SMOOTHL1_CUDA_MAX_PARTIALS 4096

typedef enum {
  SMOOTHL1_CUDA_F16 = 0,
  SMOOTHL1_CUDA_BF16 = 1,
  SMOOTHL1_CUDA_F32 = 2,
  SMOOTHL1_CUDA_F64 = 3
} SmoothL1CudaDtype;

typedef enum {
  SMOOTHL1_CUDA_LOSS_SMOOTH_L1 = 0, /* parameter: beta >= 0 (0 = L1, +inf allowed) */
  SMOOTHL1_CUDA_LOSS_HUBER = 1      /* parameter: delta, finite and > 0 */
} SmoothL1CudaLoss;

typedef enum {
  SMOOTHL1_CUDA_NONE = 0,
  SMOOTHL1_CUDA_MEAN = 1,
  SMOOTHL1_CUDA_SUM = 2
} SmoothL1CudaReduction;

/* How x and y map onto the (broadcast) output. rank == 0: x, y and out all hold n elements
 * in the same order (equal shapes, the fast path). rank >= 1: output element i, written in
 * row-major order over dims[0..rank), reads x[sum_k idx_k * x_strides[k]] and likewise y
 * (element strides; 0 where that input is broadcast). */
typedef struct {
  int64_t n; /* number of output elements (before any reduction) */
  int rank;
  int64_t dims[SMOOTHL1_CUDA_MAX_RANK];
  int64_t x_strides[SMOOTHL1_CUDA_MAX_RANK];
  int64_t y_strides[SMOOTHL1_CUDA_MAX_RANK];
} SmoothL1CudaPlan;

/* Device scratch bytes smooth_l1_cuda needs for this plan and reduction (0 for 'none').
 * An upper bound that depends on n only (at most 8 * SMOOTHL1_CUDA_MAX_PARTIALS). */
size_t smooth_l1_cuda_scratch_bytes(const SmoothL1CudaPlan* plan, int reduction);

/* Enqueue the computation on `stream` (a cudaStream_t; NULL = legacy default stream) of the
 * current device. x, y, out, scratch are device pointers; out holds plan->n elements for
 * 'none', one element otherwise. scratch must be 8-byte aligned and hold
 * smooth_l1_cuda_scratch_bytes() bytes; it may be reused once the stream has passed this work.
 * beta >= 0 (0 = L1). 'mean' of zero elements is NaN, 'sum' is 0. The reduction is
 * deterministic: a fixed two-stage tree (per-block partials, then one block), no atomics, so
 * the result is bitwise identical from run to run on the same GPU. */
int smooth_l1_cuda(int dtype, int reduction, double beta, const void* x, const void* y,
                   void* out, const SmoothL1CudaPlan* plan, void* scratch, size_t scratch_bytes,
                   void* stream, char* err, size_t err_len);

/* Knobs for benchmarks and tests only (0 = default everywhere). */
typedef struct {
  int f32_compute_in_float; /* float32: element loss in float (default: in double) */
  int blocks_per_sm;        /* grid = SMs * this (default: the kernel's full occupancy) */
  int force_strided;        /* use the strided (broadcast) kernels even for equal shapes */
} SmoothL1CudaTuning;

int smooth_l1_cuda_tuned(int dtype, int reduction, double beta, const void* x, const void* y,
                         void* out, const SmoothL1CudaPlan* plan, void* scratch,
                         size_t scratch_bytes, void* stream, const SmoothL1CudaTuning* tuning,
                         char* err, size_t err_len);

/* smooth_l1_cuda / smooth_l1_cuda_tuned for either loss (SmoothL1CudaLoss); `param` is beta
 * or delta. HuberLoss computes float32/float16/bfloat16 in float (delta used as a float,
 * as PyTorch does) and float64 in double; f32_compute_in_float does not apply to it. */
int smooth_l1_cuda_loss(int loss, int dtype, int reduction, double param, const void* x,
                        const void* y, void* out, const SmoothL1CudaPlan* plan, void* scratch,
                        size_t scratch_bytes, void* stream, char* err, size_t err_len);
int smooth_l1_cuda_loss_tuned(int loss, int dtype, int reduction, double param, const void* x,
                              const void* y, void* out, const SmoothL1CudaPlan* plan,
                              void* scratch, size_t scratch_bytes, void* stream,
                              const SmoothL1CudaTuning* tuning, char* err, size_t err_len);

/* Can the kernels run on `device`? 0 when they can; otherwise 1 and a message in err that
 * names the problem and what to do: no CUDA driver or one older than the CUDA runtime the
 * library was built with (CUDART_VERSION), or a GPU older than sm_75. Each launch checks its
 * device once (cached), so these become ORT errors naming the node, never a wrong result. */
int smooth_l1_cuda_device_check(int device, char* err, size_t err_len);

/* What this host offers the kernels: 0 and "<gpu name> sm_XY, driver CUDA A.B" in msg when
 * device 0 passes smooth_l1_cuda_device_check; 1 and the reason otherwise (no driver, no
 * device, too old). For `onnx-smoothl1 doctor`. */
int smooth_l1_cuda_host_status(char* msg, size_t msg_len);

/* smooth_l1_cuda_device_check's decision for GPU 0 on the values a host reports: the driver's
 * CUDA version (cudaDriverGetVersion, e.g. 12040) and the GPU's compute capability; for the
 * launcher test, which feeds it what an old driver or an old GPU reports. */
int smooth_l1_cuda_judge_device(int driver, int major, int minor, char* err, size_t err_len);

/* The CUDA runtime version the kernels were built with (CUDART_VERSION, e.g. 13000). */
int smooth_l1_cuda_runtime_version(void);

/* Grid size (blocks) the launcher would use for stage one on the current device; for tests. */
int smooth_l1_cuda_grid_size(int dtype, int reduction, const SmoothL1CudaPlan* plan,
                             int64_t* blocks, char* err, size_t err_len);

#ifdef __cplusplus
}
#endif

#endif /* ONNX_SMOOTHL1_CUDA_H_ */
