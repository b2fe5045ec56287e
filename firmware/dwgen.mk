# dwgen.mk - add the kernels `dwgen emit` wrote to your firmware's Makefile.
#
#   DWGEN_DIR := path/to/emit/output      # the directory `dwgen emit -o` wrote
#   include path/to/dwgen/firmware/dwgen.mk
#
#   CFLAGS += $(DWGEN_CPPFLAGS)           # -I$(DWGEN_DIR)
#   app.elf: main.o $(DWGEN_OBJS)         # or compile $(DWGEN_SRCS) with your own rules
#
# Variables it sets:
#   DWGEN_SRCS      every kernel source in DWGEN_DIR (*.c). dwgen_test_main.c, the
#                   self-test `dwgen emit --test-vectors` writes, is included only when
#                   DWGEN_TEST_MAIN=1 (it defines main(); with -DDWGEN_TEST_NO_MAIN it
#                   only defines int dwgen_test_all(void) and needs
#                   void dwgen_test_puts(const char *) from your firmware).
#   DWGEN_CPPFLAGS  -I$(DWGEN_DIR) and, for kernels emitted with --cmsis-nn-api, the
#                   value of DWGEN_CMSIS_NN_DEFINE (default -DDWGEN_CMSIS_NN_TYPES: dwgen's
#                   own CMSIS-NN type definitions; set it empty when arm_nn_types.h is
#                   force-included)
#   DWGEN_OBJS      $(DWGEN_SRCS) as objects under DWGEN_OBJDIR (default build/dwgen),
#                   with a pattern rule compiling them with $(CC) $(CFLAGS) $(DWGEN_CPPFLAGS)
#
# Several models emitted into one DWGEN_DIR (dwgen emit A.tflite -o DIR; dwgen emit
# B.tflite -o DIR --prefix b_) are all compiled: DWGEN_SRCS is every kernel there, and
# DIR/dwgen_kernels.h includes them all. Include this file anywhere in your Makefile: it
# defines no target and leaves the default goal alone.
#
# The kernels are C99 and need only <stdint.h> and <stddef.h>; the DSP kernels
# (--target cortex-m4/m7/m33/m55) need -mcpu for a core with the DSP extension.

ifndef DWGEN_DIR
$(error dwgen.mk: set DWGEN_DIR to the directory dwgen emit wrote before including it)
endif
DWGEN_DIR := $(patsubst %/,%,$(DWGEN_DIR))
ifeq ($(wildcard $(DWGEN_DIR)/*.c),)
$(error dwgen.mk: no kernel sources (*.c) in DWGEN_DIR=$(DWGEN_DIR): run dwgen emit ... -o $(DWGEN_DIR) first)
endif

DWGEN_TEST_MAIN ?= 0
DWGEN_OBJDIR ?= build/dwgen
DWGEN_CMSIS_NN_DEFINE ?= -DDWGEN_CMSIS_NN_TYPES

DWGEN_SRCS := $(sort $(filter-out $(DWGEN_DIR)/dwgen_test_main.c,$(wildcard $(DWGEN_DIR)/*.c)))
ifeq ($(DWGEN_TEST_MAIN),1)
ifeq ($(wildcard $(DWGEN_DIR)/dwgen_test_main.c),)
$(error dwgen.mk: DWGEN_TEST_MAIN=1 but $(DWGEN_DIR) has no dwgen_test_main.c: emit with --test-vectors)
endif
DWGEN_SRCS += $(DWGEN_DIR)/dwgen_test_main.c
endif
DWGEN_CPPFLAGS := -I$(DWGEN_DIR) $(DWGEN_CMSIS_NN_DEFINE)
DWGEN_OBJS := $(patsubst $(DWGEN_DIR)/%.c,$(DWGEN_OBJDIR)/%.o,$(DWGEN_SRCS))

# This file defines no target of its own, and the dependency files the compiler writes
# (build/dwgen/x.o: ... x.h) must not become the default goal either: included before the
# firmware's first rule, the first of them would, and a plain `make` would then only
# bring that object up to date and never relink the image. So the default goal is put
# back as it was (empty: the next target the including Makefile defines).
_dwgen_default_goal := $(.DEFAULT_GOAL)

$(DWGEN_OBJDIR)/%.o: $(DWGEN_DIR)/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DWGEN_CPPFLAGS) -MMD -MP -c $< -o $@

-include $(DWGEN_OBJS:.o=.d)

.DEFAULT_GOAL := $(_dwgen_default_goal)
