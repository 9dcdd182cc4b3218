# Keep the CUDA-enabled library loadable on glibc < 2.34 (it needs glibc 2.17, like the
# CPU-only one), included by cuda.cmake after onnx_smoothl1_ops links CUDA::cudart_static.
#
# glibc 2.34 moved libpthread, libdl and librt into libc.so.6, and gave the moved functions a
# new default version there: linked on glibc >= 2.34, cudart_static's pthread_*, sem_*, dl*
# and shm_* calls bind to pthread_create@GLIBC_2.34 and so on, and the library (and the
# wheel's manylinux tag) then needs glibc 2.34. libc.so.6 still exports the old versions
# (pthread_create@GLIBC_2.2.5), only not as the default the linker picks.
#
# So glibc_stubs.sh generates tiny link-time stubs named like the old libraries
# (libpthread.so.0, libdl.so.2, librt.so.1: SONAME included) that define exactly the symbols
# cudart_static uses from them, under the version each had before the move (read from this
# libc.so.6), and the library links against them ahead of libc: the linker binds the old
# versions and records DT_NEEDED on the real sonames. At run time the system's own
# libpthread.so.0 / libdl.so.2 / librt.so.1 (real ones before 2.34, empty ones that still
# define the version nodes after) satisfy them; the stubs stay in the build tree, are never
# installed, and auditwheel sees only system libraries. NVIDIA's libcudart.so binds the same
# versions. A POST_BUILD check fails the build (and sets the library aside) if any such symbol
# is still bound to its new version, e.g. one that only the library's own code uses.
#
# A no-op (STATUS message) off glibc Linux on x86_64/aarch64, and on glibc < 2.34 hosts, where
# there is nothing to rebind. Any failure generating the stubs is fatal.
set(_sl1_glibc_target 2.17)  # rebind symbols whose default version is newer than this
set(_sl1_glibc_script "${CMAKE_CURRENT_LIST_DIR}/glibc_stubs.sh")
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${_sl1_glibc_script}")

if(NOT CMAKE_SYSTEM_NAME STREQUAL "Linux" OR NOT CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64|aarch64|arm64)$")
  message(STATUS "onnx_smoothl1: glibc compat stubs: not used on ${CMAKE_SYSTEM_NAME}/${CMAKE_SYSTEM_PROCESSOR}")
  return()
endif()
execute_process(COMMAND "${CMAKE_CXX_COMPILER}" -print-file-name=libc.so.6
                OUTPUT_VARIABLE _sl1_libc OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT IS_ABSOLUTE "${_sl1_libc}" OR NOT EXISTS "${_sl1_libc}")
  message(STATUS "onnx_smoothl1: glibc compat stubs: not used (no libc.so.6: not glibc)")
  return()
endif()

foreach(_tool IN ITEMS OBJDUMP NM)
  if(NOT CMAKE_${_tool})
    string(TOLOWER "${_tool}" _name)
    find_program(CMAKE_${_tool} ${_name})
  endif()
  if(NOT CMAKE_${_tool})
    message(FATAL_ERROR "onnx_smoothl1: glibc compat stubs need binutils' ${_tool} (not found)")
  endif()
endforeach()
find_program(_sl1_bash bash)
if(NOT _sl1_bash)
  message(FATAL_ERROR "onnx_smoothl1: glibc compat stubs need bash (not found)")
endif()
set(_sl1_cudart "${CUDA_cudart_static_LIBRARY}")
if(NOT _sl1_cudart)
  get_target_property(_sl1_cudart CUDA::cudart_static IMPORTED_LOCATION)
endif()
if(NOT _sl1_cudart OR NOT EXISTS "${_sl1_cudart}")
  message(FATAL_ERROR "onnx_smoothl1: glibc compat stubs: libcudart_static.a not found ('${_sl1_cudart}')")
endif()

# A new toolkit or glibc regenerates the stubs.
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${_sl1_cudart}" "${_sl1_libc}")
set(_sl1_stub_dir "${CMAKE_CURRENT_BINARY_DIR}/glibc_stubs")
execute_process(
  COMMAND "${_sl1_bash}" "${_sl1_glibc_script}" stubs "${_sl1_stub_dir}" "${CMAKE_CXX_COMPILER}"
          "${CMAKE_OBJDUMP}" "${CMAKE_NM}" "${_sl1_libc}" ${_sl1_glibc_target} "${_sl1_cudart}"
  RESULT_VARIABLE _sl1_rc OUTPUT_VARIABLE _sl1_stubs ERROR_VARIABLE _sl1_err
  OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_STRIP_TRAILING_WHITESPACE)
if(NOT _sl1_rc EQUAL 0)
  message(FATAL_ERROR "onnx_smoothl1: generating the glibc compat stubs failed (${_sl1_rc}); "
                      "the CUDA library would need glibc >= 2.34:\n${_sl1_err}")
endif()
string(REPLACE "\n" ";" _sl1_stubs "${_sl1_stubs}")
if(_sl1_stubs)
  string(REPLACE "glibc_stubs.sh: " "" _sl1_err "${_sl1_err}")
  string(REPLACE "\n" "; " _sl1_err "${_sl1_err}")
  message(STATUS "onnx_smoothl1: glibc compat stubs (link-time only, ${_sl1_libc}): ${_sl1_err}")
  # After cudart_static on the link line (--as-needed counts only references seen so far),
  # before the compiler driver's implicit -lc. Passed as -Wl,<path>, not as library paths:
  # CMake would put their directory in the build-tree RPATH, and the loader would then load
  # the stubs themselves, from the build tree.
  set_property(TARGET onnx_smoothl1_ops APPEND PROPERTY LINK_DEPENDS ${_sl1_stubs})
  list(TRANSFORM _sl1_stubs PREPEND "-Wl,")
  target_link_libraries(onnx_smoothl1_ops PRIVATE ${_sl1_stubs})
else()
  message(STATUS "onnx_smoothl1: glibc compat stubs: not needed (${_sl1_err})")
endif()
add_custom_command(TARGET onnx_smoothl1_ops POST_BUILD
  COMMAND "${_sl1_bash}" "${_sl1_glibc_script}" check "${CMAKE_OBJDUMP}" "${_sl1_libc}"
          ${_sl1_glibc_target} "$<TARGET_FILE:onnx_smoothl1_ops>"
  COMMENT "Checking that libonnx_smoothl1_ops.so binds no glibc symbol to a >= 2.34-only version"
  VERBATIM)
