// Constants of the launcher (smooth_l1_cuda.cu) that its tests also rely on.
#ifndef ONNX_SMOOTHL1_CUDA_INTERNAL_H_
#define ONNX_SMOOTHL1_CUDA_INTERNAL_H_

#include <stdint.h>

#include "smooth_l1_cuda.h"

namespace smoothl1_cuda {

constexpr int kThreads = 256;       // threads per block, every kernel
constexpr int kFinalThreads = 256;  // the one block of stage two

// Stage one never launches more blocks than one per kThreads elements (the strided kernels
// handle one element per thread per step; the vector kernels handle more), nor more than
// SMOOTHL1_CUDA_MAX_PARTIALS: so this bounds the partials for every dtype and kernel.
inline int64_t max_partials(int64_t n) {
  int64_t blocks = (n + kThreads - 1) / kThreads;
  if (blocks < 1) blocks = 1;
  return blocks < SMOOTHL1_CUDA_MAX_PARTIALS ? blocks : SMOOTHL1_CUDA_MAX_PARTIALS;
}

}  // namespace smoothl1_cuda

#endif  // ONNX_SMOOTHL1_CUDA_INTERNAL_H_
