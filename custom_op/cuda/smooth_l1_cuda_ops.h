// CUDAExecutionProvider kernel of onnx_smoothl1::SmoothL1Loss: the ORT side of
// smooth_l1_cuda.h. Not a standalone header: smooth_l1_ops.cc includes it under USE_CUDA,
// inside its namespace, after NodeConfig / NodeLabel / MakeOutputPlan, so the CUDA op shares
// the CPU op's attribute validation (ReadNodeConfig at kernel creation) and broadcast rule
// (MakeBroadcastPlan, numpy). The file including it must first include, at global scope,
// "cuda/smooth_l1_cuda.h" and "cuda/smooth_l1_cuda_plan.h". Host C++ only: nvcc never sees
// ORT headers.
//
// Per Run: shapes -> plan (no heap allocation), output allocated by ORT, scratch for the
// partial sums from ORT's CUDA allocator (KernelContext_GetScratchBuffer: stream-aware,
// arena-backed, so no cudaMalloc per call), kernels enqueued on ORT's compute stream
// (KernelContext_GetGPUComputeStream), no host synchronisation; CUDA errors come back as an
// OrtStatus naming the node.

constexpr const char* kCudaEp = "CUDAExecutionProvider";

template <typename T>
constexpr int CudaDtype();
template <>
constexpr int CudaDtype<float>() { return SMOOTHL1_CUDA_F32; }
template <>
constexpr int CudaDtype<double>() { return SMOOTHL1_CUDA_F64; }
template <>
constexpr int CudaDtype<Ort::Float16_t>() { return SMOOTHL1_CUDA_F16; }
template <>
constexpr int CudaDtype<Ort::BFloat16_t>() { return SMOOTHL1_CUDA_BF16; }

inline int CudaReduction(Reduction r) {
  return r == Reduction::kNone ? SMOOTHL1_CUDA_NONE
                               : r == Reduction::kSum ? SMOOTHL1_CUDA_SUM : SMOOTHL1_CUDA_MEAN;
}

template <typename T>  // T: the ORT element type (float, double, Ort::Float16_t, Ort::BFloat16_t)
struct CudaKernel {
  static constexpr const char* kEp = kCudaEp;

  NodeConfig cfg;

  OrtStatus* Compute(const OrtApi* api, OrtKernelContext* ctx) const {
    const OrtValue* xv = nullptr;
    const OrtValue* yv = nullptr;
    BroadcastPlan plan;
    if (OrtStatus* st = MakeOutputPlan(api, ctx, cfg, &xv, &yv, &plan)) return st;
    SmoothL1CudaPlan cplan;
    std::string why;
    if (!cuda::ToCudaPlan(plan, &cplan, &why))
      return api->CreateStatus(ORT_INVALID_ARGUMENT, (NodeLabel(cfg.node_name) + ": " + why).c_str());
    const bool none = cfg.attrs.reduction == Reduction::kNone;
    OrtValue* ov = nullptr;
    if (OrtStatus* st = api->KernelContext_GetOutput(ctx, 0, none ? plan.out_dims : nullptr,
                                                     none ? plan.out_rank : 0, &ov)) {
      return st;
    }
    void* xp = nullptr;
    void* yp = nullptr;
    void* op = nullptr;
    if (OrtStatus* st = api->GetTensorMutableData(const_cast<OrtValue*>(xv), &xp)) return st;
    if (OrtStatus* st = api->GetTensorMutableData(const_cast<OrtValue*>(yv), &yp)) return st;
    if (OrtStatus* st = api->GetTensorMutableData(ov, &op)) return st;
    void* stream = nullptr;
    if (OrtStatus* st = api->KernelContext_GetGPUComputeStream(ctx, &stream)) return st;

    const int reduction = CudaReduction(cfg.attrs.reduction);
    const size_t scratch_bytes = smooth_l1_cuda_scratch_bytes(&cplan, reduction);
    const OrtMemoryInfo* mem = nullptr;
    OrtAllocator* alloc = nullptr;
    void* scratch = nullptr;
    if (scratch_bytes > 0) {
      // Same device memory as the input; ORT's allocator for it, stream-ordered.
      if (OrtStatus* st = api->GetTensorMemoryInfo(xv, &mem)) return st;
      if (OrtStatus* st = api->KernelContext_GetScratchBuffer(ctx, mem, scratch_bytes, &scratch))
        return st;
      if (OrtStatus* st = api->KernelContext_GetAllocator(ctx, mem, &alloc)) return st;
      if (scratch == nullptr) {
        api->ReleaseAllocator(alloc);
        return api->CreateStatus(ORT_FAIL, (NodeLabel(cfg.node_name) +
                                            ": no CUDA scratch memory for the reduction")
                                               .c_str());
      }
    }
    char err[512];
    const int rc = smooth_l1_cuda(CudaDtype<T>(), reduction, cfg.attrs.beta_d(), xp, yp, op,
                                  &cplan, scratch, scratch_bytes, stream, err, sizeof err);
    if (scratch != nullptr) {
      // Freed once enqueued: ORT's CUDA arena hands it out again only in stream order.
      alloc->Free(alloc, scratch);
      api->ReleaseAllocator(alloc);
    }
    if (rc != 0)
      return api->CreateStatus(ORT_FAIL, (NodeLabel(cfg.node_name) + ": " + err).c_str());
    return nullptr;
  }
};
