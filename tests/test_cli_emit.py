"""`dwgen emit LAYER.json`: the happy path, every bad input, and nothing written on failure."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from dwgen import QuantizedLayer, layerfile, oracle
from dwgen.cli import main
from dwgen.codegen import EmitOptions, generate
from dwgen.hostbuild import build

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "kws_dw.json"


@pytest.fixture
def example(tmp_path):
    """A private copy of the bundled example (JSON + npz) to mutate."""
    shutil.copy(EXAMPLE, tmp_path / "layer.json")
    shutil.copy(EXAMPLE.with_suffix(".npz"), tmp_path / "kws_dw.npz")
    return tmp_path / "layer.json"


def _doc(path: Path) -> dict:
    return json.loads(path.read_text())


def _save(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc))
    return path


def _fails(capsys, argv, message: str, outdir: Path | None = None):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("dwgen: error: ")
    assert err.count("\n") == 1, err  # one line
    assert message in err, err
    if outdir is not None:
        assert not outdir.exists()
        assert not list(outdir.parent.glob(f".{outdir.name}.dwgen-*"))  # no staging left behind


def test_emit_happy_path_is_bit_exact(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["emit", str(EXAMPLE), "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["kws_dw1.c", "kws_dw1.h"]
    assert "wrote" in capsys.readouterr().out
    ql = layerfile.load(EXAMPLE)
    kernel = generate(ql, EmitOptions(name="kws_dw1"))
    assert (out / "kws_dw1.c").read_text() == kernel.c_source
    x = ql.random_input(0)
    assert np.array_equal(build(kernel)["kws_dw1"](x), oracle.run_tflite(ql, x))


def test_emit_twice_gives_identical_bytes(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["emit", str(EXAMPLE), "-o", str(a), "--cmsis-nn-api"]) == 0
    assert main(["emit", str(EXAMPLE), "-o", str(b), "--cmsis-nn-api"]) == 0
    for f in a.iterdir():
        assert f.read_bytes() == (b / f.name).read_bytes()


def test_emit_json_summary(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["emit", str(EXAMPLE), "-o", str(out), "--json", "--name", "kws", "--weights", "extern",
                 "--rounding", "single", "--layout", "nchw"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["name"] == "kws"
    assert summary["entry_point"] == (
        "void kws(const int8_t *input, int8_t *output, const int8_t *weights, const int32_t *bias_data)"
    )
    assert summary["input_shape"] == [1, 64, 25, 5] and summary["layout"] == "channels_first"
    assert summary["rounding"] == "single" and summary["scratch_bytes"] == 0
    assert summary["macs"] == 72000
    assert summary["data_flow"] == summary["data_flow_detail"] == "portable"
    assert "#define KWS_INPUT_C 64" in (out / "kws.h").read_text()


def test_emit_json_names_the_dsp_plan(tmp_path, capsys):
    assert main(["emit", str(EXAMPLE), "-o", str(tmp_path), "--json", "--target", "cortex-m4"]) == 0
    summary = json.loads(capsys.readouterr().out)
    # band / step / group, then the tile's loop, width, weight placement and shift bodies
    assert summary["data_flow"] == "dsp"
    assert re.fullmatch(r"(ring|block\d+)/s\d/g\d/tile:(row|rows|block|plane)(\+channels)?/w\d/(held|stash|memory)(/int8)?"
                        r"(/\d shifts)?(/compact)?", summary["data_flow_detail"]), summary["data_flow_detail"]


def test_existing_files_need_force(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    (out / "kws_dw1.c").write_text("old")
    _fails(capsys, ["emit", str(EXAMPLE), "-o", str(out)], "already has kws_dw1.c: pass --force to overwrite")
    assert (out / "kws_dw1.c").read_text() == "old" and not (out / "kws_dw1.h").exists()
    assert main(["emit", str(EXAMPLE), "-o", str(out), "--force"]) == 0
    assert (out / "kws_dw1.c").read_text().startswith("/*")
    assert (out / "keep.txt").read_text() == "mine"


def test_missing_file(tmp_path, capsys):
    _fails(capsys, ["emit", str(tmp_path / "nope.json"), "-o", str(tmp_path / "o")], "nope.json: no such file",
           tmp_path / "o")


def test_garbled_json(example, capsys):
    example.write_text('{"class_name": "DepthwiseConv2D", ')
    _fails(capsys, ["emit", str(example), "-o", str(example.parent / "o")], "not valid JSON: Expecting property name",
           example.parent / "o")


def test_top_level_not_an_object(example, capsys):
    example.write_text("[1, 2]")
    _fails(capsys, ["emit", str(example), "-o", str(example.parent / "o")], "the top level must be a JSON object")


def test_unknown_keys(example, capsys):
    doc = _doc(example)
    doc["colour"] = "blue"
    _save(example, doc)
    _fails(capsys, ["emit", str(example), "-o", str(example.parent / "o")],
           "unknown key(s) 'colour' in the layer file: allowed are class_name, config, input_shape, quantization, weights",
           example.parent / "o")
    doc = _doc(EXAMPLE)
    doc["quantization"]["zero_point"] = 1
    _save(example, doc)
    _fails(capsys, ["emit", str(example), "-o", str(example.parent / "o")], "unknown key(s) 'zero_point' in 'quantization'")


def test_missing_keys(example, capsys):
    doc = _doc(example)
    del doc["input_shape"]
    _save(example, doc)
    _fails(capsys, ["emit", str(example), "-o", str(example.parent / "o")], "missing key(s) 'input_shape' in the layer file")


def test_unsupported_activation(example, capsys):
    doc = _doc(example)
    doc["config"]["activation"] = "tanh"
    _save(example, doc)
    _fails(capsys, ["emit", str(example), "-o", str(example.parent / "o")],
           "activation='tanh' cannot be fused into an int8 depthwise kernel: supported are None, 'linear', 'relu' and 'relu6'",
           example.parent / "o")


def test_causal_padding(example, capsys):
    doc = _doc(example)
    doc["config"]["padding"] = "causal"
    _save(example, doc)
    _fails(capsys, ["emit", str(example), "-o", str(example.parent / "o")], "padding='causal' is not allowed")


def test_wrong_weight_shape_in_npz(example, capsys):
    np.savez(example.parent / "kws_dw.npz", weights=np.zeros((3, 3, 32, 1), np.int8), bias=np.zeros(64, np.int32))
    _fails(capsys, ["emit", str(example), "-o", str(example.parent / "o")],
           "kws_dw.npz: array 'weights' has shape [3, 3, 32, 1]: it must be [3, 3, 64, 1] or [3, 3, 64] or [1, 3, 3, 64]",
           example.parent / "o")


def test_wrong_bias_in_npz(example, capsys):
    np.savez(example.parent / "kws_dw.npz", weights=np.zeros((3, 3, 64, 1), np.int8), bias=np.zeros(63, np.int32))
    _fails(capsys, ["emit", str(example), "-o", str(example.parent / "o")], "kws_dw.npz: array 'bias' has shape [63]: it must be [64]")
    np.savez(example.parent / "kws_dw.npz", weights=np.zeros((3, 3, 64, 1), np.int8), bias=np.zeros(64, np.float32))
    _fails(capsys, ["emit", str(example), "-o", str(example.parent / "o")], "bias has dtype float32: it must be int32")


def test_npz_with_wrong_arrays_or_garbage(example, capsys):
    np.savez(example.parent / "kws_dw.npz", kernel=np.zeros(3))
    _fails(capsys, ["emit", str(example), "-o", str(example.parent / "o")],
           "kws_dw.npz holds ['kernel']: it must hold 'weights' and optionally 'bias'")
    (example.parent / "kws_dw.npz").write_bytes(b"not a zip")
    _fails(capsys, ["emit", str(example), "-o", str(example.parent / "o")], "kws_dw.npz: it is not an .npz archive (the zip file numpy.savez writes)")
    (example.parent / "kws_dw.npz").unlink()
    _fails(capsys, ["emit", str(example), "-o", str(example.parent / "o")], "layer.json: kws_dw.npz: no such file")


def test_float_weights_are_quantized_like_the_converter(example, tmp_path):
    doc = _doc(example)
    q = doc["quantization"]
    del q["weight_scales"]
    _save(example, doc)
    rng = np.random.default_rng(0)
    np.savez(example.parent / "kws_dw.npz", weights=rng.normal(0, 0.2, (3, 3, 64, 1)).astype(np.float32),
             bias=rng.normal(0, 0.5, 64).astype(np.float32))
    ql = layerfile.load(example)
    assert ql.weights.dtype == np.int8 and np.abs(ql.weights).max(axis=(0, 1)).min() == 127
    assert main(["emit", str(example), "-o", str(tmp_path / "o")]) == 0


@pytest.mark.parametrize(
    "name, message",
    [
        ("1st", "name '1st' is not a C identifier"),
        ('x"); system("rm -rf /', "is not a C identifier"),
        ("a*/ int evil; /*", "is not a C identifier"),
        ("line\nbreak", "is not a C identifier"),
        ("static", "name 'static' is reserved in C"),
        ("k" * 60, "is too long: at most 48 characters"),
    ],
)
def test_bad_names_are_refused(tmp_path, capsys, name, message):
    _fails(capsys, ["emit", str(EXAMPLE), "-o", str(tmp_path / "o"), "--name", name], message, tmp_path / "o")


def test_name_from_config_is_sanitized(example, tmp_path):
    doc = _doc(example)
    doc["config"]["name"] = 'evil*/ name"\n'
    _save(example, doc)
    out = tmp_path / "o"
    assert main(["emit", str(example), "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["evil_name.c", "evil_name.h"]


def test_cmsis_api_with_nchw_is_refused(tmp_path, capsys):
    _fails(capsys, ["emit", str(EXAMPLE), "-o", str(tmp_path / "o"), "--cmsis-nn-api", "--layout", "nchw"],
           "--cmsis-nn-api needs an NHWC (channels_last) kernel", tmp_path / "o")


def test_output_is_a_file(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    _fails(capsys, ["emit", str(EXAMPLE), "-o", str(f)], "exists and is not a directory")


def test_help_teaches(capsys):
    with pytest.raises(SystemExit):
        main(["emit", "--help"])
    out = capsys.readouterr().out
    for flag in ("--name", "--rounding", "--layout", "--weights", "--cmsis-nn-api", "--force", "--json"):
        assert flag in out


def test_version_names_the_interpreter(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    out = capsys.readouterr().out
    assert out.startswith("dwgen ")
    assert "TFLite oracle: " in out and "TFLite Micro: " in out


def test_layerfile_round_trip(tmp_path):
    ql = layerfile.load(EXAMPLE)
    layerfile.dump(ql, tmp_path / "again.json")
    back = layerfile.load(tmp_path / "again.json")
    assert back.layer == ql.layer and back.quant == ql.quant
    assert np.array_equal(back.weights, ql.weights) and np.array_equal(back.bias, ql.bias)


def test_layerfile_round_trip_keeps_relu_n1_to_1(tmp_path):
    """TFLite's fused RELU_N1_TO_1 has no Keras name: the layer file dwgen writes for such a layer
    loads back as the same layer (it used to write 'relu_n1_to_1' and then refuse it)."""
    from dwgen.layer import DepthwiseLayer

    ql = layerfile.load(EXAMPLE)
    lay = ql.layer
    n1 = DepthwiseLayer(lay.kernel_size, lay.strides, lay.padding, lay.depth_multiplier, lay.data_format,
                        lay.dilation_rate, "relu_n1_to_1", lay.use_bias, lay.rank)
    g = ql.geometry
    clamped = QuantizedLayer.create(n1, g.input_shape, ql.quant, ql.weights.reshape(3, 3, g.in_c, 1), ql.bias)
    layerfile.dump(clamped, tmp_path / "n1.json")
    assert json.loads((tmp_path / "n1.json").read_text())["config"]["activation"] == "relu_n1_to_1"
    back = layerfile.load(tmp_path / "n1.json")
    assert back.layer == clamped.layer and (back.act_min, back.act_max) == (clamped.act_min, clamped.act_max)
    assert np.array_equal(back.weights, clamped.weights)
