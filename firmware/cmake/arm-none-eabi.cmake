# arm-none-eabi.cmake - CMake toolchain file for arm-none-eabi-gcc (bare-metal Cortex-M).
#
#   cmake -S . -B build --toolchain path/to/dwgen/firmware/cmake/arm-none-eabi.cmake
#
# The core and floating-point flags are per target (dwgen_mps2_board() in dwgen.cmake
# adds them), so one build tree can hold images for several cores.
# ARM_NONE_EABI_PREFIX: toolchain prefix, e.g. /opt/arm-gnu-toolchain/bin/arm-none-eabi-
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)

if(NOT ARM_NONE_EABI_PREFIX)
  set(ARM_NONE_EABI_PREFIX "arm-none-eabi-")
endif()
set(CMAKE_C_COMPILER "${ARM_NONE_EABI_PREFIX}gcc")
set(CMAKE_CXX_COMPILER "${ARM_NONE_EABI_PREFIX}g++")
set(CMAKE_ASM_COMPILER "${ARM_NONE_EABI_PREFIX}gcc")
set(CMAKE_OBJCOPY "${ARM_NONE_EABI_PREFIX}objcopy" CACHE FILEPATH "objcopy")
set(CMAKE_SIZE "${ARM_NONE_EABI_PREFIX}size" CACHE FILEPATH "size")

# Compiler checks build a static library: a bare-metal program cannot link without a
# linker script and startup code.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
