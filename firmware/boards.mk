# boards.mk - QEMU Arm boards the dwgen firmware harness runs on.
#
# For BOARD (default mps2-an386) this sets
#   DWGEN_BOARD_CPU      core and floating-point flags (hard-float ABI)
#   DWGEN_BOARD_LDSCRIPT the board's linker script (INCLUDEs ld/dwgen_sections.ld)
#   DWGEN_QEMU_MACHINE   the qemu-system-arm -machine name
#
#   mps2-an386  Cortex-M4, FPv4-SP         code 0x00000000, RAM 0x20000000
#   mps2-an500  Cortex-M7, FPv5 (double)   code 0x00000000, RAM 0x20000000
#   mps2-an505  Cortex-M33, FPv5-SP, runs in the Secure state: code 0x10000000, RAM 0x38000000

DWGEN_FIRMWARE ?= $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
BOARD ?= mps2-an386

DWGEN_BOARDS := mps2-an386 mps2-an500 mps2-an505
dwgen_cpu_mps2-an386 := -mcpu=cortex-m4 -mfpu=fpv4-sp-d16
dwgen_cpu_mps2-an500 := -mcpu=cortex-m7 -mfpu=fpv5-d16
dwgen_cpu_mps2-an505 := -mcpu=cortex-m33 -mfpu=fpv5-sp-d16

ifeq ($(filter $(BOARD),$(DWGEN_BOARDS)),)
$(error BOARD=$(BOARD) is not supported: use one of $(DWGEN_BOARDS))
endif

DWGEN_BOARD_CPU := $(dwgen_cpu_$(BOARD)) -mthumb -mfloat-abi=hard
DWGEN_BOARD_LDSCRIPT := $(DWGEN_FIRMWARE)/ld/$(BOARD).ld
DWGEN_QEMU_MACHINE := $(BOARD)

# Run an image: semihosting console on stdout, exit status = the program's.
QEMU ?= qemu-system-arm
DWGEN_QEMU_FLAGS := -machine $(DWGEN_QEMU_MACHINE) -nographic -monitor none -serial none \
	-chardev stdio,id=dwgen_semihost \
	-semihosting-config enable=on,target=native,chardev=dwgen_semihost
