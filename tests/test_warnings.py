"""Every emitted kernel compiles warning-free under -Werror: a seeded random sweep over the
bit-exact sweeps' layer space (tests/helpers.random_qlayer with their parameters), on the host
with gcc and clang and for the DSP targets with arm-none-eabi-gcc at -O2 and -Os.

The kernels are compiled in unity translation units (every symbol a kernel defines carries its
name as a prefix, exactly as the cffi host build relies on), which costs one compiler start per
batch instead of one per kernel. When a batch fails, each of its kernels is compiled on its own
so the report names the kernels and their layers; a diagnostic inside a shared helper would
otherwise be attributed to whichever kernel's file defined it first.
"""

from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import dwgen
from dwgen import reference
from dwgen.codegen import EmitOptions, generate
from dwgen.dsp_plan import DSP_TARGETS
from dwgen.hostbuild import build

from helpers import random_qlayer, tool_missing

SWEEP = 320
SEED = 20270109
TARGETS = ("generic", "cortex-m0", "cortex-m3", "cortex-m4", "cortex-m4-nofpu", "cortex-m7", "cortex-m33",
           "cortex-m55")
STRICT = ("-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-DDWGEN_CMSIS_NN_TYPES", "-c")
#: Kernels per unity translation unit: large enough to amortize the compiler's start-up,
#: small enough that the two worker threads get balanced shares.
BATCH = 40


def _sweep_layers():
    """The bit-exact sweeps' distribution (a tiny image every 10th layer), every target, and
    the emit options that change the emitted C: extern weights, the CMSIS-NN entry point and
    the size-optimized body (moduli coprime with the 8 targets, so every option meets every
    target)."""
    rng = np.random.default_rng(SEED)
    out = []
    for i in range(SWEEP):
        ql = random_qlayer(rng, tiny=True) if i % 10 == 0 else random_qlayer(rng)
        out.append((ql, EmitOptions(
            name=f"wsweep{i}", target=TARGETS[i % len(TARGETS)],
            weights="extern" if i % 5 == 2 else "baked",
            cmsis_nn_api=i % 11 == 5 and not ql.geometry.channels_first,
            opt="size" if i % 9 == 4 else "speed",
        )))
    return out


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    directory = tmp_path_factory.mktemp("wsweep")
    layers = _sweep_layers()
    kernels = [generate(ql, opts) for ql, opts in layers]
    for k in kernels:
        k.write(directory)
    return layers, kernels, directory


def _describe(k) -> str:
    g = k.plan.ql.geometry
    return (f"{k.name} ({k.options.target}, weights={k.options.weights}, opt={k.options.opt}): "
            f"{k.plan.ql.layer!r} on {list(g.input_shape)}")


def _compile_batch(argv: list[str], kernels, directory: Path, tag: str) -> list[str]:
    """Compile `kernels` as one unity TU; on any diagnostic, find the kernels that cause it."""
    unity = directory / f"unity_{tag}.c"
    unity.write_text("".join(f'#include "{k.name}.c"\n' for k in kernels))
    res = subprocess.run([*argv, *STRICT, unity.name, "-o", f"unity_{tag}.o"], cwd=directory,
                         capture_output=True, text=True)
    if res.returncode == 0 and not res.stderr:
        return []
    failures = []
    for k in kernels:
        one = subprocess.run([*argv, *STRICT, f"{k.name}.c", "-o", f"{k.name}_{tag}.o"], cwd=directory,
                             capture_output=True, text=True)
        if one.returncode != 0 or one.stderr:
            first = [ln for ln in one.stderr.splitlines() if "error" in ln or "warning" in ln][:3]
            failures.append(f"{' '.join(argv)}: {_describe(k)}\n    " + "\n    ".join(first))
    if not failures:  # only the batch fails: report it whole rather than pass silently
        failures.append(f"{' '.join(argv)} on {unity.name}:\n{res.stderr[-3000:]}")
    return failures


def _compile_all(jobs: list[tuple[list[str], list, str]], directory: Path) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = pool.map(lambda job: _compile_batch(job[0], job[1], directory, job[2]), jobs)
        failures = [f for batch in results for f in batch]
    assert not failures, f"{len(failures)} kernel(s) are not -Werror clean:\n" + "\n".join(failures)


def _batches(kernels):
    return [kernels[i:i + BATCH] for i in range(0, len(kernels), BATCH)]


def test_sweep_covers_the_bit_exact_space(sweep):
    layers, kernels, _ = sweep
    gs = [ql.geometry for ql, _ in layers]
    assert {o.target for _, o in layers} == set(TARGETS)
    assert sum(k.dsp is not None for k in kernels) > SWEEP // 4
    assert any(k.dsp is not None and k.dsp.quad_gather for k in kernels)
    assert any(o.weights == "extern" for _, o in layers) and any(o.cmsis_nn_api for _, o in layers)
    assert any(o.opt == "size" for _, o in layers)
    assert any(g.channels_first for g in gs) and any(g.rank == 1 for g in gs)
    assert any(g.depth_multiplier > 1 for g in gs) and any(g.batch == 2 for g in gs)
    assert any(g.in_h == 1 and g.in_w == 1 for g in gs)
    assert any(max(g.dilation_h, g.dilation_w) > 1 for g in gs)
    assert any(max(ql.quant.shifts) > 0 for ql, _ in layers) and any(min(ql.quant.shifts) < 0 for ql, _ in layers)


@pytest.mark.parametrize("cc", ["gcc", "clang"])
def test_host_build_is_warning_free(cc, sweep):
    """Portable kernels and the DSP kernels' host form (the exact C twins of the intrinsics).

    gcc's middle-end warnings (maybe-uninitialized, array-bounds, ...) need the optimizer: the
    portable kernels are compiled at -O2 here, the DSP kernels at -O2 and -Os by
    arm-none-eabi-gcc below; their host form is checked at -O0 for the front-end warnings of
    the twins. clang's warnings come from its front end, so -O0 checks them all, fast.
    """
    if shutil.which(cc) is None:
        tool_missing(f"{cc} is not installed")
    _, kernels, directory = sweep
    portable = [k for k in kernels if k.dsp is None]
    dsp = [k for k in kernels if k.dsp is not None]
    if cc == "gcc":
        jobs = [(["gcc", "-O2"], b, f"gcc_p{i}") for i, b in enumerate(_batches(portable))]
        jobs += [(["gcc", "-O0"], b, f"gcc_d{i}") for i, b in enumerate(_batches(dsp))]
    else:
        jobs = [(["clang", "-O0"], b, f"clang{i}") for i, b in enumerate(_batches(kernels))]
    _compile_all(jobs, directory)


@pytest.mark.parametrize("opt", ["-O2", "-Os"])
def test_arm_build_is_warning_free(opt, sweep):
    """Every DSP kernel with arm-none-eabi-gcc for its own core (the inline-assembly path)."""
    if shutil.which("arm-none-eabi-gcc") is None:
        tool_missing("arm-none-eabi-gcc is not installed")
    from dwgen.toolchain import find_compiler

    gcc = find_compiler("gcc")
    _, kernels, directory = sweep
    jobs = []
    for target in DSP_TARGETS:
        mine = [k for k in kernels if k.dsp is not None and k.options.target == target]
        assert mine, target
        argv = [*gcc.command, *gcc.target_flags(target), opt]
        jobs += [(argv, b, f"{target}{opt}_{i}") for i, b in enumerate(_batches(mine))]
    _compile_all(jobs, directory)


# -- the reproducers of issue 9 ------------------------------------------------------------------
def _layer(kernel, dilation, shape, *, zp=3, use_bias=True):
    c = shape[-1]
    layer = dwgen.DepthwiseLayer(kernel, (1, 1), "same", 1, "channels_last", dilation, "none", use_bias, 2)
    q = dwgen.Quantization.from_scales(0.05, zp, [0.01] * c, 0.1, -2, c)
    rng = np.random.default_rng(9)
    weights = rng.integers(-127, 128, (*kernel, c, 1))
    return dwgen.QuantizedLayer.create(layer, shape, q, weights, rng.integers(-500, 500, c) if use_bias else None)


def _strict_alone(kernels, directory: Path, arm_target: str | None = None) -> None:
    compilers = [[cc, "-O2"] for cc in ("gcc", "clang") if shutil.which(cc)]
    if len(compilers) < 2:
        tool_missing("gcc and clang are needed on the host")
    if arm_target is not None:
        if shutil.which("arm-none-eabi-gcc") is None:
            tool_missing("arm-none-eabi-gcc is not installed")
        from dwgen.toolchain import find_compiler

        gcc = find_compiler("gcc")
        compilers += [[*gcc.command, *gcc.target_flags(arm_target), o] for o in ("-O2", "-Os")]
    for k in kernels:
        k.write(directory)
        for argv in compilers:
            res = subprocess.run([*argv, *STRICT, f"{k.name}.c", "-o", f"{k.name}.o"], cwd=directory,
                                 capture_output=True, text=True)
            assert res.returncode == 0 and res.stderr == "", f"{' '.join(argv)} {k.name}:\n{res.stderr}"


def test_window_wholly_in_padding_has_no_unused_input_plane(tmp_path):
    """Kernel (2,1), dilation (2,1), SAME on a 1x8 image: the single output row's two taps read
    rows -1 and 1, both padding, so no pixel of the input is ever read (issue 9: `unused variable
    'in_plane'`). With input zero point 0 the weights are not read either."""
    kernels, qls = [], []
    for zp in (3, 0):
        for weights in ("baked", "extern"):
            for use_bias in (True, False):
                ql = _layer((2, 1), (2, 1), (1, 1, 8, 4), zp=zp, use_bias=use_bias)
                assert not any(r.live for r in generate(ql).plan.regions)
                for cmsis in (False, True):
                    name = f"pad_z{zp}_{weights}_{'b' if use_bias else 'nb'}{'_api' if cmsis else ''}"
                    kernels.append(generate(ql, EmitOptions(name=name, weights=weights, cmsis_nn_api=cmsis)))
                    qls.append(ql)
    assert all("in_plane" not in k.c_source for k in kernels)
    assert "_weights[" not in next(k for k in kernels if k.name == "pad_z0_baked_b").c_source
    _strict_alone(kernels, tmp_path)
    mod = build(kernels)
    for ql, k in zip(qls, kernels):
        x = ql.random_input(1)
        assert np.array_equal(mod[k.name](x), reference(ql, x)), k.name  # extern: the layer's weights


def test_dsp_gather_of_a_one_column_image_declares_no_unused_pointer(tmp_path):
    """Kernel (1,2), dilation (1,3), SAME on 3x1 for cortex-m4: the odd left padding puts the
    image's one column in the lead word, leaving no pairs and no tail for the gather's source
    pointer (issue 9: `unused variable 's'` in `*_load_row`); also with 3 and 1 channels (the
    scalar gather)."""
    kernels, qls = [], []
    for c in (4, 3, 1):
        ql = _layer((1, 2), (1, 3), (1, 3, 1, c))
        k = generate(ql, EmitOptions(name=f"onecol{c}", target="cortex-m4"))
        assert k.dsp is not None
        kernels.append(k)
        qls.append(ql)
    _strict_alone(kernels, tmp_path, arm_target="cortex-m4")
    mod = build(kernels)
    for ql, k in zip(qls, kernels):
        x = ql.random_input(2)
        assert np.array_equal(mod[k.name](x), reference(ql, x)), k.name


def test_weight_word_only_the_asm_tile_reads_is_declared_for_the_host_only(tmp_path):
    """Kernel 1x5 on a 1x49 row (odd width: one C tail column after the asm tile), CMSIS-NN
    entry point: the pair word (w[2], w[3]) feeds the tile's odd columns only, so its C local
    exists only where the C main step is compiled (`unused variable 'w0_2'` on the M4 before)."""
    ql = _layer((1, 5), (1, 1), (1, 1, 49, 16))
    k = generate(ql, EmitOptions(name="tailw", target="cortex-m4", cmsis_nn_api=True))
    assert k.dsp is not None and k.dsp.tile is not None
    _strict_alone([k], tmp_path, arm_target="cortex-m4")
    assert "#if !TAILW_TILE_ASM\n" in k.c_source
    x = ql.random_input(2)
    assert np.array_equal(build([k])["tailw"](x), reference(ql, x))
