"""Kernel names of model layers (issue 11 item 3): the Keras layer of each DEPTHWISE_CONV_2D,
told apart by op index when layers share a name, `dw_op<N>` when the tensors name none,
never a usual firmware global, and `--prefix` in front of every symbol and file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dwgen.cli import main
from dwgen.errors import DwgenError
from dwgen.names import check_c_name, name_problem
from dwgen.tflite_model import assign_c_names, check_prefix, layer_name, read_model
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
