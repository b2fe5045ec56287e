# dwgen.cmake - add the kernels `dwgen emit` wrote to a CMake firmware project.
#
#   include(path/to/dwgen/firmware/cmake/dwgen.cmake)
#   add_executable(app main.c)
#   dwgen_add_kernels(app path/to/emit/output)             # kernels only
#   dwgen_add_kernels(app path/to/emit/output TEST_MAIN)   # + dwgen_test_main.c (the self-test)
#
# dwgen_add_kernels(<target> <dir> [TEST_MAIN] [CMSIS_NN_TYPES <ON|OFF>])
#   Adds every kernel source of <dir> (*.c; dwgen_test_main.c only with TEST_MAIN) to
#   <target> and <dir> to its include path. Kernels emitted with --cmsis-nn-api get
#   dwgen's own CMSIS-NN type definitions (DWGEN_CMSIS_NN_TYPES) unless CMSIS_NN_TYPES OFF
#   (then include CMSIS-NN's arm_nn_types.h yourself). The list of files is re-read
#   whenever the build runs (CONFIGURE_DEPENDS), so emitting more kernels needs no
#   re-configure. Several models emitted into one <dir> are all added (dwgen_kernels.h
#   there includes every kernel of every model). dwgen_test_main.c defines main(); compile with
#   DWGEN_TEST_NO_MAIN to call int dwgen_test_all(void) from your own main() instead.
#   It prints through void dwgen_test_puts(const char *), which your firmware provides.
#
# dwgen_mps2_board(<target> <board>)
#   Makes <target> a bare-metal image for one of QEMU's MPS2 boards with the harness in
#   this directory: startup code and vector table, semihosting console and exit status,
#   the board's linker script and the core's hard-float flags. <board>: mps2-an386
#   (Cortex-M4), mps2-an500 (Cortex-M7), mps2-an505 (Cortex-M33, Secure state).
#   Adds a target run_<target> that runs the image under qemu-system-arm, and a CTest
#   test <target> doing the same (call enable_testing() to get CTestTestfile.cmake).

include_guard(GLOBAL)

get_filename_component(DWGEN_FIRMWARE_DIR "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)

function(dwgen_add_kernels target dir)
  cmake_parse_arguments(PARSE_ARGV 2 ARG "TEST_MAIN" "CMSIS_NN_TYPES" "")
  if(ARG_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "dwgen_add_kernels: unknown arguments ${ARG_UNPARSED_ARGUMENTS}")
  endif()
  get_filename_component(dir "${dir}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
  file(GLOB sources CONFIGURE_DEPENDS "${dir}/*.c")
  list(SORT sources)
  list(REMOVE_ITEM sources "${dir}/dwgen_test_main.c")
  if(NOT sources)
    message(FATAL_ERROR "dwgen_add_kernels: no kernel sources (*.c) in ${dir}: run dwgen emit ... -o ${dir} first")
  endif()
  if(ARG_TEST_MAIN)
    if(NOT EXISTS "${dir}/dwgen_test_main.c")
      message(FATAL_ERROR "dwgen_add_kernels: TEST_MAIN but ${dir} has no dwgen_test_main.c: emit with --test-vectors")
    endif()
    list(APPEND sources "${dir}/dwgen_test_main.c")
  endif()
  target_sources(${target} PRIVATE ${sources})
  target_include_directories(${target} PRIVATE "${dir}")
  if(NOT DEFINED ARG_CMSIS_NN_TYPES OR ARG_CMSIS_NN_TYPES)
    target_compile_definitions(${target} PRIVATE DWGEN_CMSIS_NN_TYPES)
  endif()
endfunction()

set(_dwgen_cpu_mps2-an386 -mcpu=cortex-m4 -mfpu=fpv4-sp-d16)
set(_dwgen_cpu_mps2-an500 -mcpu=cortex-m7 -mfpu=fpv5-d16)
set(_dwgen_cpu_mps2-an505 -mcpu=cortex-m33 -mfpu=fpv5-sp-d16)

function(dwgen_mps2_board target board)
  if(NOT DEFINED _dwgen_cpu_${board})
    message(FATAL_ERROR "dwgen_mps2_board: board ${board} is not supported: use mps2-an386, mps2-an500 or mps2-an505")
  endif()
  set(cpu ${_dwgen_cpu_${board}} -mthumb -mfloat-abi=hard)
  set(ld "${DWGEN_FIRMWARE_DIR}/ld/${board}.ld")
  target_sources(${target} PRIVATE
    "${DWGEN_FIRMWARE_DIR}/src/startup.c"
    "${DWGEN_FIRMWARE_DIR}/src/semihost.c")
  target_include_directories(${target} PRIVATE "${DWGEN_FIRMWARE_DIR}/include")
  target_compile_options(${target} PRIVATE ${cpu} -ffunction-sections -fdata-sections)
  target_link_options(${target} PRIVATE ${cpu} -nostartfiles
    "-L${DWGEN_FIRMWARE_DIR}/ld" "-T${ld}" -Wl,--gc-sections
    "-Wl,-Map=$<TARGET_FILE:${target}>.map")
  set_property(TARGET ${target} APPEND PROPERTY LINK_DEPENDS
    "${ld}" "${DWGEN_FIRMWARE_DIR}/ld/dwgen_sections.ld")
  set_target_properties(${target} PROPERTIES SUFFIX ".elf")

  find_program(DWGEN_QEMU qemu-system-arm)
  set(qemu "${DWGEN_QEMU}")
  if(NOT qemu)
    set(qemu qemu-system-arm)
  endif()
  set(cmd "${qemu}" -machine ${board} -nographic -monitor none -serial none
    -chardev stdio,id=dwgen_semihost
    -semihosting-config enable=on,target=native,chardev=dwgen_semihost
    -kernel $<TARGET_FILE:${target}>)
  add_custom_target(run_${target} COMMAND ${cmd} DEPENDS ${target} USES_TERMINAL VERBATIM)
  add_test(NAME ${target} COMMAND ${cmd})
  set_tests_properties(${target} PROPERTIES TIMEOUT 60)
endfunction()
