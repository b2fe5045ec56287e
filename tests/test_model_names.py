"""Kernel names of model layers (issue 11 item 3): the Keras layer of each DEPTHWISE_CONV_2D,
told apart by op index when layers share a name, `dw_op<N>` when the tensors name none,
never a usual firmware global, and `--prefix` in front of every symbol and file."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from dwgen.cli import main
from dwgen.errors import DwgenError
from dwgen.names import check_c_name, name_problem
from dwgen.names import check_prefix
from dwgen.tflite_model import assign_c_names, layer_name, read_model
from helpers import tflite_writer

W = tflite_writer()


def chain(names, c=4, h=6, w=6):
    """A model of len(names) 3x3 SAME depthwise ops in a row; names[i] = (output, filter)
    tensor names of op i, or one name for both."""
    rng = np.random.default_rng(1)
    tensors = [W._tensor("serving_default_input_1:0", [1, h, w, c], "int8", scale=[0.05], zero_point=[-3])]
    ops = []
    prev = 0
    for pair in names:
        out_name, filter_name = (pair, pair) if isinstance(pair, str) else pair
        tensors.append(W._tensor(filter_name, [1, 3, 3, c], "int8", data=rng.integers(-127, 128, size=(1, 3, 3, c)),
                                 scale=[0.01] * c, zero_point=[0] * c, qdim=3))
        tensors.append(W._tensor(filter_name + "_bias", [c], "int32", data=rng.integers(-900, 900, size=c),
                                 scale=[5e-4] * c, zero_point=[0] * c))
        tensors.append(W._tensor(out_name, [1, h, w, c], "int8", scale=[0.05], zero_point=[-3]))
        n = len(tensors)
        ops.append({"code": W.DW, "version": 3, "inputs": [prev, n - 3, n - 2], "outputs": [n - 1],
                    "options": {"padding": 0, "stride_w": 1, "stride_h": 1, "depth_multiplier": 1,
                                "activation": 3}})
        prev = n - 1
    return W.write_tflite(tensors, ops, [0], [prev])


def fused(scope, layer, n, extra=""):
    """A fused output name as TF 2.x writes it for Conv-BN-ReLU blocks (MLPerf Tiny VWW)."""
    return (f"{scope}/activation_{n}/Relu;{scope}/batch_normalization_{n}/FusedBatchNormV3;"
            f"{scope}/{layer}/depthwise;{scope}/{layer}/BiasAdd;{extra}"
            f"{scope}/{layer}/BiasAdd/ReadVariableOp/resource1")


def names_of(data, prefix=""):
    return [op.c_name for op in assign_c_names(read_model(data).depthwise, prefix)]


def test_keras_layer_names():
    data = chain([
        (fused("model", "depthwise_conv2d", 1), "model/depthwise_conv2d/depthwise"),
        # a constant shared with another layer: its name appears once, the op's own three times
        (fused("model", "depthwise_conv2d_2", 5, "model/depthwise_conv2d_3/depthwise;"),
         "model/batch_normalization_5/FusedBatchNormV3;model/depthwise_conv2d_2/depthwise;"
         "model/depthwise_conv2d_3/depthwise"),
        # MLPerf Tiny KWS: functional_1 scope and a shared Conv2D
        (fused("functional_1", "depthwise_conv2d_1", 3, "functional_1/conv2d_4/Conv2D;"), "functional_1/x"),
        # str_ww: numbered op names ("depthwise21")
        ("model/depthwise_conv2d_3/depthwise21", "model/depthwise_conv2d_3/depthwise1"),
        # a model output: the serving signature names it, the filter names the layer
        ("StatefulPartitionedCall_1:0", "my_model_1/block_7_dw/depthwise"),
        # no depthwise op in the names: the first part that is no op, scope or fused layer
        ("model/activation_9/Relu;model/sep_conv/BiasAdd", "model/sep_conv/filter"),
        # nothing meaningful at all: dw_op<N>
        ("StatefulPartitionedCall:0", "model/activation_3/Relu;Identity"),
    ])
    assert names_of(data) == ["depthwise_conv2d", "depthwise_conv2d_2", "depthwise_conv2d_1",
                              "depthwise_conv2d_3", "block_7_dw", "sep_conv", "dw_op6"]
    assert names_of(data) == names_of(data)  # stable


def test_real_model_style_names_never_model():
    # What the MLPerf Tiny models' kernels were called before: model, model_2, ... (VWW)
    vww = chain([(fused("model", f"depthwise_conv2d{'' if i == 0 else f'_{i}'}", 2 * i + 1),
                  "model/batch_normalization_1/FusedBatchNormV3") for i in range(3)])
    assert names_of(vww) == ["depthwise_conv2d", "depthwise_conv2d_1", "depthwise_conv2d_2"]


def test_shared_layer_names_get_op_indices():
    data = chain([
        ("model/dw/depthwise", "f0"),
        ("model/dw/depthwise", "f1"),
        ("model/dw_op1/depthwise", "f2"),  # a layer really named like a disambiguated one
        ("model/dw/depthwise", "f3"),
        ("model/conv/depthwise", "f4"),
        ("model/conv_input/depthwise", "f5"),  # CONV_INPUT_H is conv's input-height macro
    ])
    assert names_of(data) == ["dw_op0", "dw_op1_2", "dw_op1", "dw_op3", "conv", "conv_input_2"]


@pytest.mark.parametrize("raw, expected", [
    ("model/model/depthwise", "dw_op0"),  # a scope, not a layer
    ("model/main/depthwise", "main_dw"),
    ("model/input/depthwise", "dw_op0"),  # a serving name
    ("model/g_model/depthwise", "g_model_dw"),
    ("model/tensor_arena/depthwise", "tensor_arena_dw"),
    ("model/printf/depthwise", "printf_dw"),
    ("model/while/depthwise", "while_dw"),
    ("model/arm_dw/depthwise", "dw_arm_dw"),
    ("model/dwgen_kernels/depthwise", "dw_dwgen_kernels"),
    ("model/3x3/depthwise", "t_3x3"),
    ("model/Ünïcödé Läyer!/depthwise", "unicode_layer"),
    ("model/*/ x;y/depthwise", "dw_op0"),  # 'x' and 'y' are serving names
    ("model/卷积/depthwise", "dw_op0"),
    ("a/" + "x" * 300 + "/depthwise", "x" * 48),
])
def test_hostile_layer_names(raw, expected):
    (name,) = names_of(chain([raw]))
    assert name == expected and check_c_name(name) == name


def test_names_are_read_in_linear_time():
    import time

    start = time.monotonic()
    raw = ";".join(["model/" + "1" * 20000 + "a_" + "2" * 20000 + "/depthwise"] * 4)
    (name,) = names_of(chain([raw]))
    assert name == "t_" + "1" * 46 and time.monotonic() - start < 5


def test_usual_firmware_globals_are_refused():
    for word in ("model", "g_model", "input", "output", "main", "model_tflite", "tensor_arena"):
        assert name_problem(word) is not None, word
    with pytest.raises(DwgenError) as e:
        check_c_name("model")
    assert str(e.value) == ("name 'model' is a usual global of firmware: model is the model array of "
                            "TensorFlow Lite Micro's examples and of `xxd -i model.tflite`; choose another "
                            "kernel name, e.g. model_dw")


def test_layer_name_rule():
    assert layer_name(["model/block_1/dw/depthwise;model/block_1/dw/BiasAdd"]) == "dw"
    assert layer_name(["StatefulPartitionedCall_1:0"], "dw_op3") == "dw_op3"
    assert layer_name(["serving_default_x:0", "model/activation/Relu"]) == ""


def test_prefix():
    data = chain(["model/depthwise_conv2d/depthwise", "model/a/depthwise", "StatefulPartitionedCall:0",
                  "model/strlen/depthwise"])
    assert names_of(data, "kws_") == ["kws_depthwise_conv2d", "kws_a", "kws_dw_op2", "kws_strlen"]
    # the prefix makes a C library name: renamed as any other
    assert names_of(data, "str") == ["strdepthwise_conv2d", "stra", "strdw_op2", "strstrlen"]
    assert names_of(chain(["model/len/depthwise"]), "str") == ["strlen_dw"]
    # a layer named dwgen_*: dw_ in front, as without a prefix (p_dwgen_kernels.h is the prefix's header)
    assert names_of(chain(["model/dwgen_kernels/depthwise"]), "p_") == ["p_dw_dwgen_kernels"]
    long = names_of(chain(["model/" + "y" * 60 + "/depthwise"]), "p" * 24)
    assert long == ["p" * 24 + "y" * 24]


@pytest.mark.parametrize("prefix, message", [
    ("", "--prefix '': give the start of a C identifier: a letter, then letters, digits and '_' (e.g. --prefix kws_)"),
    ("1x", "--prefix '1x': give the start of a C identifier: a letter, then letters, digits and '_' (e.g. --prefix kws_)"),
    ("_x", "--prefix '_x': give the start of a C identifier: a letter, then letters, digits and '_' (e.g. --prefix kws_)"),
    ("a-b", "--prefix 'a-b': give the start of a C identifier: a letter, then letters, digits and '_' (e.g. --prefix kws_)"),
    ("p" * 25, f"--prefix '{'p' * 25}' is too long: at most 24 characters"),
    ("a__", "--prefix 'a__': names containing '__' are reserved in C++; use single underscores"),
    ("arm_", "--prefix 'arm_' starts with 'arm_': that prefix belongs to CMSIS (arm_*, cmsis_*), which dwgen's "
             "kernels are built with"),
    ("Dwgen_x", "--prefix 'Dwgen_x' starts with 'dwgen_': dwgen's own files and symbols use that prefix "
                "(dwgen_kernels.h, dwgen_test_main.c, DWGEN_*)"),
])
def test_bad_prefixes(prefix, message):
    with pytest.raises(DwgenError) as e:
        check_prefix(prefix)
    assert str(e.value) == message


def test_prefix_making_a_reserved_prefix():
    with pytest.raises(DwgenError) as e:
        names_of(chain(["model/m_x/depthwise"]), "ar")
    assert str(e.value) == ("--prefix 'ar' makes op 0's kernel name 'arm_x', which starts with 'arm_': that "
                            "prefix belongs to CMSIS (arm_*, cmsis_*), which dwgen's kernels are built with; "
                            "choose another prefix")


# -- the command line ---------------------------------------------------------------------------
KERAS = [fused("model", "depthwise_conv2d", 1), fused("model", "depthwise_conv2d_1", 3),
         ("StatefulPartitionedCall:0", "model/activation_3/Relu")]


@pytest.fixture
def keras_model(tmp_path):
    p = tmp_path / "net.tflite"
    p.write_bytes(chain(KERAS))
    return p


def run(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_inspect_shows_kernel_names(capsys, keras_model):
    code, out, err = run(capsys, ["inspect", str(keras_model), "--prefix", "net_"])
    assert (code, err) == (0, "")
    assert out == """\
net.tflite: 3 depthwise layer(s) dwgen can generate
op  kernel                  input -> output (NHWC)  ksize  stride  dilation  padding t,l,b,r  M  activation  quantization in/out   MACs  weight B  as written
--  ----------------------  ----------------------  -----  ------  --------  ---------------  -  ----------  -------------------  -----  --------  ---------------
 0  net_depthwise_conv2d    1x6x6x4 -> 1x6x6x4      3x3    1x1     1x1       same 1,1,1,1     1  relu6       per-ch zp -3/-3      1,296        52  DepthwiseConv2D
 1  net_depthwise_conv2d_1  1x6x6x4 -> 1x6x6x4      3x3    1x1     1x1       same 1,1,1,1     1  relu6       per-ch zp -3/-3      1,296        52  DepthwiseConv2D
 2  net_dw_op2              1x6x6x4 -> 1x6x6x4      3x3    1x1     1x1       same 1,1,1,1     1  relu6       per-ch zp -3/-3      1,296        52  DepthwiseConv2D
total: 3 layer(s), 3,888 MACs, 156 B of weights and bias (int8, int32); cycles, milliseconds, flash and stack per kernel: dwgen bench MODEL
"""
    code, out, _ = run(capsys, ["inspect", str(keras_model), "--json"])
    doc = json.loads(out)
    assert [(d["op"], d["kernel"], d["c_name"]) for d in doc["depthwise"]] == [
        (0, "depthwise_conv2d", "depthwise_conv2d"), (1, "depthwise_conv2d_1", "depthwise_conv2d_1"),
        (2, "dw_op2", "dw_op2")]


def test_emit_prefix_on_every_symbol_and_file(capsys, keras_model, tmp_path):
    out = tmp_path / "out"
    code, stdout, err = run(capsys, ["emit", str(keras_model), "-o", str(out), "--prefix", "net_",
                                     "--cmsis-nn-api", "--test-vectors"])
    assert (code, err) == (0, "")
    kernels = ["net_depthwise_conv2d", "net_depthwise_conv2d_1", "net_dw_op2"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{k}{ext}" for k in kernels for ext in (".c", ".h", "_vectors.h")]
        + ["dwgen_kernels.h", "dwgen_test_main.c", "manifest.json", "net_dwgen_kernels.h"])
    assert stdout.splitlines()[:3] == [
        "op   0  net_depthwise_conv2d: [1, 6, 6, 4] -> [1, 6, 6, 4], 1296 MACs",
        "op   1  net_depthwise_conv2d_1: [1, 6, 6, 4] -> [1, 6, 6, 4], 1296 MACs",
        "op   2  net_dw_op2: [1, 6, 6, 4] -> [1, 6, 6, 4], 1296 MACs",
    ]
    manifest = json.loads((out / "manifest.json").read_text())
    assert [(e["name"], e["files"], e["entry_point"]) for e in manifest["kernels"]] == [
        (k, [f"{k}.c", f"{k}.h"], f"void {k}(const int8_t *input, int8_t *output)")
        for k in kernels]
    umbrella = (out / "dwgen_kernels.h").read_text()
    assert [line for line in umbrella.splitlines() if line.startswith("#include")] == [
        '#include "net_depthwise_conv2d.h" /* op 0 */', '#include "net_depthwise_conv2d_1.h" /* op 1 */',
        '#include "net_dw_op2.h" /* op 2 */']
    # the header of the prefix's kernels
    header = (out / "net_dwgen_kernels.h").read_text()
    assert [line for line in header.splitlines() if line.startswith("#")] == [
        "#ifndef NET_DWGEN_KERNELS_H", "#define NET_DWGEN_KERNELS_H",
        '#include "net_depthwise_conv2d.h" /* op 0 */', '#include "net_depthwise_conv2d_1.h" /* op 1 */',
        '#include "net_dw_op2.h" /* op 2 */', "#define NET_DWGEN_KERNEL_COUNT 3", "#endif /* NET_DWGEN_KERNELS_H */"]
    assert manifest["models"] == [{"model": "net.tflite", "prefix": "net_", "header": "net_dwgen_kernels.h",
                                   "kernels": kernels}]
    assert stdout.splitlines()[-1] == (f"wrote 13 files to {out} (dwgen_kernels.h, manifest.json, "
                                       "net_dwgen_kernels.h)")
    # Every identifier a kernel defines starts with the prefix (DWGEN_* are dwgen's shared macros).
    for k in kernels:
        for f in (f"{k}.c", f"{k}.h", f"{k}_vectors.h"):
            text = (out / f).read_text()
            defined = set(re.findall(r"#\s*define\s+(\w+)", text))
            defined |= set(re.findall(r"^(?:static\s+)?(?:const\s+)?\w+\s+\**(\w+)\s*[\[(=]", text, re.M))
            bad = {d for d in defined if not d.lower().startswith("net_") and not d.startswith("DWGEN_")}
            assert not bad, (f, sorted(bad))


def test_emit_model_refuses_name(capsys, keras_model, tmp_path):
    code, out, err = run(capsys, ["emit", str(keras_model), "-o", str(tmp_path / "o"), "--name", "x"])
    assert (code, out) == (2, "")
    assert err == ("dwgen: error: --name applies to LAYER.json: the kernels of a model are named after their "
                   "layers (`dwgen inspect` shows the names); use --prefix P to put P in front of every one\n")
    code, out, err = run(capsys, ["check", str(keras_model), "--prefix", "a b"])
    assert (code, out) == (2, "")
    assert err == ("dwgen: error: --prefix 'a b': give the start of a C identifier: a letter, then letters, "
                   "digits and '_' (e.g. --prefix kws_)\n")
    assert not (tmp_path / "o2").exists()


def test_check_uses_the_prefixed_names(capsys, keras_model):
    pytest.importorskip("ai_edge_litert")
    code, out, err = run(capsys, ["check", str(keras_model), "--prefix", "net_", "--json"])
    assert code == 0
    assert [layer["name"] for layer in json.loads(out)["layers"]] == [
        "net_depthwise_conv2d", "net_depthwise_conv2d_1", "net_dw_op2"]


def test_layer_file_prefix(capsys, tmp_path):
    from pathlib import Path

    example = Path(__file__).resolve().parent.parent / "examples" / "kws_dw.json"
    code, out, err = run(capsys, ["emit", str(example), "-o", str(tmp_path / "o"), "--prefix", "p_"])
    assert (code, err) == (0, "")
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["p_kws_dw1.c", "p_kws_dw1.h"]
    code, out, err = run(capsys, ["emit", str(example), "-o", str(tmp_path / "o2"), "--prefix", "str",
                                  "--name", "len"])
    assert (code, out) == (2, "")
    assert err == ("dwgen: error: name 'strlen' is taken by the C library: strlen is declared by <string.h>; "
                   "choose another kernel name, e.g. strlen_dw\n")
