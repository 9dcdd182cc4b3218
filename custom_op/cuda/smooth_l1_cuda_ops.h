// CUDAExecutionProvider kernel of onnx_smoothl1::SmoothL1Loss and HuberLoss: the ORT side of
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
constexpr int CudaDtype() {
  constexpr ONNXTensorElementDataType e = ElementType<T>();
  return e == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT    ? SMOOTHL1_CUDA_F32
         : e == ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE ? SMOOTHL1_CUDA_F64
         : e == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16 ? SMOOTHL1_CUDA_F16
                                                      : SMOOTHL1_CUDA_BF16;
}

inline int CudaReduction(Reduction r) {
  return r == Reduction::kNone ? SMOOTHL1_CUDA_NONE
                               : r == Reduction::kSum ? SMOOTHL1_CUDA_SUM : SMOOTHL1_CUDA_MEAN;
}

// Device scratch for the partial sums from ORT's allocator for the input's GPU, released
// by the destructor (right after the kernels are enqueued: ORT's CUDA arena hands memory out
// again in stream order). Tries the input tensor's memory info, then a "Cuda" memory info
// for the same device id (which older/newer ORT versions key their CUDA allocator by).
class CudaScratch {
 public:
  explicit CudaScratch(const OrtApi* api) : api_(api) {}
  CudaScratch(const CudaScratch&) = delete;
  CudaScratch& operator=(const CudaScratch&) = delete;
  ~CudaScratch() {
    if (ptr_ != nullptr && alloc_ != nullptr) alloc_->Free(alloc_, ptr_);
    if (alloc_ != nullptr) api_->ReleaseAllocator(alloc_);
    if (own_info_ != nullptr) api_->ReleaseMemoryInfo(own_info_);
  }

  OrtStatus* Get(OrtKernelContext* ctx, const OrtValue* like, size_t bytes, void** out) {
    const OrtMemoryInfo* info = nullptr;
    if (OrtStatus* st = api_->GetTensorMemoryInfo(like, &info)) return st;
    OrtStatus* first = TryWith(ctx, info, bytes);
    if (first == nullptr) return *out = ptr_, nullptr;
    int device = 0;
    if (OrtStatus* st = api_->MemoryInfoGetId(info, &device)) api_->ReleaseStatus(st);
    if (OrtStatus* st = api_->CreateMemoryInfo("Cuda", OrtArenaAllocator, device, OrtMemTypeDefault, &own_info_)) {
      api_->ReleaseStatus(st);
      return first;
    }
    OrtStatus* second = TryWith(ctx, own_info_, bytes);
    if (second != nullptr) {
      api_->ReleaseStatus(second);
      return first;
    }
    api_->ReleaseStatus(first);
    return *out = ptr_, nullptr;
  }

 private:
  OrtStatus* TryWith(OrtKernelContext* ctx, const OrtMemoryInfo* info, size_t bytes) {
    OrtAllocator* alloc = nullptr;
    if (OrtStatus* st = api_->KernelContext_GetAllocator(ctx, info, &alloc)) return st;
    void* p = nullptr;
    if (OrtStatus* st = api_->KernelContext_GetScratchBuffer(ctx, info, bytes, &p)) {
      api_->ReleaseAllocator(alloc);
      return st;
    }
    if (p == nullptr) {
      api_->ReleaseAllocator(alloc);
      return api_->CreateStatus(ORT_FAIL, "no CUDA scratch memory for the reduction");
    }
    alloc_ = alloc;
    ptr_ = p;
    return nullptr;
  }

  const OrtApi* api_;
  OrtAllocator* alloc_ = nullptr;
  OrtMemoryInfo* own_info_ = nullptr;
  void* ptr_ = nullptr;
};

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
      return api->CreateStatus(ORT_INVALID_ARGUMENT, (NodeLabel(cfg) + ": " + why).c_str());
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
    CudaScratch scratch(api);
    void* scratch_ptr = nullptr;
    if (scratch_bytes > 0) {
      if (OrtStatus* st = scratch.Get(ctx, xv, scratch_bytes, &scratch_ptr)) return st;
    }
    char err[512];
    const bool huber = cfg.attrs.loss == Loss::kHuber;
    const int rc = smooth_l1_cuda_loss(
        huber ? SMOOTHL1_CUDA_LOSS_HUBER : SMOOTHL1_CUDA_LOSS_SMOOTH_L1, CudaDtype<T>(),
        reduction, huber ? static_cast<double>(cfg.attrs.delta) : cfg.attrs.beta_d(), xp, yp, op,
        &cplan, scratch_ptr, scratch_bytes, stream, err, sizeof err);
    if (rc != 0)
      return api->CreateStatus(ORT_FAIL, (NodeLabel(cfg) + ": " + err).c_str());
    return nullptr;
  }
};
