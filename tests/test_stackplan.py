"""What a kernel's header promises firmware, checked on the emulated cores: the stack bound
(NAME_STACK_SIZE) against the measured high-water mark, and that input and output need no
alignment."""

from __future__ import annotations

import re

import numpy as np
import pytest

from dwgen.codegen import EmitOptions, generate
from dwgen.suite import suite_layers
from helpers import emulator_tools, random_qlayer
from tile_classes import class_layers, size_class_layers


def _layers():
    layers = list(class_layers()) + [(s.name, q) for s, q in suite_layers()]
    rng = np.random.default_rng(5)
    layers += [(f"random {i}", random_qlayer(rng)) for i in range(25)]
    return layers


def _stack_size(k) -> int:
    return int(re.search(rf"#define {k.name.upper()}_STACK_SIZE (\d+)", k.h_source)[1])


@pytest.mark.slow
@pytest.mark.parametrize("target, compiler", [("cortex-m4", "gcc"), ("cortex-m4", "clang"),
                                              ("cortex-m4-nofpu", "gcc"), ("cortex-m0", "gcc"),
                                              ("cortex-m0", "clang"), ("cortex-m3", "clang")])
def test_measured_stack_is_within_the_header_bound(target, compiler):
    from dwgen.targetrun import TargetBuild

    emulator_tools()
    labelled = [(label, ql, generate(ql, EmitOptions(name=f"k{i}", target=target)))
                for i, (label, ql) in enumerate(_layers())]
    labelled += [(f"--opt size: {label}", ql, generate(ql, EmitOptions(name=f"s{i}", target=target, opt="size")))
                 for i, (label, ql) in enumerate(size_class_layers())]
    build = TargetBuild([k for _, _, k in labelled], target, compiler=compiler)
    over = []
    for label, ql, k in labelled:
        run = build.run(k.name, ql.random_input(0))
        if run.stack_bytes > _stack_size(k):
            over.append((label, run.stack_bytes, _stack_size(k)))
    assert not over, over
    # the bound is a promise, not a guess: no DSP kernel has more than the allowance to spare
    from dwgen.stackplan import DSP_ALLOWANCE

    for label, ql, k in labelled:
        if k.dsp is not None:
            assert _stack_size(k) - build.run(k.name, ql.random_input(0)).stack_bytes <= DSP_ALLOWANCE, label


def test_dsp_kernels_stay_within_1_5_kb_of_stack():
    for label, ql in list(class_layers()) + [(s.name, q) for s, q in suite_layers()]:
        k = generate(ql, EmitOptions(name="k", target="cortex-m4"))
        assert _stack_size(k) <= 1536, label


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m3", "cortex-m0"])
def test_input_and_output_need_no_alignment(target):
    """The header says any alignment: run the tile classes with input and output at odd addresses."""
    from dwgen.reference import depthwise_conv

    Emulator, build_elf = emulator_tools()
    from dwgen.targetrun import TargetBuild

    layers = [(label, ql) for label, ql in class_layers()][:: 1 if target == "cortex-m4" else 4]
    kernels = [generate(ql, EmitOptions(name=f"k{i}", target=target)) for i, (_, ql) in enumerate(layers)]
    emu = TargetBuild(kernels, target).emulator
    for (label, ql), k in zip(layers, kernels):
        g = ql.geometry
        x = ql.random_input(3)
        emu.reset_heap()
        xa = emu.alloc(g.input_size + 3) + 1
        emu.write(xa, x.tobytes())
        ya = emu.alloc(g.output_size + 3) + 3
        emu.call(k.name, xa, ya)
        got = emu.read_array(ya, g.output_size).reshape(g.output_shape)
        assert np.array_equal(got, depthwise_conv(ql, x)), label
