// onnxruntime registration of onnx_smoothl1::SmoothL1Loss and onnx_smoothl1::HuberLoss: the
// one file that knows ORT.
//
// Built against the ORT C/C++ API headers (API version 21, onnxruntime 1.21) with
// ORT_API_MANUAL_INIT and no link against libonnxruntime: the API table comes from the
// OrtApiBase that ORT hands to RegisterCustomOps, so the library loads into any
// onnxruntime >= 1.21 (custom_op/abi_check.sh tests that).
//
// Each (execution provider, element type, loss) triple is one OrtCustomOp named SmoothL1Loss
// or HuberLoss; ORT merges the ops of one name into one schema and picks the kernel by type.
// Both losses share every piece below (attribute reading, broadcasting, kernels); the loss
// is a template parameter of the op, which ReadNodeConfig stores in the node's Attrs. The
// ops build on the lite custom-op API's OrtLiteCustomOp base (names, types, versions), but
// create and compute through the V2 entry points, so that
//   * invalid attributes fail session creation with an OrtStatus naming the node, the
//     attribute and the value (no C++ exception crosses the library boundary), and
//   * Compute works on the raw OrtKernelContext: no per-call heap allocation of argument
//     wrappers and no attribute parsing (attributes are read once, at kernel creation).
//
// CUDA (compiled with -DUSE_CUDA): cuda/smooth_l1_cuda_ops.h defines CudaKernel<T> (same
// shape as CpuKernel: NodeConfig read once by ReadNodeConfig, MakeOutputPlan per Run) and is
// included inside this file's namespace; AllOps() adds LossOp<CudaKernel<T>, T, L> for the
// four dtypes and both losses. Everything else (schema, registration) is shared.
#define ORT_API_MANUAL_INIT
#include "onnxruntime_cxx_api.h"
#undef ORT_API_MANUAL_INIT
#include "onnxruntime_lite_custom_op.h"

#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cpu/smooth_l1_cpu.h"
#include "smooth_l1_common.h"
#ifdef USE_CUDA
#include "cuda/smooth_l1_cuda.h"
#include "cuda/smooth_l1_cuda_plan.h"
#endif

namespace onnx_smoothl1 {
namespace {

constexpr const char* kCpuEp = "CPUExecutionProvider";

// ---------------------------------------------------------------------------------------
// Shared by all kernels (CPU and CUDA): node name + validated attributes.

struct NodeConfig {
  std::string node_name;
  Attrs attrs;
};

std::string FloatToString(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(v));
  return buf;
}

// "SmoothL1Loss node 'name'" / "HuberLoss node 'name'": how every error names the node.
std::string NodeLabel(const NodeConfig& cfg) {
  return std::string(LossOpType(cfg.attrs.loss)) + " node '" +
         (cfg.node_name.empty() ? "<unnamed>" : cfg.node_name) + "'";
}

// The type an attribute has when it is present but could not be read as the expected type
// ("" when it is absent), so a wrong type is an error rather than silently the default.
std::string PresentAs(const OrtApi* api, const OrtKernelInfo* info, const char* name) {
  auto ok = [api](OrtStatus* st) {
    if (st == nullptr) return true;
    api->ReleaseStatus(st);
    return false;
  };
  float f = 0.0f;
  int64_t i = 0;
  size_t n = 0;
  if (ok(api->KernelInfoGetAttribute_float(info, name, &f))) return "FLOAT";
  if (ok(api->KernelInfoGetAttribute_int64(info, name, &i))) return "INT";
  if (ok(api->KernelInfoGetAttribute_string(info, name, nullptr, &n))) return "STRING";
  n = 0;
  if (ok(api->KernelInfoGetAttributeArray_float(info, name, nullptr, &n))) return "FLOATS";
  n = 0;
  if (ok(api->KernelInfoGetAttributeArray_int64(info, name, nullptr, &n))) return "INTS";
  return "";
}

// Read and validate the attributes of a ``loss`` node once. Returns a non-null OrtStatus on
// error; the message names the node, the attribute and the offending value.
OrtStatus* ReadNodeConfig(const OrtApi* api, const OrtKernelInfo* info, Loss loss,
                          NodeConfig* cfg) {
  cfg->attrs.loss = loss;
  size_t size = 0;
  if (OrtStatus* st = api->KernelInfo_GetNodeName(info, nullptr, &size)) {
    api->ReleaseStatus(st);
  } else if (size > 0) {
    std::string name(size, '\0');
    if (OrtStatus* st2 = api->KernelInfo_GetNodeName(info, name.data(), &size)) {
      api->ReleaseStatus(st2);
    } else {
      name.resize(std::strlen(name.c_str()));
      cfg->node_name = std::move(name);
    }
  }
  const std::string label = NodeLabel(*cfg);

  // beta (SmoothL1Loss) / delta (HuberLoss): FLOAT attribute, default 1.0 when absent.
  const char* param = LossParamName(loss);
  float value = 1.0f;
  if (OrtStatus* st = api->KernelInfoGetAttribute_float(info, param, &value)) {
    api->ReleaseStatus(st);
    const std::string kind = PresentAs(api, info, param);
    if (!kind.empty()) {
      return api->CreateStatus(ORT_INVALID_ARGUMENT, (label + ": invalid attribute " + param +
                                                      ": must be a FLOAT, got " + kind)
                                                         .c_str());
    }
    value = 1.0f;  // absent: the default
  }
  const bool huber = loss == Loss::kHuber;
  const std::string param_error = huber ? CheckDelta(value) : CheckBeta(value);
  if (!param_error.empty()) {
    return api->CreateStatus(ORT_INVALID_ARGUMENT,
                             (label + ": invalid attribute " + param + "=" + FloatToString(value) +
                              (huber ? " (must be a finite float > 0)"
                                     : " (must be a float >= 0; 0 means L1)"))
                                 .c_str());
  }
  (huber ? cfg->attrs.delta : cfg->attrs.beta) = value;

  // reduction: STRING attribute, default 'mean' when absent.
  std::string reduction = "mean";
  size = 0;
  if (OrtStatus* st = api->KernelInfoGetAttribute_string(info, "reduction", nullptr, &size)) {
    api->ReleaseStatus(st);
    const std::string kind = PresentAs(api, info, "reduction");
    if (!kind.empty()) {
      return api->CreateStatus(
          ORT_INVALID_ARGUMENT,
          (label + ": invalid attribute reduction: must be a STRING, got " + kind).c_str());
    }
  } else {
    std::string value(size, '\0');
    if (OrtStatus* st2 = api->KernelInfoGetAttribute_string(info, "reduction", value.data(), &size)) {
      api->ReleaseStatus(st2);
    } else {
      value.resize(std::strlen(value.c_str()));
      reduction = std::move(value);
    }
  }
  std::string why;
  if (!ParseReduction(reduction, &cfg->attrs.reduction, &why)) {
    return api->CreateStatus(
        ORT_INVALID_ARGUMENT,
        (label + ": invalid attribute reduction='" + reduction + "' (" + why + ")").c_str());
  }
  return nullptr;
}

// Shape of input ``index`` into ``dims`` (at most kMaxRank); error status otherwise.
OrtStatus* InputShape(const OrtApi* api, const OrtValue* value, const NodeConfig& cfg,
                      const char* which, int64_t* dims, int* rank) {
  OrtTensorTypeAndShapeInfo* info = nullptr;
  if (OrtStatus* st = api->GetTensorTypeAndShape(value, &info)) return st;
  size_t n = 0;
  OrtStatus* st = api->GetDimensionsCount(info, &n);
  if (!st && n > static_cast<size_t>(kMaxRank)) {
    st = api->CreateStatus(ORT_INVALID_ARGUMENT,
                           (NodeLabel(cfg) + ": " + which + " has rank " +
                            std::to_string(n) + ", more than the supported " +
                            std::to_string(kMaxRank))
                               .c_str());
  }
  if (!st) st = api->GetDimensions(info, dims, n);
  api->ReleaseTensorTypeAndShapeInfo(info);
  *rank = static_cast<int>(n);
  return st;
}

// Broadcast plan for the two inputs; a Run error naming the node and both shapes otherwise.
OrtStatus* MakeOutputPlan(const OrtApi* api, OrtKernelContext* ctx, const NodeConfig& cfg,
                          const OrtValue** x, const OrtValue** y, BroadcastPlan* plan) {
  if (OrtStatus* st = api->KernelContext_GetInput(ctx, 0, x)) return st;
  if (OrtStatus* st = api->KernelContext_GetInput(ctx, 1, y)) return st;
  int64_t xd[kMaxRank], yd[kMaxRank];
  int xr = 0, yr = 0;
  if (OrtStatus* st = InputShape(api, *x, cfg, "input", xd, &xr)) return st;
  if (OrtStatus* st = InputShape(api, *y, cfg, "target", yd, &yr)) return st;
  std::string why;
  if (!MakeBroadcastPlan(xd, xr, yd, yr, plan, &why)) {
    return api->CreateStatus(ORT_INVALID_ARGUMENT,
                             (NodeLabel(cfg) + ": input shape " + ShapeToString(xd, xr) +
                              " and target shape " + ShapeToString(yd, yr) +
                              " cannot be broadcast together (numpy rules)")
                                 .c_str());
  }
  return nullptr;
}

// ONNX element type of each registered C++ type (the op's type constraints; the CUDA side
// maps it to its launcher's dtype).
template <typename T>
constexpr ONNXTensorElementDataType ElementType();
template <>
constexpr ONNXTensorElementDataType ElementType<float>() { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
template <>
constexpr ONNXTensorElementDataType ElementType<double>() { return ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE; }
template <>
constexpr ONNXTensorElementDataType ElementType<Ort::Float16_t>() { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16; }
template <>
constexpr ONNXTensorElementDataType ElementType<Ort::BFloat16_t>() { return ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16; }

#ifdef USE_CUDA
// CudaKernel<T>: same NodeConfig / MakeOutputPlan, enqueues on ORT's compute stream.
#include "cuda/smooth_l1_cuda_ops.h"
#endif

// ---------------------------------------------------------------------------------------
// CPU kernel.

template <typename T>
struct CpuTypes;
template <>
struct CpuTypes<float> { using Kernel = float; };
template <>
struct CpuTypes<double> { using Kernel = double; };
template <>
struct CpuTypes<Ort::Float16_t> { using Kernel = cpu::Half; };
template <>
struct CpuTypes<Ort::BFloat16_t> { using Kernel = cpu::BFloat16; };

void OrtParallelRun(void* ctx, void (*fn)(void*, size_t), size_t total, void* data) {
  const OrtApi& api = Ort::GetApi();
  if (OrtStatus* st = api.KernelContext_ParallelFor(static_cast<OrtKernelContext*>(ctx), fn,
                                                    total, 0, data)) {
    api.ReleaseStatus(st);  // no pool available: run serially (same result, by design)
    for (size_t i = 0; i < total; ++i) fn(data, i);
  }
}

template <typename T>  // T: the ORT element type (float, double, Ort::Float16_t, Ort::BFloat16_t)
struct CpuKernel {
  using K = typename CpuTypes<T>::Kernel;
  static_assert(sizeof(K) == sizeof(T), "storage type must match ORT's");
  static constexpr const char* kEp = kCpuEp;

  NodeConfig cfg;

  OrtStatus* Compute(const OrtApi* api, OrtKernelContext* ctx) const {
    const OrtValue* xv = nullptr;
    const OrtValue* yv = nullptr;
    BroadcastPlan plan;
    if (OrtStatus* st = MakeOutputPlan(api, ctx, cfg, &xv, &yv, &plan)) return st;
    OrtValue* ov = nullptr;
    const bool none = cfg.attrs.reduction == Reduction::kNone;
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
    cpu::Parallel par;
    par.run = &OrtParallelRun;
    par.ctx = ctx;
    if (!cpu::LossForward(static_cast<const K*>(xp), static_cast<const K*>(yp),
                          static_cast<K*>(op), plan, cfg.attrs, par)) {
      return api->CreateStatus(ORT_FAIL, (NodeLabel(cfg) +
                                          ": out of memory for the reduction scratch")
                                             .c_str());
    }
    return nullptr;
  }
};

// ---------------------------------------------------------------------------------------
// The OrtCustomOp: one per (kernel, element type, loss). Kernel provides cfg, kEp and Compute.

template <typename Kernel, typename T, Loss L>
struct LossOp : Ort::Custom::OrtLiteCustomOp {
  LossOp() : OrtLiteCustomOp(LossOpType(L), Kernel::kEp, {}, 1) {
    input_types_ = {ElementType<T>(), ElementType<T>()};
    output_types_ = {ElementType<T>()};
    OrtCustomOp::GetInputCharacteristic = [](const OrtCustomOp*, size_t) {
      return INPUT_OUTPUT_REQUIRED;
    };
    OrtCustomOp::GetOutputCharacteristic = [](const OrtCustomOp*, size_t) {
      return INPUT_OUTPUT_REQUIRED;
    };
    OrtCustomOp::CreateKernelV2 = [](const OrtCustomOp*, const OrtApi* api,
                                     const OrtKernelInfo* info, void** kernel) -> OrtStatusPtr {
      *kernel = nullptr;
      try {
        auto k = std::make_unique<Kernel>();
        if (OrtStatus* st = ReadNodeConfig(api, info, L, &k->cfg)) return st;
        *kernel = k.release();
        return nullptr;
      } catch (const std::exception& e) {
        return api->CreateStatus(ORT_FAIL, e.what());
      }
    };
    // Only used by an ORT that ignores CreateKernelV2 (none we support); throws on error.
    OrtCustomOp::CreateKernel = [](const OrtCustomOp*, const OrtApi* api,
                                   const OrtKernelInfo* info) -> void* {
      auto k = std::make_unique<Kernel>();
      Ort::ThrowOnError(ReadNodeConfig(api, info, L, &k->cfg));
      return k.release();
    };
    OrtCustomOp::KernelComputeV2 = [](void* kernel, OrtKernelContext* ctx) -> OrtStatusPtr {
      const OrtApi* api = &Ort::GetApi();
      try {
        return static_cast<const Kernel*>(kernel)->Compute(api, ctx);
      } catch (const std::exception& e) {
        return api->CreateStatus(ORT_FAIL, e.what());
      }
    };
    OrtCustomOp::KernelCompute = [](void* kernel, OrtKernelContext* ctx) {
      Ort::ThrowOnError(static_cast<const Kernel*>(kernel)->Compute(&Ort::GetApi(), ctx));
    };
    OrtCustomOp::KernelDestroy = [](void* kernel) { delete static_cast<Kernel*>(kernel); };
  }
};

// The four element types' ops of one kernel kind and loss.
template <template <typename> class Kernel, Loss L>
void AddOps(std::vector<OrtCustomOp*>* v) {
  v->push_back(new LossOp<Kernel<float>, float, L>());
  v->push_back(new LossOp<Kernel<double>, double, L>());
  v->push_back(new LossOp<Kernel<Ort::Float16_t>, Ort::Float16_t, L>());
  v->push_back(new LossOp<Kernel<Ort::BFloat16_t>, Ort::BFloat16_t, L>());
}

// All ops of the library, created once and never destroyed (sessions may outlive any
// static destruction order).
const std::vector<OrtCustomOp*>& AllOps() {
  static const std::vector<OrtCustomOp*>* ops = [] {
    auto* v = new std::vector<OrtCustomOp*>();
    AddOps<CpuKernel, Loss::kSmoothL1>(v);
    AddOps<CpuKernel, Loss::kHuber>(v);
#ifdef USE_CUDA
    AddOps<CudaKernel, Loss::kSmoothL1>(v);
    AddOps<CudaKernel, Loss::kHuber>(v);
#endif
    return v;
  }();
  return *ops;
}

std::mutex g_domains_mutex;
std::vector<OrtCustomOpDomain*>& Domains() {  // kept alive for the process lifetime
  static auto* domains = new std::vector<OrtCustomOpDomain*>();
  return *domains;
}

}  // namespace
}  // namespace onnx_smoothl1

#ifndef ONNX_SMOOTHL1_VERSION
#define ONNX_SMOOTHL1_VERSION "unknown"
#endif
#define SL1_STR2(x) #x
#define SL1_STR(x) SL1_STR2(x)

// What this build holds, as JSON, for `onnx-smoothl1 doctor` (read with ctypes; ORT is not
// needed to ask). Exported beside RegisterCustomOps; everything else is hidden.
extern "C" __attribute__((visibility("default"))) const char* OnnxSmoothL1BuildInfo(void) {
#ifdef USE_CUDA
#define SL1_EPS "[\"CPUExecutionProvider\", \"CUDAExecutionProvider\"]"
#define SL1_CUDA_INFO "{\"compiled\": true, \"archs\": \"" ONNX_SMOOTHL1_CUDA_ARCHS "\"}"
#else
#define SL1_EPS "[\"CPUExecutionProvider\"]"
#define SL1_CUDA_INFO "{\"compiled\": false}"
#endif
  return "{\"version\": \"" ONNX_SMOOTHL1_VERSION "\", \"domain\": \"onnx_smoothl1\", "
         "\"domain_version\": 1, \"ops\": [\"SmoothL1Loss\", \"HuberLoss\"], "
         "\"ort_api_version\": " SL1_STR(ORT_API_VERSION) ", \"eps\": " SL1_EPS
         ", \"cuda\": " SL1_CUDA_INFO "}";
}

// Whether the CUDA kernels can run on this host: 0 and a description of GPU 0, 1 and the
// reason (no driver, no GPU, driver or GPU too old), or 2 when the build has no CUDA kernels.
extern "C" __attribute__((visibility("default"))) int OnnxSmoothL1CudaStatus(char* msg, size_t msg_len) {
#ifdef USE_CUDA
  int rc = smooth_l1_cuda_host_status(msg, msg_len);
  if (msg != nullptr && msg_len > 0) {
    std::string text = msg;
    text += " (kernels built with CUDA " + std::to_string(smooth_l1_cuda_runtime_version() / 1000) + "." +
            std::to_string((smooth_l1_cuda_runtime_version() % 1000) / 10) + ")";
    std::snprintf(msg, msg_len, "%s", text.c_str());
  }
  return rc;
#else
  if (msg != nullptr && msg_len > 0) std::snprintf(msg, msg_len, "this build has no CUDA kernels");
  return 2;
#endif
}

// The entry point onnxruntime calls (SessionOptions.register_custom_ops_library).
extern "C" __attribute__((visibility("default"))) OrtStatus* ORT_API_CALL RegisterCustomOps(OrtSessionOptions* options,
                                                              const OrtApiBase* api_base) {
  const OrtApi* api = api_base->GetApi(ORT_API_VERSION);
  if (api == nullptr) {
    // onnxruntime older than the headers: report it through the oldest API table.
    const OrtApi* old = api_base->GetApi(1);
    std::string msg = std::string("onnx_smoothl1 custom ops need onnxruntime >= 1.21 (ORT API ") +
                      std::to_string(ORT_API_VERSION) + "); this is onnxruntime " +
                      api_base->GetVersionString();
    return old ? old->CreateStatus(ORT_FAIL, msg.c_str()) : nullptr;
  }
  Ort::InitApi(api);
  using namespace onnx_smoothl1;
  OrtCustomOpDomain* domain = nullptr;
  if (OrtStatus* st = api->CreateCustomOpDomain(kDomain, &domain)) return st;
  for (OrtCustomOp* op : AllOps()) {
    if (OrtStatus* st = api->CustomOpDomain_Add(domain, op)) {
      api->ReleaseCustomOpDomain(domain);
      return st;
    }
  }
  if (OrtStatus* st = api->AddCustomOpDomain(options, domain)) {
    api->ReleaseCustomOpDomain(domain);
    return st;
  }
  std::lock_guard<std::mutex> lock(g_domains_mutex);
  Domains().push_back(domain);
  return nullptr;
}
