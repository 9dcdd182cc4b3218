// The CUDA kernels' view of the shared broadcast rule: converts the CPU kernel's
// onnx_smoothl1::BroadcastPlan (numpy broadcasting, ../smooth_l1_common.h) into the plain
// SmoothL1CudaPlan the launcher takes, so both execution providers accept exactly the same
// shapes. Host C++ only (no CUDA, no ORT).
#pragma once

#include <string>

#include "../smooth_l1_common.h"
#include "smooth_l1_cuda.h"

namespace onnx_smoothl1 {
namespace cuda {

// False (and *why) only when the merged broadcast pattern has more dimension groups than
// the CUDA kernels index (SMOOTHL1_CUDA_MAX_RANK); never for equal shapes.
inline bool ToCudaPlan(const BroadcastPlan& bp, SmoothL1CudaPlan* out, std::string* why) {
  *out = SmoothL1CudaPlan{};
  out->n = bp.numel;
  if (bp.numel == 0 || bp.contiguous()) return true;  // rank 0: the equal-shapes fast path
  if (bp.rank > SMOOTHL1_CUDA_MAX_RANK) {
    *why = "broadcasting needs " + std::to_string(bp.rank) +
           " dimension groups after merging; the CUDA kernel supports at most " +
           std::to_string(SMOOTHL1_CUDA_MAX_RANK);
    return false;
  }
  out->rank = bp.rank;
  for (int k = 0; k < bp.rank; ++k) {
    out->dims[k] = bp.dims[k];
    out->x_strides[k] = bp.x_stride[k];
    out->y_strides[k] = bp.y_stride[k];
  }
  return true;
}

}  // namespace cuda
}  // namespace onnx_smoothl1
