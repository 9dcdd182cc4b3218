# CMake toolchain file: cross-compile the custom-op library (and its C++ test) for
# aarch64-linux-gnu with Debian bookworm's GCC 12 cross toolchain, unpacked (not installed) by
# scripts/aarch64/fetch_toolchain.sh into third_party/aarch64/toolchain (docs/kernels.md,
# "aarch64").
#
#   cmake -S . -B build/aarch64 -DCMAKE_TOOLCHAIN_FILE=custom_op/aarch64/toolchain.cmake
#
# AARCH64_TOOLCHAIN_ROOT (cache variable or environment) points elsewhere. The unpacked tree
# is also the sysroot: arm64 glibc 2.36 and libstdc++ 12 under usr/aarch64-linux-gnu.
# AARCH64_QEMU (cache variable or environment), when set, becomes the emulator `ctest` and
# try_run use (qemu-aarch64-static -L <sysroot>/usr/aarch64-linux-gnu).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

if(NOT AARCH64_TOOLCHAIN_ROOT)
  if(DEFINED ENV{AARCH64_TOOLCHAIN_ROOT} AND NOT "$ENV{AARCH64_TOOLCHAIN_ROOT}" STREQUAL "")
    set(AARCH64_TOOLCHAIN_ROOT "$ENV{AARCH64_TOOLCHAIN_ROOT}")
  else()
    get_filename_component(AARCH64_TOOLCHAIN_ROOT
      "${CMAKE_CURRENT_LIST_DIR}/../../third_party/aarch64/toolchain" ABSOLUTE)
  endif()
endif()
set(AARCH64_TOOLCHAIN_ROOT "${AARCH64_TOOLCHAIN_ROOT}" CACHE PATH
    "Debian aarch64 cross toolchain unpacked by scripts/aarch64/fetch_toolchain.sh")
# try_compile projects read this file again: hand them the root.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES AARCH64_TOOLCHAIN_ROOT AARCH64_QEMU)

set(_a64_bin "${AARCH64_TOOLCHAIN_ROOT}/usr/bin")
if(NOT EXISTS "${_a64_bin}/aarch64-linux-gnu-g++-12")
  message(FATAL_ERROR "aarch64 toolchain: ${_a64_bin}/aarch64-linux-gnu-g++-12 not found: "
                      "run scripts/aarch64/fetch_toolchain.sh (or set AARCH64_TOOLCHAIN_ROOT)")
endif()
set(CMAKE_C_COMPILER "${_a64_bin}/aarch64-linux-gnu-gcc-12")
set(CMAKE_CXX_COMPILER "${_a64_bin}/aarch64-linux-gnu-g++-12")
set(CMAKE_AR "${_a64_bin}/aarch64-linux-gnu-ar" CACHE FILEPATH "")
set(CMAKE_RANLIB "${_a64_bin}/aarch64-linux-gnu-ranlib" CACHE FILEPATH "")
set(CMAKE_NM "${_a64_bin}/aarch64-linux-gnu-nm" CACHE FILEPATH "")
set(CMAKE_OBJDUMP "${_a64_bin}/aarch64-linux-gnu-objdump" CACHE FILEPATH "")
set(CMAKE_OBJCOPY "${_a64_bin}/aarch64-linux-gnu-objcopy" CACHE FILEPATH "")
set(CMAKE_STRIP "${_a64_bin}/aarch64-linux-gnu-strip" CACHE FILEPATH "")
set(CMAKE_READELF "${_a64_bin}/aarch64-linux-gnu-readelf" CACHE FILEPATH "")
set(CMAKE_SYSROOT "${AARCH64_TOOLCHAIN_ROOT}")

# Libraries and headers from the sysroot only; programs from the host.
set(CMAKE_FIND_ROOT_PATH "${AARCH64_TOOLCHAIN_ROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

if(NOT AARCH64_QEMU AND DEFINED ENV{AARCH64_QEMU})
  set(AARCH64_QEMU "$ENV{AARCH64_QEMU}")
endif()
if(AARCH64_QEMU)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${AARCH64_QEMU};-L;${AARCH64_TOOLCHAIN_ROOT}/usr/aarch64-linux-gnu")
endif()
