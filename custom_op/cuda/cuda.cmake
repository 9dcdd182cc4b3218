# The CUDA kernel of the custom-op library, included by custom_op/CMakeLists.txt after the
# onnx_smoothl1_ops target exists. ONNX_SMOOTHL1_CUDA (top-level CMakeLists.txt):
#   OFF  (default) nothing is built; the library registers the CPU kernel only
#   AUTO build it when a CUDA compiler (nvcc) is found, else say why and go on CPU-only
#   ON   build it or fail
# Kernels (.cu, nvcc) are compiled for every GPU architecture nvcc 13 builds from sm_75 up
# (machine code) plus compute_121 PTX, which the driver compiles for newer GPUs
# (ONNX_SMOOTHL1_CUDA_ARCHS below; override with -DCMAKE_CUDA_ARCHITECTURES=...). The wheel
# ships this list; the launcher test binary, which needs no portability, builds sm_75 and
# sm_90 only. The CUDA runtime is linked statically,
# so the library depends only on the driver (libcuda, loaded by cudart at first use) and
# loads on machines without a GPU too. The ORT registration stays in smooth_l1_ops.cc
# (host compiler, USE_CUDA): nvcc never sees the onnxruntime headers.
string(TOUPPER "${ONNX_SMOOTHL1_CUDA}" _sl1_cuda)
if(_sl1_cuda STREQUAL "" OR _sl1_cuda STREQUAL "OFF")
  message(STATUS "onnx_smoothl1: CUDA kernel not built (ONNX_SMOOTHL1_CUDA=OFF)")
  return()
endif()
if(NOT _sl1_cuda MATCHES "^(ON|AUTO)$")
  message(FATAL_ERROR "ONNX_SMOOTHL1_CUDA must be AUTO, ON or OFF; got '${ONNX_SMOOTHL1_CUDA}'")
endif()

include(CheckLanguage)
if(NOT CMAKE_CUDA_COMPILER)
  check_language(CUDA)  # CUDACXX, nvcc on PATH, or the toolkit's default location
endif()
if(NOT CMAKE_CUDA_COMPILER)
  if(_sl1_cuda STREQUAL "ON")
    message(FATAL_ERROR "ONNX_SMOOTHL1_CUDA=ON but no CUDA compiler was found (set CUDACXX "
                        "or put nvcc on PATH)")
  endif()
  message(STATUS "onnx_smoothl1: CUDA kernel not built: no CUDA compiler (nvcc) found")
  return()
endif()
# sm_87/sm_88/sm_110 are NVIDIA's Arm SoCs (Jetson Orin, Thor): kept so that one list
# serves every platform the library is built for.
set(ONNX_SMOOTHL1_CUDA_ARCHS
    75-real 80-real 86-real 87-real 88-real 89-real 90-real 100-real 103-real 110-real 120-real
    121-real 121-virtual)
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES OR CMAKE_CUDA_ARCHITECTURES STREQUAL "")
  set(CMAKE_CUDA_ARCHITECTURES ${ONNX_SMOOTHL1_CUDA_ARCHS})
endif()
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)
message(STATUS "onnx_smoothl1: CUDA kernel for ${CMAKE_CUDA_ARCHITECTURES} with "
               "${CMAKE_CUDA_COMPILER} ${CMAKE_CUDA_COMPILER_VERSION}")

add_library(smoothl1_cuda_kernels OBJECT cuda/smooth_l1_cuda.cu)
set_target_properties(smoothl1_cuda_kernels PROPERTIES
  POSITION_INDEPENDENT_CODE ON
  CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON
  CUDA_VISIBILITY_PRESET hidden
  CUDA_RUNTIME_LIBRARY Static)
target_include_directories(smoothl1_cuda_kernels PRIVATE "${CMAKE_CURRENT_SOURCE_DIR}")
target_compile_options(smoothl1_cuda_kernels PRIVATE
  $<$<COMPILE_LANGUAGE:CUDA>:-O3 --threads=0 -Xcompiler=-Wall -Xcompiler=-fno-math-errno>)

target_sources(onnx_smoothl1_ops PRIVATE $<TARGET_OBJECTS:smoothl1_cuda_kernels>)
string(REPLACE ";" " " _sl1_archs "${CMAKE_CUDA_ARCHITECTURES}")
target_compile_definitions(onnx_smoothl1_ops PRIVATE USE_CUDA ONNX_SMOOTHL1_CUDA_ARCHS="${_sl1_archs}")
# -lcudart_static -lrt -ldl -lpthread; keep cudart's symbols out of the library's exports.
target_link_libraries(onnx_smoothl1_ops PRIVATE CUDA::cudart_static)
target_link_options(onnx_smoothl1_ops PRIVATE -Wl,--exclude-libs,ALL)
# Bind cudart's pthread/dl/rt calls to their pre-2.34 glibc versions (loads on glibc < 2.34).
include("${CMAKE_CURRENT_LIST_DIR}/glibc_compat.cmake")

# The standalone launcher test (custom_op/cuda/test_cuda_kernels.cu, which includes
# smooth_l1_cuda.cu itself): host checks anywhere, kernel checks where a GPU is present (SKIP
# otherwise), and with --emulate the kernel checks on the CPU.
if(ONNX_SMOOTHL1_BUILD_TESTS OR BUILD_TESTING)
  add_executable(smooth_l1_cuda_test cuda/test_cuda_kernels.cu)
  set_target_properties(smooth_l1_cuda_test PROPERTIES
    CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON CUDA_RUNTIME_LIBRARY Static
    CUDA_ARCHITECTURES "75-real;90-real")
  target_compile_options(smooth_l1_cuda_test PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:--threads=0>)
  target_include_directories(smooth_l1_cuda_test PRIVATE "${CMAKE_CURRENT_SOURCE_DIR}"
                                                         "${CMAKE_CURRENT_SOURCE_DIR}/cuda")
  add_test(NAME smooth_l1_cuda_test COMMAND smooth_l1_cuda_test)
  add_test(NAME smooth_l1_cuda_test_emulated COMMAND smooth_l1_cuda_test --emulate --quick)
endif()
