// Shared by every loss kernel (CPU and CUDA, SmoothL1Loss and HuberLoss): the node's
// attributes and their validation, and numpy-style broadcasting of the two input shapes.
//
// No onnxruntime types here, so the plain kernel functions and their C++ test binary can
// use it without ORT headers, and so can host code in a .cu file.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

namespace onnx_smoothl1 {

inline constexpr const char* kDomain = "onnx_smoothl1";
inline constexpr const char* kOpType = "SmoothL1Loss";
inline constexpr const char* kHuberOpType = "HuberLoss";

// Which element formula a node computes. The kernels take it as a template parameter (one
// set of loops, two formulas), so HuberLoss is SmoothL1Loss's code with another formula:
//   kSmoothL1: d < beta  ? 0.5 * d * d / beta   : d - 0.5 * beta
//   kHuber:    d < delta ? 0.5 * d * d          : delta * (d - 0.5 * delta)   (torch's order)
enum class Loss : int { kSmoothL1 = 0, kHuber = 1 };

inline const char* LossOpType(Loss loss) {
  return loss == Loss::kHuber ? kHuberOpType : kOpType;
}
// The FLOAT attribute of each op type besides 'reduction'.
inline const char* LossParamName(Loss loss) { return loss == Loss::kHuber ? "delta" : "beta"; }

enum class Reduction : int { kNone = 0, kMean = 1, kSum = 2 };

inline const char* ReductionName(Reduction r) {
  switch (r) {
    case Reduction::kNone: return "none";
    case Reduction::kMean: return "mean";
    case Reduction::kSum: return "sum";
  }
  return "?";
}

// The node's attributes, validated once when the kernel is created. Defaults are the
// function's (SPEC: beta 1.0 / delta 1.0, reduction 'mean').
struct Attrs {
  Loss loss = Loss::kSmoothL1;
  float beta = 1.0f;   // SmoothL1Loss only
  float delta = 1.0f;  // HuberLoss only
  Reduction reduction = Reduction::kMean;

  // Constants of the element formula, precomputed once (no division on the hot path and
  // none at all when beta == 0, where the formula degenerates to d - 0 = d).
  double beta_d() const { return static_cast<double>(beta); }
  double half_over_beta() const { return beta > 0.0f ? 0.5 / static_cast<double>(beta) : 0.0; }
  double half_beta() const { return 0.5 * static_cast<double>(beta); }
};

// Empty string when ``beta`` is acceptable (a float >= 0, +inf allowed as in spec.check_beta),
// otherwise what is wrong with it.
inline std::string CheckBeta(float beta) {
  if (std::isnan(beta)) return "beta must be a float >= 0, got nan";
  if (beta < 0.0f) return "beta must be a float >= 0, got " + std::to_string(beta);
  return {};
}

// Empty string when ``delta`` is acceptable for HuberLoss (finite and > 0, as
// spec.check_delta: torch refuses delta <= 0, and an infinite delta would make the linear
// branch inf * (d - inf)), otherwise what is wrong with it.
inline std::string CheckDelta(float delta) {
  if (std::isnan(delta)) return "delta must be a finite float > 0, got nan";
  if (std::isinf(delta)) return std::string("delta must be a finite float > 0, got ") +
                                (delta > 0 ? "inf" : "-inf");
  if (!(delta > 0.0f)) return "delta must be a finite float > 0, got " + std::to_string(delta);
  return {};
}

// Parse ``reduction``; false (and ``*why``) for anything but none/mean/sum.
inline bool ParseReduction(const std::string& value, Reduction* out, std::string* why) {
  if (value == "none") { *out = Reduction::kNone; return true; }
  if (value == "mean") { *out = Reduction::kMean; return true; }
  if (value == "sum") { *out = Reduction::kSum; return true; }
  *why = "reduction must be one of 'none', 'mean', 'sum'; got '" + value + "'";
  return false;
}

// ---------------------------------------------------------------------------------------
// Broadcasting (numpy rules), planned without heap allocation.

// Highest rank handled (output rank, before coalescing). ONNX allows more in principle; a
// larger rank is rejected with a clear error rather than handled badly.
inline constexpr int kMaxRank = 32;

struct BroadcastPlan {
  int64_t numel = 0;           // number of output elements of the element-wise loss
  int out_rank = 0;            // rank of the broadcast shape
  int64_t out_dims[kMaxRank];  // the broadcast shape ('none' output shape)
  // Iteration space after dropping size-1 dims and merging dims that are contiguous for
  // both inputs. rank 1 with both strides 1 is the contiguous fast path.
  int rank = 0;
  int64_t dims[kMaxRank];
  int64_t x_stride[kMaxRank];  // in elements; 0 where input is broadcast along the dim
  int64_t y_stride[kMaxRank];

  bool contiguous() const {
    return rank == 0 || (rank == 1 && x_stride[0] == 1 && y_stride[0] == 1);
  }
};

inline std::string ShapeToString(const int64_t* dims, int rank) {
  std::string s = "[";
  for (int i = 0; i < rank; ++i) {
    if (i) s += ", ";
    s += std::to_string(dims[i]);
  }
  return s + "]";
}

// Fill ``plan`` for input shapes ``xd`` (rank ``xr``) and ``yd`` (rank ``yr``). Returns
// false with ``*why`` set when the shapes do not broadcast or the rank is too large.
inline bool MakeBroadcastPlan(const int64_t* xd, int xr, const int64_t* yd, int yr,
                              BroadcastPlan* plan, std::string* why) {
  const int r = xr > yr ? xr : yr;
  if (r > kMaxRank) {
    *why = "rank " + std::to_string(r) + " exceeds the supported maximum " +
           std::to_string(kMaxRank);
    return false;
  }
  plan->out_rank = r;
  int64_t xs[kMaxRank], ys[kMaxRank];
  int64_t x_acc = 1, y_acc = 1, numel = 1;
  // Right-aligned, innermost first, so strides accumulate as we go.
  for (int i = r - 1; i >= 0; --i) {
    const int xi = i - (r - xr), yi = i - (r - yr);
    const int64_t a = xi >= 0 ? xd[xi] : 1;
    const int64_t b = yi >= 0 ? yd[yi] : 1;
    if (a < 0 || b < 0 || (a != b && a != 1 && b != 1)) {
      *why = "shapes " + ShapeToString(xd, xr) + " and " + ShapeToString(yd, yr) +
             " cannot be broadcast together";
      return false;
    }
    const int64_t o = a == 1 ? b : a;
    plan->out_dims[i] = o;
    xs[i] = (a == 1) ? 0 : x_acc;
    ys[i] = (b == 1) ? 0 : y_acc;
    x_acc *= a;
    y_acc *= b;
    numel *= o;
  }
  plan->numel = numel;
  // Coalesce (outermost first): drop size-1 dims, merge a dim into the previous (outer)
  // one when that is contiguous with it for both inputs.
  int n = 0;
  for (int i = 0; i < r; ++i) {
    const int64_t o = plan->out_dims[i];
    if (o == 1) continue;
    if (n > 0 && plan->x_stride[n - 1] == xs[i] * o && plan->y_stride[n - 1] == ys[i] * o) {
      plan->dims[n - 1] *= o;
      plan->x_stride[n - 1] = xs[i];
      plan->y_stride[n - 1] = ys[i];
      continue;
    }
    plan->dims[n] = o;
    plan->x_stride[n] = xs[i];
    plan->y_stride[n] = ys[i];
    ++n;
  }
  if (n == 0 && numel == 1) {  // rank 0 or all ones: one element
    plan->dims[0] = 1;
    plan->x_stride[0] = 1;
    plan->y_stride[0] = 1;
    n = 1;
  }
  if (numel == 0) {  // nothing to iterate
    plan->dims[0] = 0;
    plan->x_stride[0] = 1;
    plan->y_stride[0] = 1;
    n = 1;
  }
  plan->rank = n;
  return true;
}

}  // namespace onnx_smoothl1
