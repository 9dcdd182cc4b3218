// SmoothL1Loss and HuberLoss CPU kernels as plain C++ functions over pointers and sizes: no
// onnxruntime types, so they are tested alone (custom_op/tests/smooth_l1_cpu_test.cc) and the
// ORT registration (custom_op/smooth_l1_ops.cc) is a thin adapter. Both losses run the same
// loops (blocks, lanes, ISA variants, broadcasting, threading); the formula is a template
// parameter of them (attrs.loss picks it once per call).
//
// Numerics (README, "CPU kernel"):
// - SmoothL1Loss: every element is computed in double
//     d = |x - y|;  l = d < beta ? d * d * (0.5 / beta) : d - 0.5 * beta
//   (0.5 / beta precomputed, 0 when beta == 0, so beta == 0 is exactly l = d).
// - HuberLoss: torch's CPU formula in torch's compute type and order,
//     d = |x - y|;  l = d < delta ? (0.5 * d) * d : delta * (d - 0.5 * delta)
//   in float for float32 / float16 / bfloat16 (half types widened exactly to float, as torch
//   does for float16), in double for float64; so float32 and float16 'none' equal torch's
//   result bitwise, and bfloat16 (which torch rounds after every operation) is rounded once.
// Elements are rounded once to the element type for 'none'; 'mean'/'sum' accumulate the
// element losses (exactly widened to double) in double.
//
// Determinism: the flat element range is cut into fixed blocks of kBlock elements,
// independent of the thread count. Each block's sum is computed with kLanes fixed
// accumulator lanes combined pairwise, stored at its block index, and the block sums are
// combined pairwise in index order. Which thread runs which block therefore never changes
// the result: it is bitwise identical for intra_op_num_threads 1, 2, 4, ...
#pragma once

#include <cstddef>
#include <cstdint>

#include "../smooth_l1_common.h"

namespace onnx_smoothl1 {
namespace cpu {

// 16-bit float storage types (bit patterns, layout-compatible with Ort::Float16_t /
// Ort::BFloat16_t); converted to/from double with correct rounding in smooth_l1_cpu.cc.
struct Half {
  uint16_t bits;
};
struct BFloat16 {
  uint16_t bits;
};
static_assert(sizeof(Half) == 2 && sizeof(BFloat16) == 2, "16-bit storage types");

double ToDouble(Half h);
double ToDouble(BFloat16 h);
Half HalfFromDouble(double v);         // round to nearest even, overflow to inf
BFloat16 BFloat16FromDouble(double v);  // round to nearest even, overflow to inf

inline constexpr int64_t kBlock = 16384;  // elements per block (fixed: see above)
inline constexpr int kLanes = 8;          // accumulator lanes inside a block

// How to run ``total`` independent tasks fn(data, i), i in [0, total), possibly in
// parallel (ORT: KernelContext_ParallelFor). ``run == nullptr`` means serially.
struct Parallel {
  void (*run)(void* ctx, void (*fn)(void*, size_t), size_t total, void* data) = nullptr;
  void* ctx = nullptr;
};

// Compute the loss ``attrs.loss`` of ``x`` and ``y`` laid out as described by ``plan`` (both
// contiguous in their own, un-broadcast shapes). ``out`` holds plan.numel elements for
// 'none', one element for 'mean'/'sum'. Returns false only when scratch memory for a very
// large reduction could not be allocated.
template <typename T>
bool LossForward(const T* x, const T* y, T* out, const BroadcastPlan& plan,
                     const Attrs& attrs, const Parallel& parallel);

// The double-precision sum of the element losses (the value 'sum' rounds, 'mean' divides).
// Exposed for tests; LossForward uses it.
template <typename T>
bool LossSum(const T* x, const T* y, const BroadcastPlan& plan, const Attrs& attrs,
                 const Parallel& parallel, double* sum);

// Which instruction-set variant of the float/double loops runs: on x86 0 baseline (SSE2),
// 1 AVX2, 2 AVX-512F, detected once from the CPU; on aarch64 0 the portable scalar loops,
// 1 NEON (baseline, always available); elsewhere 0 (portable only). Tests force a lower
// level (-1: the best available) to check all variants give bitwise the same results;
// returns the level now in use.
int SetIsaForTesting(int level);

}  // namespace cpu
}  // namespace onnx_smoothl1
