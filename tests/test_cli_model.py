"""`dwgen inspect / emit / check` on the fixture models, and their bad inputs."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers import tflite_writer

from dwgen.cli import main
from dwgen.codegen import EmitOptions, generate
from dwgen.hostbuild import build
from dwgen.model_emit import generate_model
from dwgen.tflite_model import read_model

FIXTURES = Path(__file__).resolve().parent / "fixtures"
INT8_MODELS = ["dw_configs.tflite", "dw1d.tflite", "dw_channels_first.tflite", "kws_dscnn.tflite",
               "mobilenet_tiny.tflite", "dw_dilated_dynamic.tflite"]
C_IDENT = re.compile(r"[a-z_][a-z0-9_]*\Z")


def _run(capsys, argv):
    code = main(argv)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


@pytest.mark.parametrize("model", INT8_MODELS)
def test_check_every_fixture_on_the_host(capsys, model):
    code, out, _ = _run(capsys, ["check", str(FIXTURES / model), "--json"])
    report = json.loads(out)
    assert code == 0 and report["ok"]
    n = len(read_model(FIXTURES / model).depthwise)
    assert len(report["layers"]) == n > 0
    assert all(layer["result"] == "ok" and layer["tflm"] == "ok" for layer in report["layers"])


@pytest.mark.parametrize("model", INT8_MODELS)
def test_check_on_emulated_cortex_m4(capsys, model):
    code, out, _ = _run(capsys, ["check", str(FIXTURES / model), "--target", "cortex-m4", "--json"])
    report = json.loads(out)
    assert code == 0 and report["ok"], out
    assert all(layer["cycles_per_mac_m4"] > 0 for layer in report["layers"])


def test_check_table_and_progress(capsys):
    code, out, err = _run(capsys, ["check", str(FIXTURES / "kws_dscnn.tflite")])
    assert code == 0
    assert out.splitlines()[0] == (
        "kws_dscnn.tflite: 4/4 depthwise layers bit-exact with "
        + out.split("bit-exact with ")[1].split(" (BUILTIN_REF)")[0]
        + " (BUILTIN_REF) on host"
    )
    assert out.rstrip().endswith("PASS")
    assert "checking 4/4: dw4_1" in err


def test_check_with_given_inputs(capsys, tmp_path):
    model = read_model(FIXTURES / "mobilenet_tiny.tflite")
    x = model.random_inputs(123)[0]
    np.save(tmp_path / "in.npy", x)
    code, out, _ = _run(capsys, ["check", str(FIXTURES / "mobilenet_tiny.tflite"), "--inputs",
                                 str(tmp_path / "in.npy"), "--json"])
    assert code == 0 and json.loads(out)["ok"]
    np.save(tmp_path / "bad.npy", x.astype(np.int16))
    code, _, err = _run(capsys, ["check", str(FIXTURES / "mobilenet_tiny.tflite"), "--inputs", str(tmp_path / "bad.npy")])
    assert (code, err) == (2, f"dwgen: error: {tmp_path / 'bad.npy'}: the array has dtype int16: it must be int8, "
                              "float16, float32, float64 (model input 0 is int8 1x32x32x3; float values are quantized "
                              "with its scale 0.032642037 and zero point -2)\n")
    # the content decides, not the name: an .npz holding the arrays, or an .npy named .npz
    np.savez(tmp_path / "in.npz", x)
    (tmp_path / "npy_named.npz").write_bytes((tmp_path / "in.npy").read_bytes())
    for name in ("in.npz", "npy_named.npz"):
        code, out, _ = _run(capsys, ["check", str(FIXTURES / "mobilenet_tiny.tflite"), "--inputs",
                                     str(tmp_path / name), "--only", "1", "--json"])
        assert code == 0 and json.loads(out)["ok"], name


def test_check_quantizes_float_inputs_as_tflite_does(capsys, tmp_path):
    from dwgen.check import load_inputs

    model = read_model(FIXTURES / "mobilenet_tiny.tflite")
    (t,) = model.inputs
    scale, zp = np.float32(t.scale[0]), t.zero_point[0]
    rng = np.random.default_rng(7)
    f = rng.uniform(-6, 6, (1, 32, 32, 3)).astype(np.float32)
    f[0, 0, 0, :] = [np.float32(2.5) * scale, np.float32(-2.5) * scale, 1e9]  # halves away from zero; saturation
    np.save(tmp_path / "f.npy", f)
    (q,) = load_inputs(tmp_path / "f.npy", model)
    want = [max(-128, min(127, int(math.floor(abs(v / scale) + 0.5)) * (1 if v >= 0 else -1) + zp)) for v in f.ravel()]
    assert q.dtype == np.int8 and q.ravel().tolist() == want
    assert q[0, 0, 0].tolist() == [3 + zp, -3 + zp, 127]
    code, out, _ = _run(capsys, ["check", str(FIXTURES / "mobilenet_tiny.tflite"), "--inputs", str(tmp_path / "f.npy"),
                                 "--json"])
    assert code == 0 and json.loads(out)["ok"]
    f[0, 1, 1, 1] = np.nan
    np.save(tmp_path / "nan.npy", f)
    code, _, err = _run(capsys, ["check", str(FIXTURES / "mobilenet_tiny.tflite"), "--inputs", str(tmp_path / "nan.npy")])
    assert (code, err) == (2, f"dwgen: error: the float values given for input '{t.name}' include NaN or infinity: "
                              "they cannot be quantized\n")


def test_check_reports_a_mismatch(capsys, monkeypatch):
    """A kernel that is off by one somewhere must fail the check with its position and values."""
    import dwgen.check as check_mod

    real = check_mod.generate

    def broken(ql, opts):
        k = real(ql, opts)
        src = k.c_source.replace("return (int8_t)(v + ", "return (int8_t)(v + (v == 3) + ")
        return type(k)(k.name, src, k.h_source, k.plan, k.options, k.dsp)

    monkeypatch.setattr(check_mod, "generate", broken)
    code, out, _ = _run(capsys, ["check", str(FIXTURES / "kws_dscnn.tflite"), "--only", "1"])
    assert code == 1
    assert "MISMATCH" in out and "first at [" in out and out.rstrip().endswith("FAIL")


@pytest.mark.parametrize("model", INT8_MODELS)
def test_inspect_and_emit_every_fixture(capsys, tmp_path, model):
    code, out, _ = _run(capsys, ["inspect", str(FIXTURES / model), "--json"])
    doc = json.loads(out)
    n = len(read_model(FIXTURES / model).depthwise)
    assert code == 0 and len(doc["depthwise"]) == n
    code, out, _ = _run(capsys, ["emit", str(FIXTURES / model), "-o", str(tmp_path / "o"), "--json"])
    manifest = json.loads(out)
    assert code == 0 and len(manifest["kernels"]) == n
    assert all((tmp_path / "o" / f).is_file() for k in manifest["kernels"] for f in k["files"])


def test_inspect_table(capsys):
    code, out, _ = _run(capsys, ["inspect", str(FIXTURES / "dw_configs.tflite")])
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "dw_configs.tflite: 6 depthwise layer(s) dwgen can generate"
    row = next(line for line in lines if line.lstrip().startswith("5 "))
    # 7 channels, stride 2 SAME on an even input: pads 0 top/left, 1 bottom/right
    assert "1x16x16x7 -> 1x8x8x7" in row and "same 0,0,1,1" in row and "4,032" in row
    model = read_model(FIXTURES / "dw_configs.tflite")
    macs = sum(op.qlayer.geometry.macs for op in model.depthwise)
    weights = sum(op.qlayer.weights.size + 4 * op.qlayer.bias.size for op in model.depthwise)
    assert lines[-1] == (f"total: 6 layer(s), {macs:,} MACs, {weights:,} B of weights and bias (int8, int32); "
                         "cycles, milliseconds, flash and stack per kernel: dwgen bench MODEL")
    code, out, _ = _run(capsys, ["inspect", str(FIXTURES / "dw_configs.tflite"), "--json"])
    assert json.loads(out)["totals"] == {"layers": 6, "macs": macs, "weight_bytes": weights}


def test_inspect_json_and_patterns(capsys):
    code, out, _ = _run(capsys, ["inspect", str(FIXTURES / "dw1d.tflite"), "--json"])
    doc = json.loads(out)
    assert code == 0 and {d["pattern"] for d in doc["depthwise"]} == {"conv1d"}
    assert all(d["user_layer"]["class_name"] == "DepthwiseConv1D" for d in doc["depthwise"])
    code, out, _ = _run(capsys, ["inspect", str(FIXTURES / "dw_channels_first.tflite"), "--json"])
    doc = json.loads(out)
    assert {d["pattern"] for d in doc["depthwise"]} == {"channels_first"}
    assert all(d["user_layer"]["data_format"] == "channels_first" for d in doc["depthwise"])


@pytest.mark.parametrize("model, reason", [("dw_int16x8.tflite", "int16x8 quantization"),
                                           ("dw_float.tflite", "float")])
def test_unsupported_ops_are_listed(capsys, model, reason):
    code, out, _ = _run(capsys, ["inspect", str(FIXTURES / model)])
    assert code == 0 and "dwgen cannot generate" in out and reason in out
    code, out, _ = _run(capsys, ["inspect", str(FIXTURES / model), "--json"])
    assert json.loads(out)["unsupported"]


def test_emit_model_writes_kernels_umbrella_and_manifest(capsys, tmp_path):
    out = tmp_path / "out"
    code, _, _ = _run(capsys, ["emit", str(FIXTURES / "kws_dscnn.tflite"), "-o", str(out), "--target", "cortex-m4"])
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert [k["op_index"] for k in manifest["kernels"]] == [1, 3, 5, 7]
    names = [k["name"] for k in manifest["kernels"]]
    assert len(set(names)) == 4 and all(C_IDENT.match(n) for n in names)
    for k in manifest["kernels"]:
        assert sorted(p.name for p in out.glob(f"{k['name']}.*")) == sorted(k["files"])
        assert k["input_shape"] == [1, 25, 5, 64] and k["scratch_bytes"] == 0
    umbrella = (out / "dwgen_kernels.h").read_text()
    assert all(f'#include "{n}.h"' in umbrella for n in names)
    # The files are exactly what the library generates for those ops.
    model = read_model(FIXTURES / "kws_dscnn.tflite")
    for mk in generate_model(model.depthwise, target="cortex-m4", model_name="kws_dscnn.tflite"):
        assert (out / f"{mk.kernel.name}.c").read_text() == mk.kernel.c_source
        assert "From kws_dscnn.tflite, op " in mk.kernel.c_source


def test_emit_model_only_and_as_written(capsys, tmp_path):
    out = tmp_path / "o"
    code, _, _ = _run(capsys, ["emit", str(FIXTURES / "dw_channels_first.tflite"), "-o", str(out), "--as-written",
                               "--only", "1", "--json"])
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    (k,) = manifest["kernels"]
    assert k["op_index"] == 1 and k["layout"] == "channels_first" and len(k["replaces_ops"]) >= 2
    # The NCHW kernel computes the whole TRANSPOSE -> DW -> TRANSPOSE on channels-first data.
    op = next(o for o in read_model(FIXTURES / "dw_channels_first.tflite").depthwise if o.index == 1)
    ql = op.user_qlayer
    mod = build(generate(ql, EmitOptions(name="nchw")))
    from dwgen import oracle

    x = ql.random_input(4)
    assert np.array_equal(mod["nchw"](x), oracle.run_tflite(ql, x))


def test_emit_model_is_deterministic(capsys, tmp_path):
    for d in ("a", "b"):
        assert _run(capsys, ["emit", str(FIXTURES / "mobilenet_tiny.tflite"), "-o", str(tmp_path / d)])[0] == 0
    for f in (tmp_path / "a").iterdir():
        assert f.read_bytes() == (tmp_path / "b" / f.name).read_bytes()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["emit", "{m}", "-o", "{o}", "--only", "2"], "--only: op 2 is not a depthwise layer dwgen can generate (those are: 1, 3, 5, 7)"),
        (["emit", "{m}", "-o", "{o}", "--only", "x"], "--only 'x': give op indices separated by commas"),
        (["emit", "{m}", "-o", "{o}", "--name", "k"], "--name applies to LAYER.json"),
        (["check", "{m}", "--only", "99"], "--only: op 99 is not a depthwise layer"),
        (["check", "{m}", "--inputs", "{o}/missing.npy"], "missing.npy: no such file"),
    ],
)
def test_model_cli_bad_arguments(capsys, tmp_path, argv, message):
    m = str(FIXTURES / "kws_dscnn.tflite")
    argv = [a.format(m=m, o=tmp_path / "o") for a in argv]
    code, _, err = _run(capsys, argv)
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()


def test_model_bad_files(capsys, tmp_path):
    good = (FIXTURES / "kws_dscnn.tflite").read_bytes()
    cases = {
        "truncated.tflite": good[: len(good) // 3],
        "ident.tflite": good[:4] + b"XXXX" + good[8:],
        "empty.tflite": b"",
    }
    for name, data in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        for cmd in (["inspect", str(p)], ["check", str(p)], ["emit", str(p), "-o", str(tmp_path / "o")]):
            code, out, err = _run(capsys, cmd)
            assert code == 2, (name, cmd)
            assert err.startswith(f"dwgen: error: {p}: ") and err.count("\n") == 1, err
            assert not (tmp_path / "o").exists()
    code, _, err = _run(capsys, ["inspect", str(tmp_path / "nope.tflite")])
    assert code == 2 and "nope.tflite: no such file" in err


def test_model_with_nothing_to_generate(capsys, tmp_path):
    for cmd in (["emit", str(FIXTURES / "dw_float.tflite"), "-o", str(tmp_path / "o")],
                ["check", str(FIXTURES / "dw_int16x8.tflite")]):
        code, _, err = _run(capsys, cmd)
        assert code == 2 and "has no depthwise layer dwgen can generate" in err and "op 0: " in err, err
    assert not (tmp_path / "o").exists()


# -- exit status: 0 ok, 1 mismatch found, 2 input rejected -------------------------------------


def test_check_help_documents_the_exit_status(capsys):
    for cmd in ("check", "bench"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        out = capsys.readouterr().out
        assert ("exit status:\n"
                "  0  every layer bit-exact\n"
                "  1  mismatch found: a kernel's output differs from the reference it is checked against\n"
                "  2  input rejected: a model, layer or input file dwgen or TFLite refuses, a bad argument or a\n"
                "     missing tool; one line 'dwgen: error: ...' on stderr, nothing compared\n") in out, cmd


def test_check_quantization_tflite_refuses_is_rejected_not_a_mismatch(capsys, tmp_path):
    """The fuzz campaign's model: a bias with 7 scales and 8 zero points. TFLite's interpreter
    refuses to load it; dwgen's reader says so first, for every command, with exit 2."""
    w = tflite_writer()
    spec = w.dw_spec()
    spec["tensors"][2].update(scale=[1e-4] * 7)
    p = tmp_path / "bad_quant.tflite"
    p.write_bytes(w.build(spec))
    want = (f"dwgen: error: {p}: tensor 2 'dw/bias' has 7 scales but 8 zero points: TFLite refuses to "
            "load quantization whose scale and zero point counts differ\n")
    for argv in (["check", str(p)], ["check", str(p), "--json"], ["inspect", str(p)],
                 ["emit", str(p), "-o", str(tmp_path / "o")]):
        assert _run(capsys, argv) == (2, "", want), argv
    assert not (tmp_path / "o").exists()


def test_check_model_tflite_cannot_run_is_rejected(capsys, tmp_path):
    """A model dwgen reads but TFLite fails to prepare (a RESHAPE to the wrong size after the
    depthwise op): an input rejected, exit 2, one line; not a traceback, not a mismatch."""
    w = tflite_writer()
    spec = w.dw_spec()
    spec["tensors"].append(w._tensor("shape", [2], "int32", data=np.array([5, 7]), quant=False))
    spec["tensors"].append(w._tensor("flat", [5, 7], "int8", scale=[0.04], zero_point=[-128]))
    spec["ops"].append({"code": 22, "inputs": [3, 4], "outputs": [5]})
    spec["outputs"] = [5]
    p = tmp_path / "reshape.tflite"
    p.write_bytes(w.build(spec))
    assert _run(capsys, ["inspect", str(p)])[0] == 0  # dwgen itself reads it
    for argv in (["check", str(p)], ["check", str(p), "--json"]):
        code, out, err = _run(capsys, argv)
        assert (code, out) == (2, ""), err
        assert re.fullmatch(r"dwgen: error: TFLite \((ai-edge-litert|tflite-runtime) [^)]+\) refuses to load the "
                            r"model: .*\(288 != 35\).*RESHAPE.*\n", err), err


def _npy_header_only(shape, descr="|i1") -> bytes:
    """An .npy that is all header: numpy.load would try to allocate what it claims."""
    h = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {tuple(shape)!r}, }}".encode()
    h += b" " * (63 - (10 + len(h)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(h).to_bytes(2, "little") + h


def _kws_input_scale() -> str:
    return str(np.float32(read_model(FIXTURES / "kws_dscnn.tflite").inputs[0].scale[0]))


def _kws_input_zero_point() -> int:
    return read_model(FIXTURES / "kws_dscnn.tflite").inputs[0].zero_point[0]


def test_check_inputs_are_read_header_first(capsys, tmp_path):
    m = str(FIXTURES / "kws_dscnn.tflite")
    files = {
        "huge.npy": _npy_header_only((10**13,)),
        "huge4d.npy": _npy_header_only((1000, 1000, 1000, 10000)),
        "float.npy": _npy_header_only((1, 49, 10, 1), "<f4"),  # accepted (quantized), but empty
        "int16.npy": _npy_header_only((1, 49, 10, 1), "<i2"),
        "short.npy": _npy_header_only((1, 49, 10, 1)) + bytes(100),
        "text.npy": b"1 2 3\n",
    }
    np.savez(tmp_path / "two.npz", a=np.zeros((1, 49, 10, 1), np.int8), b=np.zeros(3, np.int8))
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    want = {
        "huge.npy": "the array has shape [10000000000000]: it must be [1, 49, 10, 1]",
        "huge4d.npy": "the array has shape [1000, 1000, 1000, 10000]: it must be [1, 49, 10, 1]",
        "float.npy": "the array is truncated: its header declares 1.91 KiB of data but the file holds 0 bytes",
        "int16.npy": "the array has dtype int16: it must be int8, float16, float32, float64 (model input 0 is int8 "
                     f"1x49x10x1; float values are quantized with its scale {_kws_input_scale()} and zero point "
                     f"{_kws_input_zero_point()})",
        "short.npy": "the array is truncated: its header declares 490 bytes of data but the file holds 100 bytes",
        "text.npy": "it is not an .npz archive (the zip file numpy.savez writes)",
        "two.npz": "the archive holds 2 arrays but the model has 1 inputs: give one array per input, in order",
    }
    for name, message in want.items():
        p = tmp_path / name
        code, out, err = _run(capsys, ["check", m, "--inputs", str(p)])
        assert (code, out, err) == (2, "", f"dwgen: error: {p}: {message}\n"), name


def test_check_inputs_npy_for_a_model_with_two_inputs(capsys, tmp_path):
    w = tflite_writer()
    spec = w.dw_spec()
    spec["tensors"].append(w._tensor("second", [1, 2], "int8", scale=[0.1], zero_point=[0]))
    spec["inputs"] = [0, 4]
    p = tmp_path / "two_inputs.tflite"
    p.write_bytes(w.build(spec))
    np.save(tmp_path / "x.npy", np.zeros((1, 6, 6, 4), np.int8))
    code, _, err = _run(capsys, ["check", str(p), "--inputs", str(tmp_path / "x.npy")])
    assert (code, err) == (2, f"dwgen: error: {tmp_path / 'x.npy'}: a .npy holds one array but the model has 2 "
                              "inputs: give an .npz with one array per input, in order\n")
    np.savez(tmp_path / "x.npz", np.zeros((1, 6, 6, 4), np.int8), np.zeros((1, 3), np.int8))
    code, _, err = _run(capsys, ["check", str(p), "--inputs", str(tmp_path / "x.npz")])
    assert (code, err) == (2, f"dwgen: error: {tmp_path / 'x.npz'}: array 'arr_1' has shape [1, 3]: it must be "
                              "[1, 2]\n")
