"""Bounded generation (issue 9): past MAX_UNROLLED_STATEMENTS the kernel is generated in the
looped form, planning is linear in the output size, and the looped form is bit-exact."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import time
from itertools import groupby

import numpy as np
import pytest

import dwgen
from dwgen import layerfile, oracle, reference
from dwgen.cli import main
from dwgen.codegen import EmitOptions, generate
from dwgen.hostbuild import build
from dwgen.plan import MAX_UNROLLED_STATEMENTS, REGION_STATEMENTS, axis_runs, make_plan

#: Whatever the kernel, the looped form is its fixed code plus the tables: a few bytes per
#: weight (a 4-character column each) and per channel.
FIXED_BYTES = 24_000


def _layer(kernel, shape, *, rank=2, strides=(1, 1), dilation=(1, 1), m=1, fmt="channels_last",
           padding="same", zp=-7, seed=0):
    layer = dwgen.DepthwiseLayer(kernel, strides, padding, m, fmt, dilation, "relu6", True, rank)
    c = shape[1] if fmt == "channels_first" else shape[-1]
    oc = c * m
    rng = np.random.default_rng(seed)
    q = dwgen.Quantization.from_scales(0.05, zp, rng.uniform(0.001, 0.004, oc), 0.4, 5, oc)
    return dwgen.QuantizedLayer.create(layer, shape, q, rng.integers(-127, 128, (*kernel, c, m)),
                                       rng.integers(-3000, 3000, oc))


def _bound(ql) -> int:
    return FIXED_BYTES + 6 * ql.weights.size + 40 * ql.geometry.out_c


# The layers of the issue: a valid model took > 120 s (64x64), wrote 52 MB (32x32) and 249 MB (k=2000).
ISSUE_LAYERS = {
    "k64_on_64x64": lambda: _layer((64, 64), (1, 64, 64, 1)),
    "k32_on_64x64": lambda: _layer((32, 32), (1, 64, 64, 1)),
    "k2000_1d": lambda: _layer((1, 2000), (1, 2000, 1), rank=1),
}


@pytest.mark.parametrize("which", sorted(ISSUE_LAYERS))
@pytest.mark.parametrize("target", ["generic", "cortex-m4"])
def test_issue_layers_emit_quickly_and_small(which, target):
    ql = ISSUE_LAYERS[which]()
    t0 = time.perf_counter()
    plan = make_plan(ql)
    kernels = [generate(ql, EmitOptions(name="big", target=target, weights=w)) for w in ("baked", "extern")]
    elapsed = time.perf_counter() - t0
    assert elapsed < 5, f"{which} took {elapsed:.1f} s"
    assert plan.looped and plan.regions == () and plan.unrolled_statements > MAX_UNROLLED_STATEMENTS
    for k in kernels:
        size = len(k.c_source) + len(k.h_source)
        assert size < _bound(ql), f"{which}: {size} bytes"
        assert k.data_flow == "looped" and k.dsp is None
        assert "one loop body for the whole image" in k.c_source and "/* Border:" not in k.c_source
        assert (f"the unrolled kernel would be about {plan.unrolled_statements} statements, over dwgen's "
                f"budget of {MAX_UNROLLED_STATEMENTS}") in k.c_source


def test_budget_boundary():
    """A 9x9 SAME layer (81 regions x (81 + 12) = 7,533 statements) stays unrolled; 11x11 does not."""
    for k, looped in ((3, False), (9, False), (11, True)):
        ql = _layer((k, k), (1, 16, 16, 2))
        plan = make_plan(ql)
        rows = axis_runs(16, 16, k, 1, 1, ql.geometry.pad_top)
        expected = len(rows) ** 2 * (k * k + REGION_STATEMENTS)
        assert plan.unrolled_statements == expected
        assert plan.looped is looped, (k, expected)
        kernel = generate(ql, EmitOptions(name=f"k{k}"))
        assert kernel.data_flow == ("looped" if looped else "portable")
        assert ("/* Border:" in kernel.c_source) is not looped
    # --opt size is the same looped form, and says so too
    assert generate(_layer((3, 3), (1, 8, 8, 2)), EmitOptions(name="s", opt="size")).data_flow == "looped"


def test_axis_runs_match_a_tap_by_tap_scan():
    """The O(out) runs equal a brute-force scan of every output's live taps."""
    def scan(out, size, kernel, stride, dilation, pad):
        def live(o):
            return tuple(t for t in range(kernel) if 0 <= o * stride - pad + t * dilation < size)
        runs, pos = [], 0
        for taps, members in groupby(range(out), key=live):
            n = len(list(members))
            runs.append((pos, pos + n, taps, len(taps) == kernel))
            pos += n
        return runs

    rnd = random.Random(4)
    for _ in range(3000):
        k, s, d, size = rnd.randint(1, 9), rnd.randint(1, 4), rnd.randint(1, 4), rnd.randint(1, 20)
        pad = rnd.randint(0, (k - 1) * d)
        out = max(1, (size + 2 * pad - (k - 1) * d - 1) // s + 1) + rnd.randint(0, 2)
        got = [(r.start, r.stop, tuple(r.taps), r.interior) for r in axis_runs(out, size, k, s, d, pad)]
        assert got == scan(out, size, k, s, d, pad), (out, size, k, s, d, pad)


def test_planning_is_linear_in_the_output():
    """A 1-D kernel of 20,000 taps on 50,000 samples: every output its own border run."""
    t0 = time.perf_counter()
    runs = axis_runs(50_000, 50_000, 20_000, 1, 1, 9_999)
    assert time.perf_counter() - t0 < 2
    assert sum(r.length for r in runs) == 50_000 and len(runs) == 20_000
    assert all(len(r.taps) <= 20_000 for r in runs)


def _strict(kernels, directory) -> None:
    """The looped form is -Werror clean too (with every compiler the host has)."""
    compilers = [cc for cc in ("gcc", "clang") if shutil.which(cc)]
    if not compilers:
        from helpers import tool_missing

        tool_missing("no host C compiler (gcc or clang)")
    for k in kernels:
        k.write(directory)
    for cc in compilers:
        res = subprocess.run([cc, "-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-O2", "-c",
                              *(f"{k.name}.c" for k in kernels)], cwd=directory, capture_output=True, text=True)
        assert res.returncode == 0 and res.stderr == "", res.stderr[-3000:]


OVER_BUDGET = [
    # 2-D, NHWC, batch 2, depth multiplier 2, horizontal stride 2 (8,778 statements unrolled)
    ("k11_s2_m2", lambda: _layer((11, 11), (2, 13, 14, 3), strides=(1, 2), m=2, seed=1), "baked"),
    # NCHW, dilated, extern weights (15,093)
    ("k13x9_dil", lambda: _layer((13, 9), (1, 2, 14, 18), dilation=(1, 2), fmt="channels_first", seed=2),
     "extern"),
    # 1-D, zero input zero point, wider than the image (VALID would be impossible)
    ("k300_1d", lambda: _layer((1, 300), (1, 200, 2), rank=1, zp=0, seed=3), "baked"),
    # one of the issue's layers, whole
    ("k32_on_64x64", ISSUE_LAYERS["k32_on_64x64"], "baked"),
]


def test_looped_form_is_bit_exact_on_over_budget_layers(tmp_path):
    qls, kernels = [], []
    for name, make, weights in OVER_BUDGET:
        ql = make()
        for target in ("generic", "cortex-m4"):
            k = generate(ql, EmitOptions(name=f"{name}_{target.replace('-', '_')}", target=target, weights=weights))
            # the DSP kernel, bounded by its own budget, is kept where its plan exists
            assert k.plan.looped and k.data_flow == ("looped" if k.dsp is None else "dsp"), name
            assert k.data_flow == "looped" or target == "cortex-m4"
            assert ("Looped form: the unrolled kernel would be" in k.c_source) is (k.dsp is None)
            qls.append(ql)
            kernels.append(k)
    assert any(k.dsp is not None for k in kernels) and sum(k.data_flow == "looped" for k in kernels) >= 5
    _strict(kernels, tmp_path)
    mod = build(kernels)
    rng = np.random.default_rng(11)
    for ql, k in zip(qls, kernels):
        x = ql.random_input(rng)
        assert np.array_equal(mod[k.name](x), reference(ql, x)), k.name


def test_dsp_row_program_is_held_to_the_budget():
    """A wide 1-D kernel whose band fits the DSP stack budget but whose straight-line row code
    (one step per output pair, each with every tap) would not: the portable kernel is used."""
    ql = _layer((1, 150), (1, 300, 1), rank=1)
    from dwgen.dsp_plan import emitted_statements, make_dsp_plan

    g = ql.geometry
    assert emitted_statements(g.out_w, 1, 150, 1, 1) > MAX_UNROLLED_STATEMENTS
    assert make_dsp_plan(ql) is None
    k = generate(ql, EmitOptions(name="wide", target="cortex-m4"))
    assert k.dsp is None and k.data_flow == "looped"
    x = ql.random_input(3)
    assert np.array_equal(build(k)["wide"](x), reference(ql, x))


# -- reported as data_flow "looped" -------------------------------------------------------------
def _run(capsys, argv):
    code = main(argv)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_emit_json_and_manifest_report_the_looped_form(capsys, tmp_path):
    ql = ISSUE_LAYERS["k64_on_64x64"]()
    layer_json = layerfile.dump(ql, tmp_path / "big.json")
    t0 = time.perf_counter()
    code, out, err = _run(capsys, ["emit", str(layer_json), "-o", str(tmp_path / "a"), "--name", "big", "--json"])
    assert code == 0, err
    assert json.loads(out)["data_flow"] == "looped"
    assert sum(p.stat().st_size for p in (tmp_path / "a").iterdir()) < _bound(ql)

    model = tmp_path / "big.tflite"
    model.write_bytes(oracle.write_model(ql))
    code, _, err = _run(capsys, ["emit", str(model), "-o", str(tmp_path / "b"), "--target", "cortex-m4"])
    assert code == 0, err
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert [k["data_flow"] for k in manifest["kernels"]] == ["looped"]
    assert time.perf_counter() - t0 < 20

    small = tmp_path / "small.json"
    layerfile.dump(_layer((3, 3), (1, 8, 8, 4)), small)
    code, out, _ = _run(capsys, ["emit", str(small), "-o", str(tmp_path / "c"), "--name", "small", "--json"])
    assert code == 0 and json.loads(out)["data_flow"] == "portable"


def test_check_report_names_the_looped_form(capsys, tmp_path):
    ql = OVER_BUDGET[0][1]()
    model = tmp_path / "k11.tflite"
    model.write_bytes(oracle.write_model(ql))
    code, out, err = _run(capsys, ["check", str(model), "--json"])
    assert code == 0, err
    doc = json.loads(out)
    assert [(layer["data_flow"], layer["result"]) for layer in doc["layers"]] == [("looped", "ok")]


def test_bench_report_names_the_looped_form(capsys, tmp_path):
    try:
        from dwgen.emulate import Emulator  # noqa: F401
        from dwgen.toolchain import find_compiler
        find_compiler()
    except Exception as exc:  # toolchain or emulator missing
        from helpers import tool_missing

        tool_missing(f"cross toolchain / emulator unavailable: {exc}")
    layer_json = layerfile.dump(OVER_BUDGET[2][1](), tmp_path / "k300.json")
    code, out, err = _run(capsys, ["bench", str(layer_json), "--target", "cortex-m3,cortex-m4", "--json"])
    assert code == 0, err
    doc = json.loads(out)
    assert doc["bit_exact"] is True
    assert [r["data_flow"] for r in doc["results"]] == ["looped", "looped"]


def test_help_states_the_budget(capsys):
    with pytest.raises(SystemExit):
        main(["emit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"would exceed {MAX_UNROLLED_STATEMENTS} C statements" in text and "'looped'" in text
