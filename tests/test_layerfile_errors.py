"""Hostile layer files, .npz archives and CLI arguments (issue 9, items 5 and 8).

Each input here once ended in a Python traceback (exit 1), an unbounded allocation, or a
file opened outside the layer file's directory. Now each is one line
`dwgen: error: <file>: <what is wrong and what is accepted>`, exit status 2, and the
output directory is not created.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from dwgen import layerfile
from dwgen.cli import main
from dwgen.errors import DwgenError
from dwgen.npyfile import NpzArchive, human_bytes, load_npy_checked

ROOT = Path(__file__).resolve().parent.parent
KWS_MODEL = ROOT / "tests" / "fixtures" / "kws_dscnn.tflite"

BASE = {
    "class_name": "DepthwiseConv2D",
    "config": {"name": "dw", "kernel_size": [3, 3], "padding": "same", "activation": "relu"},
    "input_shape": [1, 8, 8, 4],
    "quantization": {
        "input_scale": 0.02, "input_zero_point": -128, "output_scale": 0.05, "output_zero_point": -128,
        "weight_scales": [0.01, 0.02, 0.03, 0.04],
    },
    "weights": "w.npz",
}


def npy_header(shape, descr="|i1") -> bytes:
    d = repr({"descr": descr, "fortran_order": False, "shape": tuple(shape)}).encode("latin-1")
    pad = 64 - (10 + len(d) + 1) % 64
    d += b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(d)) + d


def write_zip(path: Path, members: list[tuple[str, bytes, int, int, int]]) -> None:
    """A zip from raw members: (name, deflated data, crc, uncompressed size, method)."""
    out, central = bytearray(), bytearray()
    for name, data, crc, usize, method in members:
        n = name.encode()
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, method, 0, 33, crc, len(data), usize,
                               len(n), 0, 0, 0, 0, 0, len(out)) + n
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 33, crc, len(data), usize, len(n), 0)
        out += n + data
    eocd = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members), len(central), len(out), 0)
    path.write_bytes(bytes(out + central + eocd))


def zip_bomb(path: Path, shape, inflated: int) -> None:
    """`weights.npy` with header `shape` (int8) and `inflated` zero bytes behind it, deflated.

    Built without compressing a GiB: after a full flush the compressor restarts, so each
    1 MiB block of zeros deflates to the same bytes, which are repeated.
    """
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    hdr = npy_header(shape)
    chunk = bytes(2**20)
    head = c.compress(hdr) + c.flush(zlib.Z_FULL_FLUSH)
    piece = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    assert c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH) == piece
    n = inflated // len(chunk)
    crc = zlib.crc32(hdr)
    for _ in range(n):
        crc = zlib.crc32(chunk, crc)
    data = head + piece * n + c.flush(zlib.Z_FINISH)
    write_zip(path, [("weights.npy", data, crc, len(hdr) + n * len(chunk), 8)])


@pytest.fixture
def layer(tmp_path):
    """A valid layer file `in/layer.json` + `in/w.npz`; tests mutate them."""
    d = tmp_path / "in"
    d.mkdir()
    np.savez(d / "w.npz", weights=np.ones((3, 3, 4, 1), np.int8), bias=np.zeros(4, np.int32))
    p = d / "layer.json"
    p.write_text(json.dumps(BASE))
    return p


def _save(p: Path, doc: dict) -> Path:
    p.write_text(json.dumps(doc))
    return p


def _mutated(p: Path, *path_and_value) -> Path:
    doc = json.loads(json.dumps(BASE))
    *keys, value = path_and_value
    obj = doc
    for k in keys[:-1]:
        obj = obj[k]
    obj[keys[-1]] = value
    return _save(p, doc)


def _fails(capsys, argv: list[str], expected: str, out: Path | None) -> None:
    """`main(argv)` exits 2 with exactly `dwgen: error: <expected>` and writes nothing."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"dwgen: error: {expected}\n", err
    if out is not None:
        assert not out.exists()
        assert not list(out.parent.glob(f".{out.name}.dwgen-*"))


def _emit_fails(capsys, p: Path, message: str, *extra: str) -> None:
    out = p.parent.parent / "out"
    _fails(capsys, ["emit", str(p), "-o", str(out), *extra], f"{p}: {message}", out)


def test_the_base_layer_is_valid(layer, capsys):
    assert main(["emit", str(layer), "-o", str(layer.parent.parent / "out")]) == 0


# -- JSON types ------------------------------------------------------------------------------
@pytest.mark.parametrize("keys, value, message", [
    (["class_name"], ["DepthwiseConv2D"],
     "'class_name' is [\"DepthwiseConv2D\"]: it must be \"DepthwiseConv2D\" or \"DepthwiseConv1D\""),
    (["class_name"], {"a": 1}, "'class_name' is {\"a\": 1}: it must be \"DepthwiseConv2D\" or \"DepthwiseConv1D\""),
    (["config"], [3, 3], "'config' is [3, 3]: it must be an object (the Keras layer's get_config())"),
    (["input_shape"], [1, 8.0, 8, 4],
     "'input_shape' is [1, 8.0, 8, 4]: it must be a list of sizes (integers; the batch may be null)"),
    (["weights"], ["w.npz"], "'weights' is [\"w.npz\"]: it must be the path of an .npz file, relative to the layer file"),
    (["quantization"], [1], "'quantization' is [1]: it must be an object"),
    (["quantization", "input_scale"], "0.02", "'quantization.input_scale' is \"0.02\": it must be a positive number"),
    (["quantization", "output_scale"], True, "'quantization.output_scale' is true: it must be a positive number"),
    (["quantization", "input_zero_point"], -128.0,
     "'quantization.input_zero_point' is -128.0: it must be an integer in [-128, 127]"),
    (["quantization", "weight_scales"], [0.01, "0.02", 0.03, 0.04],
     "'quantization.weight_scales' is [0.01, \"0.02\", 0.03, 0.04]: it must be a positive number, or a list of "
     "them (one per output channel)"),
    (["quantization", "per_channel"], "yes", "'quantization.per_channel' is \"yes\": it must be true or false"),
    (["quantization", "rounding"], ["double"], "'quantization.rounding' is [\"double\"]: it must be \"double\" or \"single\""),
])
def test_wrong_json_types(layer, capsys, keys, value, message):
    _emit_fails(capsys, _mutated(layer, *keys, value), message)


@pytest.mark.parametrize("key, value", [
    ("multipliers", "1073741824"), ("multipliers", 1073741824), ("multipliers", [1.5, 2, 3, 4]),
    ("multipliers", [[1], [2], [3], [4]]), ("multipliers", []), ("multipliers", None),
    ("shifts", [True, 0, 0, 0]), ("shifts", [0.0, 0, 0, 0]), ("shifts", {"0": 1}),
])
def test_multipliers_and_shifts_must_be_lists_of_ints(layer, capsys, key, value):
    doc = json.loads(json.dumps(BASE))
    q = doc["quantization"]
    del q["weight_scales"]
    q.update(multipliers=[1 << 30] * 4, shifts=[-3] * 4)
    q[key] = value
    _emit_fails(capsys, _save(layer, doc),
                f"'quantization.{key}' is {json.dumps(value)}: it must be a list of integers, one per output channel")


@pytest.mark.parametrize("text, shown", [("1e999", "Infinity"), ('"-128"', '"-128"'), ("true", "true"),
                                         ("1.5", "1.5"), ("[0]", "[0]")])
def test_bad_act_min_and_act_max(layer, capsys, text, shown):
    doc = json.loads(json.dumps(BASE))
    q = doc["quantization"]
    del q["weight_scales"]
    q.update(multipliers=[1 << 30] * 4, shifts=[-3] * 4, act_min=-128, act_max=127)
    for key in ("act_min", "act_max"):
        raw = json.dumps(doc).replace(f'"{key}": {q[key]}', f'"{key}": {text}')
        layer.write_text(raw)
        _emit_fails(capsys, layer, f"'quantization.{key}' is {shown}: it must be an integer in [-128, 127]")


def test_nan_and_infinity_literals_are_not_json(layer, capsys):
    for lit in ("Infinity", "-Infinity", "NaN"):
        layer.write_text(json.dumps(BASE).replace('"input_zero_point": -128', f'"input_zero_point": {lit}'))
        _emit_fails(capsys, layer, f"not valid JSON for dwgen: {lit} is not a JSON number (JSON has no NaN or Infinity)")


def test_a_5000_digit_integer(layer, capsys):
    layer.write_text(json.dumps(BASE).replace('"input_zero_point": -128', '"input_zero_point": ' + "9" * 5000))
    _emit_fails(capsys, layer,
                "not valid JSON for dwgen: an integer has 5000 digits: integers in a layer file have at most 32 digits")


@pytest.mark.parametrize("depth", [33, 5000, 200000])
def test_deeply_nested_json(layer, capsys, depth):
    layer.write_text('{"class_name": "DepthwiseConv2D", "config": ' + "[" * depth + "]" * depth + "}")
    _emit_fails(capsys, layer, "nested too deeply: a layer file has at most 32 levels of objects and lists")


def test_not_utf8_and_too_large(layer, capsys):
    layer.write_bytes(b'{"class_name": "\xff"}')
    _emit_fails(capsys, layer, "not UTF-8 text: a layer file is JSON")
    with open(layer, "wb") as f:
        f.truncate(16 * 2**20 + 1)
    _emit_fails(capsys, layer, "the file is larger than 16 MiB: a layer file is a small JSON document "
                               "(weights go in its .npz)")


@pytest.mark.parametrize("dm, scales", [(10**30, 0.01), (2**40, 0.01), (2**40, [0.01])])
def test_huge_depth_multiplier(layer, capsys, dm, scales):
    doc = json.loads(json.dumps(BASE))
    doc["config"]["depth_multiplier"] = dm
    doc["quantization"]["weight_scales"] = scales  # per tensor: used to be replicated to dm * 4 channels
    _emit_fails(capsys, _save(layer, doc),
                "the layer on input_shape=(1, 8, 8, 4) is too large for the generated C's 32-bit index "
                "arithmetic: batch x channels x depth_multiplier x (height + vertical padding + stride + dilation) "
                "x (width + horizontal padding + stride + dilation) = "
                f"1 x 4 x {dm} x (8 + 2 + 1 + 1) x (8 + 2 + 1 + 1) = {4 * dm * 144}; dwgen accepts at most "
                "2^30 = 1073741824")


def test_huge_values_through_the_api_are_errors_too():
    from dwgen.layer import DepthwiseConv2D, from_keras_config
    from dwgen.quant import Quantization

    with pytest.raises(DwgenError, match=r"class_name=\['DepthwiseConv2D'\] is not allowed"):
        from_keras_config({"kernel_size": 3}, class_name=["DepthwiseConv2D"])
    with pytest.raises(DwgenError, match="num_channels=1099511627776 is not allowed: a layer has 1 to 67108864"):
        Quantization.from_scales(0.1, 0, 0.01, 0.1, 0, 2**40)
    with pytest.raises(DwgenError, match=r"multipliers\[0\]=1.5 is not allowed: multipliers are integers"):
        Quantization.from_multipliers([1.5], [0], 0, 0)
    with pytest.raises(DwgenError, match="act_max=inf is not allowed: it is an integer in"):
        Quantization.from_multipliers([1 << 30], [0], 0, 0, act_max=float("inf"))
    with pytest.raises(DwgenError, match="input_scale='0.1' is not allowed"):
        Quantization.from_scales("0.1", 0, 0.01, 0.1, 0, 1)
    with pytest.raises(DwgenError, match="kernel_size=<a int> is not allowed: it must be a positive integer"):
        DepthwiseConv2D(kernel_size=-(10**5000))


# -- paths -----------------------------------------------------------------------------------
def test_300_character_paths(layer, capsys, tmp_path):
    long = "x" * 300 + ".npz"
    _emit_fails(capsys, _mutated(layer, "weights", long), f"{long}: cannot open it (File name too long)")
    p = tmp_path / ("y" * 300 + ".json")
    _fails(capsys, ["emit", str(p), "-o", str(tmp_path / "out")], f"{p}: cannot open it (File name too long)",
           tmp_path / "out")


def test_layer_file_that_is_not_a_file(tmp_path, capsys):
    _fails(capsys, ["emit", str(tmp_path), "-o", str(tmp_path / "out")],
           f"{tmp_path}: it is a directory: give the path of a file", tmp_path / "out")
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)  # opening it for reading must not wait for a writer
    _fails(capsys, ["emit", str(fifo), "-o", str(tmp_path / "out")],
           f"{fifo}: it is not a regular file: give the path of a file", tmp_path / "out")


# -- the .npz --------------------------------------------------------------------------------
def test_npy_named_npz(layer, capsys):
    np.save(open(layer.parent / "w.npz", "wb"), np.ones((3, 3, 4, 1), np.int8))
    _emit_fails(capsys, layer, "w.npz: it is a single .npy array, not an .npz archive: save it with numpy.savez "
                               "(or give the arrays an .npz of their own)")


def test_npz_header_claiming_10_to_the_13_elements(layer, capsys):
    hdr = npy_header((10**13,))  # the archive holds only the header: the claim alone must be refused
    write_zip(layer.parent / "w.npz", [("weights.npy", hdr, zlib.crc32(hdr), len(hdr), 0)])
    _emit_fails(capsys, layer, "w.npz: array 'weights' has shape [10000000000000]: it must be [3, 3, 4, 1] or "
                               "[3, 3, 4] or [1, 3, 3, 4]")
    hdr_big = npy_header((1, 1, 9 * 2**20, 1), "<f8")  # the right shape, but 72 MiB as float64
    layer.write_text(json.dumps(BASE | {"config": {"kernel_size": 1}, "input_shape": [1, 1, 1, 9 * 2**20],
                                        "quantization": {"input_scale": 0.02, "input_zero_point": 0,
                                                         "output_scale": 0.05, "output_zero_point": 0}}))
    write_zip(layer.parent / "w.npz", [("weights.npy", hdr_big, zlib.crc32(hdr_big), len(hdr_big), 0)])
    _emit_fails(capsys, layer, "w.npz: array 'weights' holds 72 MiB (shape [1, 1, 9437184, 1], float64): "
                               "dwgen reads at most 64 MiB per array")


def test_zip_bomb_is_refused_before_it_is_inflated(layer, capsys):
    bomb = layer.parent / "w.npz"
    zip_bomb(bomb, (1024, 1024, 1024), 2**30)
    assert bomb.stat().st_size < 2 * 2**20  # ~1 MB on disk ...
    with zipfile.ZipFile(bomb) as z:  # ... a valid archive of 1 GiB
        assert z.getinfo("weights.npy").file_size > 2**30
        assert z.open("weights.npy").read(6) == b"\x93NUMPY"
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        _emit_fails(capsys, layer, "w.npz: array 'weights' has shape [1024, 1024, 1024]: it must be [3, 3, 4, 1] "
                                   "or [3, 3, 4] or [1, 3, 3, 4]")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - t0 < 5 and peak < 8 * 2**20, peak
    # A header that promises the right shape but a member that inflates far past it.
    zip_bomb(bomb, (3, 3, 4, 1), 2**26)
    _emit_fails(capsys, layer, f"w.npz: array 'weights' is {128 + 2**26} bytes in the archive but its header "
                               "describes 164: it is not an array numpy.savez wrote")


def test_npz_with_a_huge_directory(layer, capsys):
    with zipfile.ZipFile(layer.parent / "w.npz", "w") as z:
        for i in range(2000):
            z.writestr(f"a{i}.npy", b"")
    data = (layer.parent / "w.npz").read_bytes()
    cd_size = struct.unpack_from("<L", data, len(data) - 22 + 12)[0]  # from the end of directory record
    _emit_fails(capsys, layer, f"w.npz: the archive lists 2000 members in a {human_bytes(cd_size)} directory: an "
                               ".npz dwgen reads has at most 256 arrays (64 KiB of directory)")


def test_npz_arrays_that_are_not_numbers(layer, capsys):
    np.savez(layer.parent / "w.npz", weights=np.array([None] * 36, object).reshape(3, 3, 4, 1))
    _emit_fails(capsys, layer, "w.npz: array 'weights' has dtype object: dwgen reads bool, integer, float and "
                               "complex arrays")
    np.savez(layer.parent / "w.npz", weights=np.ones((3, 3, 4, 1), bool))
    _emit_fails(capsys, layer, "w.npz: array 'weights' has dtype bool: it must be int8, int16, int32, int64, uint8, "
                               "uint16, uint32, uint64, float16, float32, float64")
    good = layer.parent / "good.npz"
    np.savez(good, weights=np.ones((3, 3, 4, 1), np.int8))
    data = bytearray(good.read_bytes())
    data[data.index(b"\x01\x01\x01\x01")] = 0x7F  # corrupt one weight byte: the CRC catches it
    (layer.parent / "w.npz").write_bytes(bytes(data))
    _emit_fails(capsys, layer, "w.npz: array 'weights' cannot be read from the archive (BadZipFile: Bad CRC-32 "
                               "for file 'weights.npy')")


def test_npyfile_api(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(6, dtype=">i2").reshape(2, 3))
    a = load_npy_checked(tmp_path / "a.npy", [(3, 2), (2, 3)], np.int16)
    assert a.dtype == np.int16 and a.dtype.isnative and a.tolist() == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(DwgenError, match=r"a.npy: the array has shape \[2, 3\]: it must be \[6\]$"):
        load_npy_checked(tmp_path / "a.npy", (6,))
    np.savez(tmp_path / "z.npz", x=np.zeros(3, np.float32), y=np.ones((2, 2), np.uint8, order="F"))
    with NpzArchive(tmp_path / "z.npz") as z:
        assert z.names == ("x", "y") and z.header("x").shape == (3,)
        assert z.load("y", (2, 2), np.uint8).tolist() == [[1, 1], [1, 1]]
        with pytest.raises(DwgenError, match="it has no array 'w'"):
            z.load("w")


# -- item 8: where the weights may be --------------------------------------------------------
def test_weights_stay_in_the_layer_files_directory(layer, capsys, tmp_path):
    how = "pass --allow-outside-weights to read weights from elsewhere"
    (tmp_path / "elsewhere").mkdir()
    np.savez(tmp_path / "elsewhere" / "secret.npz", weights=np.ones((3, 3, 4, 1), np.int8))
    outside = {
        "../elsewhere/secret.npz": "leads outside the layer file's directory",
        "sub/../../elsewhere/secret.npz": "leads outside the layer file's directory",
        "link.npz": "leads outside the layer file's directory through a symbolic link",
        "linkdir/secret.npz": "leads outside the layer file's directory through a symbolic link",
    }
    (layer.parent / "sub").mkdir()
    (layer.parent / "link.npz").symlink_to(tmp_path / "elsewhere" / "secret.npz")
    (layer.parent / "linkdir").symlink_to(tmp_path / "elsewhere")
    for given, why in outside.items():
        _emit_fails(capsys, _mutated(layer, "weights", given),
                    f"'weights' \"{given}\" {why}: weights must be in the layer file's directory or below it ({how})")
    for given in (str(tmp_path / "elsewhere" / "secret.npz"), "/etc/passwd"):
        _emit_fails(capsys, _mutated(layer, "weights", given),
                    f"'weights' is the absolute path \"{given}\": weights are read relative to the layer file and "
                    f"must be in its directory or below it ({how})")
    # Allowed: every spelling above with the flag; /etc/passwd is then read, and is no .npz.
    for given in [*outside, str(tmp_path / "elsewhere" / "secret.npz")]:
        out = tmp_path / "allowed"
        assert main(["emit", str(_mutated(layer, "weights", given)), "-o", str(out), "--allow-outside-weights",
                     "--force"]) == 0, capsys.readouterr().err
    _emit_fails(capsys, _mutated(layer, "weights", "/etc/passwd"),
                "/etc/passwd: it is not an .npz archive (the zip file numpy.savez writes)", "--allow-outside-weights")
    # Inside: a subdirectory, a '..' that comes back, a symbolic link that stays inside.
    np.savez(layer.parent / "sub" / "w.npz", weights=np.ones((3, 3, 4, 1), np.int8))
    (layer.parent / "inlink.npz").symlink_to(layer.parent / "sub" / "w.npz")
    for given in ("sub/w.npz", "sub/../w.npz", "./w.npz", "inlink.npz"):
        assert layerfile.load(_mutated(layer, "weights", given)).geometry.out_c == 4


def test_weights_symlink_loop_and_fifo(layer, capsys):
    (layer.parent / "loop.npz").symlink_to(layer.parent / "loop.npz")
    with pytest.raises(DwgenError, match="loop.npz"):
        layerfile.load(_mutated(layer, "weights", "loop.npz"))
    os.mkfifo(layer.parent / "fifo.npz")
    _emit_fails(capsys, _mutated(layer, "weights", "fifo.npz"), "fifo.npz: it is not a regular file: give the path "
                                                                "of a file")


def test_bench_reads_layer_files_by_the_same_rule(layer, capsys):
    _fails(capsys, ["bench", str(_mutated(layer, "weights", "/etc/passwd"))],
           f"{layer}: 'weights' is the absolute path \"/etc/passwd\": weights are read relative to the layer file "
           "and must be in its directory or below it (pass --allow-outside-weights to read weights from elsewhere)",
           None)


# -- CLI arguments ---------------------------------------------------------------------------
def test_test_vectors_on_a_huge_layer(layer, capsys):
    # Within the index-space limit (2^30), far beyond the vectors' 16 MiB.
    _mutated(layer, "input_shape", [1, 2048, 2048, 64])
    doc = json.loads(layer.read_text())
    doc["quantization"]["weight_scales"] = 0.01
    _save(layer, doc)
    np.savez(layer.parent / "w.npz", weights=np.ones((3, 3, 64, 1), np.int8))
    t0 = time.perf_counter()
    _emit_fails(capsys, layer, "--test-vectors for 'dw': the vectors would hold 512 MiB (input 1x2048x2048x64 + "
                               "output 1x2048x2048x64); at most 16 MiB per kernel are written: emit this layer "
                               "without --test-vectors", "--test-vectors")
    assert time.perf_counter() - t0 < 10  # refused before planning or allocating anything


def test_only_and_seed_take_ascii_digits(tmp_path, capsys):
    out = tmp_path / "out"
    for only in ("\u00b2", "\u0663", "9" * 5000):
        shown = only if len(only) <= 40 else only[:37] + "..."
        _fails(capsys, ["emit", str(KWS_MODEL), "-o", str(out), "--only", only],
               f"--only {shown!r}: give op indices separated by commas, e.g. --only 3,7 (ASCII digits only)", out)
    for seed in ("-1", "\u00b2"):
        with pytest.raises(SystemExit) as exc:
            main(["check", str(KWS_MODEL), "--seed", seed])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert f"argument --seed: {seed!r}: give a non-negative integer (ASCII digits)" in err, err


def test_help_states_the_limits(capsys):
    with pytest.raises(SystemExit):
        main(["emit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "At most 16 MiB of vectors (input + output, + weights with --weights extern) per kernel" in text
    assert "--allow-outside-weights LAYER.json: let its 'weights' path leave the layer file's directory" in text
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    assert "--allow-outside-weights" in capsys.readouterr().out


def test_a_real_process_exits_2_without_traceback(layer, tmp_path):
    """The same through a subprocess: what a shell sees, for the inputs that used to raise."""
    layer.write_text('{"class_name": "DepthwiseConv2D", "config": ' + "[" * 100000 + "]" * 100000 + "}")
    deep = layer
    long_path = tmp_path / ("z" * 300 + ".json")
    for argv in (["emit", str(deep), "-o", str(tmp_path / "out")],
                 ["emit", str(long_path), "-o", str(tmp_path / "out")],
                 ["emit", str(KWS_MODEL), "-o", str(tmp_path / "out"), "--only", "\u00b2"]):
        r = subprocess.run([sys.executable, "-c", "import sys; from dwgen.cli import main; sys.exit(main())", *argv],
                           capture_output=True, text=True, timeout=120, env=os.environ | {"PYTHONPATH": str(ROOT)})
        assert r.returncode == 2 and r.stderr.startswith("dwgen: error: ") and r.stderr.count("\n") == 1, r.stderr
        assert "Traceback" not in r.stderr and not (tmp_path / "out").exists()
