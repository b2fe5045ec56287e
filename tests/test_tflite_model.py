"""The .tflite reader: the committed fixtures, the converter patterns, and bad input.

Fixtures come from examples/make_models.py (TensorFlow converter). Bad files are built
here with a small flatbuffers writer (`write_tflite`) so every message is exact.
"""

from __future__ import annotations

import copy
import struct
from pathlib import Path

import flatbuffers
import numpy as np
import pytest

from dwgen.errors import ModelError
from dwgen.layer import DepthwiseLayer
from dwgen.reference import depthwise_conv
from dwgen.tflite_model import (
    C_NAME_MAX, MAX_TENSOR_ELEMENTS, c_comment_text, c_identifier, is_c_identifier, read_model,
    tensor_data,
)

FIXTURES = Path(__file__).parent / "fixtures"
ALL_FIXTURES = sorted(FIXTURES.glob("*.tflite"))


# -- a minimal TFLite writer for hand-built models ---------------------------------------------
_TYPES = {
    "float32": 0, "int32": 2, "uint8": 3, "int64": 4, "int16": 7, "int8": 9, "int4": 17,
}
_NP = {"float32": "<f4", "int32": "<i4", "uint8": "u1", "int64": "<i8", "int16": "<i2", "int8": "i1"}


def _tensor(name, shape, dtype, data=None, scale=None, zero_point=None, qdim=0, quant=True):
    return {
        "name": name, "shape": list(shape), "type": dtype, "data": data, "scale": scale,
        "zero_point": zero_point, "qdim": qdim, "quant": quant,
    }


def write_tflite(tensors, ops, inputs, outputs, *, version=3, external=False, description="dwgen test",
                 tensor_refs=None, op_refs=None, subgraph_refs=1):
    """Serialize a one-subgraph model. ops: dicts with code, version, inputs, outputs and
    `options` (a dict of DepthwiseConv2DOptions fields, or None). With `external`, buffer
    data goes after the flatbuffer (Buffer.offset/size), as for models over 2 GB.

    Hostile sharing, for the amplification tests: `tensor_refs` / `op_refs` list, for each
    entry of the subgraph's tensors / operators vector, which serialized table it points at
    (e.g. [0] * 1000: a thousand tensors that are all one table); `subgraph_refs` makes the
    model's subgraphs vector list the one subgraph table that many times."""
    import importlib

    # (the tflite package's __init__ shadows its modules with the classes of the same name)
    FB, FD, FM, FO, FC, FQ, FS, FT = (
        importlib.import_module(f"tflite.{m}") for m in (
            "Buffer", "DepthwiseConv2DOptions", "Model", "Operator", "OperatorCode",
            "QuantizationParameters", "SubGraph", "Tensor",
        )
    )

    blobs = [None]
    buf_index = []
    for t in tensors:
        d = t["data"]
        if d is None:
            buf_index.append(0)
            continue
        if isinstance(d, np.ndarray):
            d = d.astype(_NP[t["type"]]).tobytes() if t["type"] in _NP else d.tobytes()
        buf_index.append(len(blobs))
        blobs.append(bytes(d))
    codes = []
    for op in ops:
        key = (op["code"], op.get("version", 1))
        if key not in codes:
            codes.append(key)

    def build(offsets):
        b = flatbuffers.Builder(4096)
        b.ForceDefaults(True)

        def ivec(values, dtype="<i4"):
            return b.CreateNumpyVector(np.asarray(values, dtype=dtype))

        bufs = []
        for i, d in enumerate(blobs):
            vec = None
            if d is not None and not external:
                b.StartVector(1, len(d), 16)
                b.head = b.head - len(d)
                b.Bytes[b.head:b.head + len(d)] = d
                vec = b.EndVector()
            FB.BufferStart(b)
            if vec is not None:
                FB.BufferAddData(b, vec)
            if d is not None and external:
                FB.BufferAddOffset(b, offsets[i])
                FB.BufferAddSize(b, len(d))
            bufs.append(FB.BufferEnd(b))
        tens = []
        for t, bi in zip(tensors, buf_index):
            name = b.CreateString(t["name"].encode("utf-8") if isinstance(t["name"], str) else t["name"])
            shape = ivec(t["shape"])
            q = None
            if t["quant"]:
                sc = ivec(t["scale"] if t["scale"] is not None else [], "<f4") if t["scale"] is not None else None
                zp = ivec(t["zero_point"], "<i8") if t["zero_point"] is not None else None
                FQ.QuantizationParametersStart(b)
                if sc is not None:
                    FQ.QuantizationParametersAddScale(b, sc)
                if zp is not None:
                    FQ.QuantizationParametersAddZeroPoint(b, zp)
                FQ.QuantizationParametersAddQuantizedDimension(b, t["qdim"])
                q = FQ.QuantizationParametersEnd(b)
            FT.TensorStart(b)
            FT.TensorAddShape(b, shape)
            FT.TensorAddType(b, _TYPES[t["type"]] if isinstance(t["type"], str) else t["type"])
            FT.TensorAddBuffer(b, bi)
            FT.TensorAddName(b, name)
            if q is not None:
                FT.TensorAddQuantization(b, q)
            tens.append(FT.TensorEnd(b))
        operators = []
        for op in ops:
            o = op.get("options")
            opt = None
            if o is not None:
                FD.DepthwiseConv2DOptionsStart(b)
                FD.DepthwiseConv2DOptionsAddPadding(b, o.get("padding", 0))
                FD.DepthwiseConv2DOptionsAddStrideW(b, o.get("stride_w", 1))
                FD.DepthwiseConv2DOptionsAddStrideH(b, o.get("stride_h", 1))
                FD.DepthwiseConv2DOptionsAddDepthMultiplier(b, o.get("depth_multiplier", 1))
                FD.DepthwiseConv2DOptionsAddFusedActivationFunction(b, o.get("activation", 0))
                FD.DepthwiseConv2DOptionsAddDilationWFactor(b, o.get("dilation_w", 1))
                FD.DepthwiseConv2DOptionsAddDilationHFactor(b, o.get("dilation_h", 1))
                opt = FD.DepthwiseConv2DOptionsEnd(b)
            ins, outs = ivec(op["inputs"]), ivec(op["outputs"])
            FO.OperatorStart(b)
            FO.OperatorAddOpcodeIndex(b, codes.index((op["code"], op.get("version", 1))))
            FO.OperatorAddInputs(b, ins)
            FO.OperatorAddOutputs(b, outs)
            if opt is not None:
                FO.OperatorAddBuiltinOptionsType(b, op.get("options_type", 2))
                FO.OperatorAddBuiltinOptions(b, opt)
            operators.append(FO.OperatorEnd(b))

        def table_vector(items):
            b.StartVector(4, len(items), 4)
            for it in reversed(items):
                b.PrependUOffsetTRelative(it)
            return b.EndVector()

        tv = table_vector(tens if tensor_refs is None else [tens[i] for i in tensor_refs])
        ov = table_vector(operators if op_refs is None else [operators[i] for i in op_refs])
        sin, sout = ivec(inputs), ivec(outputs)
        FS.SubGraphStart(b)
        FS.SubGraphAddTensors(b, tv)
        FS.SubGraphAddInputs(b, sin)
        FS.SubGraphAddOutputs(b, sout)
        FS.SubGraphAddOperators(b, ov)
        sg = FS.SubGraphEnd(b)
        ocs = []
        for code, ver in codes:
            FC.OperatorCodeStart(b)
            FC.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
            FC.OperatorCodeAddVersion(b, ver)
            FC.OperatorCodeAddBuiltinCode(b, code)
            ocs.append(FC.OperatorCodeEnd(b))
        ocv, sgv, bv = table_vector(ocs), table_vector([sg] * subgraph_refs), table_vector(bufs)
        desc = b.CreateString(description)
        FM.ModelStart(b)
        FM.ModelAddVersion(b, version)
        FM.ModelAddOperatorCodes(b, ocv)
        FM.ModelAddSubgraphs(b, sgv)
        FM.ModelAddDescription(b, desc)
        FM.ModelAddBuffers(b, bv)
        b.Finish(FM.ModelEnd(b), file_identifier=b"TFL3")
        return bytes(b.Output())

    if not external:
        return build(None)
    size = len(build([1 << 40] * len(blobs)))
    offsets, pos = [0] * len(blobs), (size + 15) // 16 * 16
    for i, d in enumerate(blobs):
        if d is not None:
            offsets[i] = pos
            pos = (pos + len(d) + 15) // 16 * 16
    out = bytearray(build(offsets))
    assert len(out) == size
    for i, d in enumerate(blobs):
        if d is not None:
            out.extend(b"\0" * (offsets[i] - len(out)))
            out.extend(d)
    return bytes(out)


DW = 4


def dw_spec(c=4, m=2, h=6, w=6, k=(3, 3), seed=0):
    """A valid one-op int8 model: [1,h,w,c] -> 3x3 SAME relu6, M=2."""
    rng = np.random.default_rng(seed)
    oc = c * m
    tensors = [
        _tensor("input", [1, h, w, c], "int8", scale=[0.05], zero_point=[-3]),
        _tensor("dw/filter", [1, k[0], k[1], oc], "int8",
                data=rng.integers(-127, 128, size=(1, k[0], k[1], oc)),
                scale=list(rng.uniform(0.001, 0.02, oc)), zero_point=[0] * oc, qdim=3),
        _tensor("dw/bias", [oc], "int32", data=rng.integers(-2000, 2000, size=oc), scale=[1e-4] * oc,
                zero_point=[0] * oc),
        _tensor("model/dw_layer/Relu6;model/dw_layer/BiasAdd", [1, h, w, oc], "int8", scale=[0.04],
                zero_point=[-128]),
    ]
    ops = [{
        "code": DW, "version": 3, "inputs": [0, 1, 2], "outputs": [3],
        "options": {"padding": 0, "stride_w": 1, "stride_h": 1, "depth_multiplier": m, "activation": 3},
    }]
    return {"tensors": tensors, "ops": ops, "inputs": [0], "outputs": [3]}


def build(spec, **kw) -> bytes:
    return write_tflite(spec["tensors"], spec["ops"], spec["inputs"], spec["outputs"], **kw)


def error_of(data) -> str:
    with pytest.raises(ModelError) as e:
        read_model(data)
    msg = str(e.value)
    assert "\n" not in msg and "\r" not in msg
    return msg


# -- the fixtures ---------------------------------------------------------------------------
def by_name(model):
    return {op.c_name: op for op in model.depthwise}


def test_fixtures_are_present_and_small():
    names = {p.name for p in ALL_FIXTURES}
    assert {
        "dw_configs.tflite", "dw1d.tflite", "dw_channels_first.tflite", "kws_dscnn.tflite",
        "mobilenet_tiny.tflite", "dw_dilated_dynamic.tflite", "dw_int16x8.tflite", "dw_float.tflite",
    } <= names
    for p in ALL_FIXTURES:
        assert p.stat().st_size < 100_000, p


def summary(op):
    lay, g = op.qlayer.layer, op.qlayer.geometry
    return (lay.kernel_size, lay.strides, lay.dilation_rate, lay.padding, lay.depth_multiplier,
            lay.activation, g.input_shape, g.output_shape, op.padding)


def test_dw_configs():
    m = read_model(FIXTURES / "dw_configs.tflite")
    assert m.unsupported == []
    ops = by_name(m)
    assert summary(ops["dw3x3_s1_same_relu6_1"]) == (
        (3, 3), (1, 1), (1, 1), "same", 1, "relu6", (1, 16, 16, 8), (1, 16, 16, 8), (1, 1, 1, 1))
    assert summary(ops["dw5x5_s2_valid_1"]) == (
        (5, 5), (2, 2), (1, 1), "valid", 1, "none", (1, 16, 16, 8), (1, 6, 6, 8), (0, 0, 0, 0))
    assert summary(ops["dw3x3_d2_same_relu_1"]) == (
        (3, 3), (1, 1), (2, 2), "same", 1, "relu", (1, 16, 16, 8), (1, 16, 16, 8), (2, 2, 2, 2))
    assert summary(ops["dw3x3_m2_valid_nobias_1"]) == (
        (3, 3), (1, 1), (1, 1), "valid", 2, "none", (1, 16, 16, 8), (1, 14, 14, 16), (0, 0, 0, 0))
    # stride-2 SAME on an even input pads 0 top/left and 1 bottom/right
    assert summary(ops["dw3x3_s2_same_c7_1"]) == (
        (3, 3), (2, 2), (1, 1), "same", 1, "none", (1, 16, 16, 7), (1, 8, 8, 7), (0, 0, 1, 1))
    assert summary(ops["dw3x5_s2x1_same_1"]) == (
        (3, 5), (2, 1), (1, 1), "same", 1, "none", (1, 16, 16, 7), (1, 8, 16, 7), (0, 2, 1, 2))
    # Keras use_bias=False: TFLite still stores a (zero) bias
    nb = ops["dw3x3_m2_valid_nobias_1"]
    assert nb.bias is not None and not np.any(nb.qlayer.bias)
    for op in m.depthwise:
        assert op.pattern == "conv2d" and op.pre_ops == op.post_ops == ()
        assert op.user_layer == op.qlayer.layer and op.user_qlayer is op.qlayer
        assert op.per_channel and op.version == 3
        assert op.qlayer.weights.dtype == np.int8 and op.qlayer.bias.dtype == np.int32
        assert op.user_input == op.input and op.user_output == op.output
    # the input and output names are raw
    assert ops["dw5x5_s2_valid_1"].input_name == "serving_default_x:0"
    assert ops["dw5x5_s2_valid_1"].output_name.startswith("StatefulPartitionedCall")


def test_dw1d_is_reported_as_conv1d():
    m = read_model(FIXTURES / "dw1d.tflite")
    a, b = m.depthwise
    # RESHAPE -> DW -> DW -> RESHAPE: the converter folded the reshapes between the layers
    assert (a.pattern, a.pre_ops, a.post_ops) == ("conv1d", (0,), ())
    assert (b.pattern, b.pre_ops, b.post_ops) == ("conv1d", (), (3,))
    for op in (a, b):
        assert op.user_layer.keras_class == "DepthwiseConv1D" and op.user_layer.rank == 1
        assert op.qlayer.geometry.in_h == 1
    assert a.user_layer.describe()["kernel_size"] == [1, 5]
    assert (a.user_layer.padding, a.user_layer.activation) == ("valid", "relu")
    assert a.user_input_shape == (1, 32, 12) and a.user_output_shape == (1, 28, 12)
    assert a.user_input == m.inputs[0].index
    assert (b.user_layer.strides, b.user_layer.depth_multiplier, b.user_layer.padding) == ((1, 2), 2, "same")
    assert b.user_input_shape == (1, 28, 12) and b.user_output_shape == (1, 14, 24)
    assert b.user_output == m.outputs[0].index
    # between the two layers the [1, 1, 28, 12] tensor holds the bytes of [1, 28, 12]
    assert a.user_output == b.user_input == a.output


def test_channels_first_pattern():
    m = read_model(FIXTURES / "dw_channels_first.tflite")
    ops = by_name(m)
    single = ops["dw_cf_3x3_same_relu6_1"]
    assert single.pattern == "channels_first"
    assert (single.pre_ops, single.post_ops) == (
        (0,), (m.op(single.index + 1).index,))
    assert single.user_layer.data_format == "channels_first"
    assert single.user_input_shape == (1, 8, 10, 10) and single.user_output_shape == (1, 8, 10, 10)
    assert single.qlayer.geometry.input_shape == (1, 10, 10, 8)  # as stored: NHWC
    assert single.user_input == m.inputs[0].index
    assert any("also feeds" in n for n in single.notes)  # the TRANSPOSE is shared
    # two channels_first layers in a row: the converter removed the transposes between them
    a, b = ops["dw_cf_chain_a_1"], ops["dw_cf_chain_b_1"]
    assert a.pattern == b.pattern == "channels_first"
    assert a.pre_ops == (0,) and a.post_ops == () and a.user_output is None
    assert b.pre_ops == () and b.user_input is None and b.post_ops != ()
    assert a.user_output_shape == b.user_input_shape == (1, 8, 4, 4)
    assert b.user_output_shape == (1, 16, 4, 4)


def test_dilated_pattern_with_dynamic_batch():
    m = read_model(FIXTURES / "dw_dilated_dynamic.tflite")
    a, b = m.depthwise
    for op, runtime_batch, dil, pad in ((a, 4, (2, 2), "same"), (b, 6, (2, 3), "valid")):
        assert op.pattern == "dilated"
        assert len(op.pre_ops) == 1 and len(op.post_ops) == 1
        assert m.op(op.pre_ops[0]).name == "SPACE_TO_BATCH_ND"
        assert m.op(op.post_ops[0]).name == "BATCH_TO_SPACE_ND"
        assert op.qlayer.geometry.batch == runtime_batch  # what TFLite runs
        assert op.qlayer.layer.dilation_rate == (1, 1) and op.qlayer.layer.padding == "valid"
        assert (op.user_layer.dilation_rate, op.user_layer.padding) == (dil, pad)
        assert op.user_input_shape == (1, 16, 16, 8)
        assert any("placeholder" in n for n in op.notes)
    assert any("op 3 (ADD)" in n for n in a.notes)  # the unfused Keras bias/activation


def test_kws_and_mobilenet():
    kws = read_model(FIXTURES / "kws_dscnn.tflite")
    assert [op.c_name for op in kws.depthwise] == ["dw1_1", "dw2_1", "dw3_1", "dw4_1"]
    for op in kws.depthwise:
        assert summary(op) == ((3, 3), (1, 1), (1, 1), "same", 1, "relu", (1, 25, 5, 64),
                               (1, 25, 5, 64), (1, 1, 1, 1))
    assert kws.inputs[0].shape == (1, 49, 10, 1) and kws.inputs[0].dtype == "int8"
    mn = read_model(FIXTURES / "mobilenet_tiny.tflite")
    got = [(op.qlayer.geometry.input_shape, op.qlayer.layer.strides, op.padding) for op in mn.depthwise]
    assert got == [
        ((1, 16, 16, 8), (1, 1), (1, 1, 1, 1)),
        ((1, 16, 16, 16), (2, 2), (0, 0, 1, 1)),
        ((1, 8, 8, 32), (1, 1), (1, 1, 1, 1)),
        ((1, 8, 8, 32), (2, 2), (0, 0, 1, 1)),
        ((1, 4, 4, 64), (1, 1), (1, 1, 1, 1)),
    ]
    assert all(op.activation == "relu6" for op in mn.depthwise)


def test_unsupported_models_are_listed():
    m = read_model(FIXTURES / "dw_int16x8.tflite")
    assert m.depthwise == [] and len(m.unsupported) == 2
    assert all("int16x8 quantization" in u.reason for u in m.unsupported)
    assert [u.index for u in m.unsupported] == [0, 1]
    assert m.unsupported[0].input_name == "serving_default_x:0"
    f = read_model(FIXTURES / "dw_float.tflite")
    assert f.depthwise == [] and len(f.unsupported) == 2
    assert f.unsupported[0].reason.startswith("float32 model (not quantized)")


def test_c_names_valid_unique_stable():
    for p in ALL_FIXTURES:
        m = read_model(p)
        names = [op.c_name for op in m.depthwise]
        assert len(set(names)) == len(names)
        assert all(is_c_identifier(n) for n in names), names
        assert names == [op.c_name for op in read_model(p).depthwise]


def test_reader_agrees_with_generated_schema_classes():
    """The bounds-checked reader reads the same numbers as the `tflite` package."""
    import tflite

    for p in ALL_FIXTURES:
        data = p.read_bytes()
        fm = tflite.Model.GetRootAsModel(data, 0)
        sg = fm.Subgraphs(0)
        m = read_model(data, require_depthwise=False)
        for op in m.depthwise:
            ft = sg.Tensors(op.filter)
            w = fm.Buffers(ft.Buffer()).DataAsNumpy().view(np.int8)
            assert np.array_equal(op.qlayer.weights.ravel(), w)
            assert np.allclose(op.qlayer.quant.weight_scales, ft.Quantization().ScaleAsNumpy())
            bt = sg.Tensors(op.bias)
            assert np.array_equal(op.qlayer.bias, fm.Buffers(bt.Buffer()).DataAsNumpy().view("<i4"))
            it = sg.Tensors(op.input)
            assert op.qlayer.quant.input_zero_point == it.Quantization().ZeroPoint(0)
            assert op.input_name == it.Name().decode()


def test_tensor_data_and_inputs():
    m = read_model(FIXTURES / "kws_dscnn.tflite")
    op = m.depthwise[0]
    w = tensor_data(m, op.filter)
    assert w.shape == (1, 3, 3, 64) and w.dtype == np.int8
    assert np.array_equal(w.reshape(3, 3, 64), op.qlayer.weights)
    assert m.tensor_data(op.input) is None  # an activation
    (x,) = m.random_inputs(0)
    assert x.shape == (1, 49, 10, 1) and x.dtype == np.int8
    with pytest.raises(ModelError, match="no tensor 999 in subgraph 0"):
        m.tensor(999)
    assert m.tensor(op.input).quantized and m.tensor(op.input).per_tensor_scale > 0


def test_random_inputs_refuse_absurd_model_inputs():
    # a second model input claiming 10^9 elements: no 1 GB allocation, a one-line error
    spec = dw_spec()
    spec["tensors"].append(_tensor("huge", [1000, 1000, 1000, 1], "int8", scale=[0.1], zero_point=[0]))
    spec["inputs"] = [0, 4]
    m = read_model(build(spec))
    assert m.inputs[1].shape == (1000, 1000, 1000, 1)
    with pytest.raises(ModelError) as e:
        m.random_inputs()
    assert str(e.value) == (
        "model input tensor 4 'huge' claims 1000000000 elements (shape [1000, 1000, 1000, 1]), "
        f"more than the {MAX_TENSOR_ELEMENTS} dwgen accepts"
    )


def test_describe_is_plain_data():
    import json

    for p in ALL_FIXTURES:
        m = read_model(p)
        json.dumps([op.describe() for op in m.depthwise] + [u.describe() for u in m.unsupported])


# -- bit-exact against TFLite ---------------------------------------------------------------
def _interpreter(data: bytes):
    try:
        import ai_edge_litert.interpreter as litert
    except ImportError:  # projects pinned to tflite-runtime have the same API
        litert = pytest.importorskip("tflite_runtime.interpreter")
    it = litert.Interpreter(
        model_content=data, experimental_op_resolver_type=litert.OpResolverType.BUILTIN_REF,
        experimental_preserve_all_tensors=True,
    )
    it.allocate_tensors()
    return it


def _nhwc_to_user(op, a):
    layout = op.user_qlayer.geometry
    if layout.rank == 2 and layout.channels_first:
        return np.transpose(a, (0, 3, 1, 2))
    a = a.reshape(a.shape[0], a.shape[2], a.shape[3])
    return np.transpose(a, (0, 2, 1)) if layout.channels_first else a


@pytest.mark.parametrize("path", [p for p in ALL_FIXTURES if "int16" not in p.name and "float" not in p.name],
                         ids=lambda p: p.stem)
def test_fixture_numbers_match_tflite(path):
    """Every op, run by dwgen's reference on the tensor TFLite fed it, gives TFLite's output;
    and the user layer on the user-layout tensors gives the pattern's output."""
    m = read_model(path)
    it = _interpreter(path.read_bytes())
    for d, x in zip(it.get_input_details(), m.random_inputs(3)):
        it.set_tensor(d["index"], x)
    it.invoke()
    for op in m.depthwise:
        x, y = it.get_tensor(op.input), it.get_tensor(op.output)
        assert x.shape == op.qlayer.geometry.input_shape
        assert np.array_equal(depthwise_conv(op.qlayer, x), y), op.c_name
        ux = it.get_tensor(op.user_input) if op.user_input is not None else _nhwc_to_user(op, x)
        uy = it.get_tensor(op.user_output) if op.user_output is not None else _nhwc_to_user(op, y)
        ux, uy = ux.reshape(op.user_input_shape), uy.reshape(op.user_output_shape)
        assert np.array_equal(depthwise_conv(op.user_qlayer, ux), uy), op.c_name


def test_hand_built_model_matches_tflite():
    data = build(dw_spec())
    (op,) = read_model(data).depthwise
    it = _interpreter(data)
    x = op.qlayer.random_input(1)
    it.set_tensor(0, x)
    it.invoke()
    assert np.array_equal(depthwise_conv(op.qlayer, x), it.get_tensor(3))


# -- hand-built models: what is read right ---------------------------------------------------
def test_hand_built_model_reads():
    m = read_model(build(dw_spec()))
    (op,) = m.depthwise
    assert op.c_name == "dw_layer"
    assert op.qlayer.layer == DepthwiseLayer((3, 3), padding="same", depth_multiplier=2, activation="relu6")
    assert op.qlayer.quant.input_zero_point == -3 and op.qlayer.quant.output_zero_point == -128
    assert m.description == "dwgen test" and m.version == 3


def test_external_buffers_read_like_inline_ones():
    spec = dw_spec()
    inline, ext = read_model(build(spec)).depthwise[0], read_model(build(spec, external=True)).depthwise[0]
    assert np.array_equal(inline.qlayer.weights, ext.qlayer.weights)
    assert np.array_equal(inline.qlayer.bias, ext.qlayer.bias)


def test_external_buffer_outside_the_file():
    data = build(dw_spec(), external=True)
    cut = data[:-8]
    assert error_of(cut).startswith("malformed TFLite file: buffer 2 points at bytes ")
    assert error_of(cut).endswith(f"outside the file ({len(cut)} bytes)")


def test_depth_multiplier_is_derived_like_tflite():
    spec = dw_spec()
    spec["ops"][0]["options"]["depth_multiplier"] = 1  # old converters stored wrong values
    (op,) = read_model(build(spec)).depthwise
    assert op.qlayer.layer.depth_multiplier == 2 and op.stored_depth_multiplier == 1
    assert op.notes == (
        "the options store depth_multiplier=1; TFLite derives 2 from the channels (8/4) and dwgen "
        "does too (TFLite Micro reads the stored value)",
    )


def test_per_tensor_weights_and_missing_bias():
    spec = dw_spec()
    spec["tensors"][1]["scale"], spec["tensors"][1]["zero_point"] = [0.01], [0]
    spec["ops"][0]["inputs"] = [0, 1, -1]
    (op,) = read_model(build(spec)).depthwise
    assert not op.per_channel and op.bias is None and not op.qlayer.layer.use_bias
    assert op.qlayer.quant.num_channels == 8


@pytest.mark.parametrize("change, reason", [
    (lambda s: [t.update(type="int16", scale=[0.001], zero_point=[0]) for t in (s["tensors"][0], s["tensors"][3])]
     and s["tensors"][2].update(type="int64"),
     "int16x8 quantization (int16 activations, int8 weights): dwgen generates int8 kernels"),
    (lambda s: s["tensors"][1].update(type="int4", data=b"\x11" * 36),
     "int4 weights (two per byte): dwgen generates kernels for int8 weights"),
    (lambda s: [t.update(type="uint8", zero_point=[128]) for t in (s["tensors"][0], s["tensors"][3])],
     "uint8 quantization (legacy asymmetric): dwgen generates int8 kernels; convert with inference_input_type=tf.int8"),
    (lambda s: [t.update(type="float32", quant=False) for t in (s["tensors"][0], s["tensors"][3])],
     "hybrid quantization (float32 activations, int8 weights): dwgen generates int8 kernels"),
    (lambda s: s["ops"][0]["options"].update(activation=4),
     "fused activation TANH cannot be applied by an int8 kernel (supported: NONE, RELU, RELU6, RELU_N1_TO_1)"),
    (lambda s: s["tensors"][1].update(data=None),
     "the filter is not a constant tensor (computed at run time): dwgen bakes the weights in"),
])
def test_unsupported_ops_have_reasons(change, reason):
    spec = dw_spec()
    change(spec)
    m = read_model(build(spec))
    assert m.depthwise == []
    (u,) = m.unsupported
    assert (u.index, u.op, u.reason) == (0, "DEPTHWISE_CONV_2D", reason)
    assert u.output_name == "model/dw_layer/Relu6;model/dw_layer/BiasAdd"


# -- bad input: one exact line each -----------------------------------------------------------
def test_not_a_tflite_file():
    assert error_of(b"") == "not a TFLite model: 0 bytes is too short for a flatbuffer header"
    assert error_of(b"abc") == "not a TFLite model: 3 bytes is too short for a flatbuffer header"
    data = bytearray(build(dw_spec()))
    data[4:8] = b"TFL2"
    assert error_of(bytes(data)) == "not a TFLite model: the file identifier is b'TFL2', expected b'TFL3'"
    assert error_of(b"\x7fELF\x02\x01\x01\x00" + bytes(100)).startswith("not a TFLite model: the file identifier")
    assert error_of(12) == "read_model takes a path or bytes, not int"


def test_unreadable_path(tmp_path):
    msg = error_of(tmp_path / "nope.tflite")
    assert msg.startswith("cannot read '") and msg.endswith("nope.tflite': No such file or directory")
    assert error_of(str(tmp_path)).endswith("Is a directory")


def test_truncated_files():
    data = build(dw_spec())
    msgs = set()
    for n in range(8, len(data), 7):
        msgs.add(error_of(data[:n]))
    assert all(m.startswith("malformed TFLite file: ") for m in msgs), msgs
    assert all("outside the file" in m or "runs past the end" in m for m in msgs), msgs
    root = struct.unpack_from("<I", data)[0]
    assert error_of(data[:8]) == f"malformed TFLite file: model at byte {root} (4 bytes) lies outside the file (8 bytes)"


def test_root_offset_outside_the_file():
    data = bytearray(build(dw_spec()))
    struct.pack_into("<I", data, 0, 0xFFFFFF00)
    assert error_of(bytes(data)) == (
        f"malformed TFLite file: model at byte {0xFFFFFF00} (4 bytes) lies outside the file ({len(data)} bytes)")


def test_wrong_schema_version():
    assert error_of(build(dw_spec(), version=2)) == "model schema version is 2: TFLite reads version 3"


def test_no_depthwise_op():
    spec = dw_spec()
    spec["tensors"].append(_tensor("shape", [2], "int32", data=np.array([1, 144]), quant=False))
    spec["tensors"].append(_tensor("flat", [1, 144], "int8", scale=[0.05], zero_point=[-3]))
    spec["ops"] = [{"code": 22, "inputs": [0, 4], "outputs": [5]}]
    spec["outputs"] = [5]
    data = build(spec)
    assert error_of(data) == "the model has no DEPTHWISE_CONV_2D op (its ops: RESHAPE)"
    m = read_model(data, require_depthwise=False)
    assert m.depthwise == [] and m.operators[0].name == "RESHAPE"


def bad(change) -> str:
    spec = dw_spec()
    change(spec)
    return error_of(build(spec))


T_OUT = "output tensor 3 'model/dw_layer/Relu6;model/dw_layer/BiasAdd'"


@pytest.mark.parametrize("change, message", [
    (lambda s: s["tensors"][3].update(shape=[1, 4, 4, 8]),
     f"op 0 (DEPTHWISE_CONV_2D): {T_OUT} has shape [1, 4, 4, 8] but the options give [1, 6, 6, 8] "
     "(3x3 kernel, stride 1x1, dilation 1x1, SAME padding on a 6x6x4 input)"),
    (lambda s: s["tensors"][1].update(shape=[2, 3, 3, 8], data=np.zeros(144)),
     "op 0 (DEPTHWISE_CONV_2D): filter tensor 1 'dw/filter' has shape [2, 3, 3, 8]: a depthwise "
     "filter is [1, kh, kw, C*M]"),
    (lambda s: s["tensors"][1].update(shape=[1, 3, 3, 6], data=np.zeros(54), scale=[0.01], zero_point=[0]),
     "op 0 (DEPTHWISE_CONV_2D): filter tensor 1 'dw/filter' has 6 output channels, not a multiple "
     "of the input's 4 channels"),
    (lambda s: s["tensors"][2].update(shape=[7], data=np.zeros(7), scale=[1e-4] * 7, zero_point=[0] * 7),
     "op 0 (DEPTHWISE_CONV_2D): bias tensor 2 'dw/bias' has 7 elements: it needs 8 (one per output channel)"),
    (lambda s: s["tensors"][1].update(zero_point=[0] * 7 + [3]),
     "op 0 (DEPTHWISE_CONV_2D): filter tensor 1 'dw/filter' has weight zero point 3: int8 weights "
     "are symmetric, every weight zero point must be 0"),
    # a 3x8 kernel: 8 scales along the kernel's width load in TFLite, but are not per channel
    (lambda s: s["tensors"][1].update(shape=[1, 3, 8, 8], data=np.zeros(192), qdim=2),
     "op 0 (DEPTHWISE_CONV_2D): filter tensor 1 'dw/filter' is quantized along dimension 2: "
     "per-channel depthwise weights are quantized along dimension 3"),
    (lambda s: s["tensors"][1].update(scale=[0.01] * 3, zero_point=[0] * 3, qdim=1),
     "op 0 (DEPTHWISE_CONV_2D): filter tensor 1 'dw/filter' has 3 scales: it needs 1 (per tensor) "
     "or 8 (one per output channel)"),
    (lambda s: s["tensors"][1].update(quant=False),
     "op 0 (DEPTHWISE_CONV_2D): filter tensor 1 'dw/filter' is int8 without quantization parameters (scales)"),
    (lambda s: s["tensors"][0].update(quant=False),
     "op 0 (DEPTHWISE_CONV_2D): input tensor 0 'input' is int8 without quantization parameters "
     "(scale, zero point)"),
    (lambda s: s["tensors"][0].update(scale=[0.0]),
     "op 0 (DEPTHWISE_CONV_2D): bad quantization: input_scale=0.0 is not allowed: a scale is a "
     "positive finite number (as float32)"),
    (lambda s: s["tensors"][3].update(zero_point=[200]),
     "op 0 (DEPTHWISE_CONV_2D): bad quantization: output_zero_point=200 is not allowed: an int8 "
     "zero point is an integer in [-128, 127]"),
    (lambda s: s["tensors"][2].update(type="int64", data=np.zeros(8)),
     "op 0 (DEPTHWISE_CONV_2D): bias tensor 2 'dw/bias' has type int64: an int8 depthwise op takes an int32 bias"),
    (lambda s: s["tensors"][1].update(data=bytes(10)),
     "op 0 (DEPTHWISE_CONV_2D): filter tensor 1 'dw/filter' buffer 1 holds 10 bytes: shape "
     "[1, 3, 3, 8] int8 needs 72"),
    (lambda s: s["ops"][0]["options"].update(stride_w=0),
     "op 0 (DEPTHWISE_CONV_2D): has stride 1x0 (height x width): strides must be at least 1"),
    (lambda s: s["ops"][0]["options"].update(dilation_h=-2),
     "op 0 (DEPTHWISE_CONV_2D): has dilation -2x1 (height x width): dilation factors must be at least 1"),
    (lambda s: s["ops"][0]["options"].update(padding=7),
     "op 0 (DEPTHWISE_CONV_2D): has padding code 7: TFLite knows SAME (0) and VALID (1)"),
    (lambda s: s["ops"][0]["options"].update(activation=9),
     "op 0 (DEPTHWISE_CONV_2D): has fused activation code 9: TFLite knows 0..5"),
    (lambda s: s["ops"][0].update(options=None),
     "op 0 (DEPTHWISE_CONV_2D): has builtin options of type 0: it needs DepthwiseConv2DOptions"),
    (lambda s: s["ops"][0].update(options_type=17),
     "op 0 (DEPTHWISE_CONV_2D): has builtin options of type 17: it needs DepthwiseConv2DOptions"),
    (lambda s: s["ops"][0]["options"].update(padding=1) or s["tensors"][0].update(shape=[1, 2, 6, 4]),
     "op 0 (DEPTHWISE_CONV_2D): input tensor 0 'input' of shape [1, 2, 6, 4] does not fit the "
     "options: kernel_size=(3, 3) with dilation_rate=(1, 1) spans 3 pixels but the input height "
     "is 2 with padding='valid': the kernel must fit inside the input (or use padding='same')"),
    (lambda s: s["tensors"][0].update(shape=[1, 6, 6]),
     "op 0 (DEPTHWISE_CONV_2D): input tensor 0 'input' has shape [1, 6, 6]: it must have rank 4"),
    (lambda s: s["tensors"][0].update(shape=[1, 0, 6, 4]),
     "op 0 (DEPTHWISE_CONV_2D): input tensor 0 'input' has shape [1, 0, 6, 4]: every dimension must be positive"),
    (lambda s: s["ops"][0].update(inputs=[0]),
     "op 0 (DEPTHWISE_CONV_2D): has inputs [0]: it needs input, filter and optionally bias tensors"),
    (lambda s: s["ops"][0].update(outputs=[3, 3]),
     "op 0 (DEPTHWISE_CONV_2D): has outputs [3, 3]: it needs exactly one output tensor"),
    (lambda s: s["ops"][0].update(inputs=[0, 1, 9]),
     "malformed TFLite file: op 0 (DEPTHWISE_CONV_2D) input refers to tensor 9 but the subgraph has 4 tensors"),
    (lambda s: s.update(inputs=[-1]),
     "malformed TFLite file: subgraph 0 inputs refers to tensor -1 but the subgraph has 4 tensors"),
])
def test_bad_ops(change, message):
    assert bad(change) == message


# What TFLite's interpreter refuses to load, for any tensor (used by the op or not).
@pytest.mark.parametrize("change, message", [
    (lambda s: s["tensors"][2].update(scale=[1e-4] * 7),
     "tensor 2 'dw/bias' has 7 scales but 8 zero points: TFLite refuses to load quantization whose "
     "scale and zero point counts differ"),
    (lambda s: s["tensors"][0].update(zero_point=[0, 0]),
     "tensor 0 'input' has 1 scales but 2 zero points: TFLite refuses to load quantization whose "
     "scale and zero point counts differ"),
    (lambda s: s["tensors"][2].update(zero_point=None),
     "tensor 2 'dw/bias' has 8 scales but no zero points: TFLite refuses to load quantization "
     "without zero points"),
    (lambda s: s["tensors"][1].update(qdim=7),
     "tensor 1 'dw/filter' is quantized along dimension 7 but has rank 4: TFLite refuses to load a "
     "quantized dimension outside [0, 4)"),
    (lambda s: s["tensors"][2].update(scale=[1e-4], zero_point=[0], qdim=-1),
     "tensor 2 'dw/bias' is quantized along dimension -1 but has rank 1: TFLite refuses to load a "
     "quantized dimension outside [0, 1)"),
    (lambda s: s["tensors"][1].update(scale=[0.01] * 5, zero_point=[0] * 5),
     "tensor 1 'dw/filter' has 5 scales along dimension 3 of its shape [1, 3, 3, 8]: TFLite loads "
     "1 (per tensor) or 8 (one per index of that dimension)"),
    (lambda s: s["tensors"][1].update(qdim=0),
     "tensor 1 'dw/filter' has 8 scales along dimension 0 of its shape [1, 3, 3, 8]: TFLite loads "
     "1 (per tensor) or 1 (one per index of that dimension)"),
    (lambda s: s["tensors"].append(_tensor("unused", [2, 3], "int8", scale=[0.1] * 2, zero_point=[0] * 2, qdim=1)),
     "tensor 4 'unused' has 2 scales along dimension 1 of its shape [2, 3]: TFLite loads 1 (per "
     "tensor) or 3 (one per index of that dimension)"),
])
def test_quantization_tflite_refuses(change, message):
    assert bad(change) == message
    spec = dw_spec()
    change(spec)
    with pytest.raises(ValueError, match="invalid quantization parameters"):  # and so does TFLite
        _interpreter(build(spec))


def test_quantization_tflite_loads_is_read():
    """The edges TFLite accepts stay accepted: rank-0 tensors, zero points without scales."""
    spec = dw_spec()
    spec["tensors"].append(_tensor("scalar", [], "int8", scale=[0.5] * 2, zero_point=[0] * 2, qdim=3))
    spec["tensors"].append(_tensor("zp_only", [3], "int8", scale=[], zero_point=[0, 0, 0]))
    spec["tensors"].append(_tensor("per_axis", [2, 3], "int8", scale=[0.5] * 3, zero_point=[0] * 3, qdim=1))
    m = read_model(build(spec))
    assert [t.scale for t in m.subgraphs[0].tensors[4:]] == [(0.5, 0.5), (), (0.5, 0.5, 0.5)]
    _interpreter(build(spec))  # TFLite loads it too


def test_absurd_sizes():
    # a malicious file claiming a 10^9-element activation
    msg = bad(lambda s: [t.update(shape=[1, 1000, 1000, 1000 * (8 if i == 3 else 4) // 4])
                         for i, t in ((0, s["tensors"][0]), (3, s["tensors"][3]))])
    assert msg == (
        "op 0 (DEPTHWISE_CONV_2D): input tensor 0 'input' claims 1000000000 elements (shape "
        f"[1, 1000, 1000, 1000]), more than the {MAX_TENSOR_ELEMENTS} dwgen accepts"
    )
    # a filter claiming 2^31 elements with a tiny buffer
    msg = bad(lambda s: s["tensors"][1].update(shape=[1, 65536, 4096, 8]))
    assert msg.startswith("op 0 (DEPTHWISE_CONV_2D): filter tensor 1 'dw/filter' claims 2147483648 elements")
    # a dilation that makes a 3x3 kernel span 2 * 10^9 pixels
    assert bad(lambda s: s["ops"][0]["options"].update(dilation_w=10**9)) == (
        "op 0 (DEPTHWISE_CONV_2D): has a kernel spanning 2000000001 pixels in width "
        "(kernel 3, dilation 1000000000): dwgen accepts up to 1024")
    # a rank-1000 shape
    assert bad(lambda s: s["tensors"][0].update(shape=[1] * 1000)) == (
        "op 0 (DEPTHWISE_CONV_2D): input tensor 0 'input' has rank 1000: dwgen reads tensors of rank <= 8")


def test_vector_claiming_more_than_the_file():
    data = bytearray(build(dw_spec()))
    # the filter's name string: its length prefix sits 4 bytes before the text
    pos = data.index(b"dw/filter") - 4
    struct.pack_into("<I", data, pos, 0x7FFFFFFF)
    assert error_of(bytes(data)) == (
        f"malformed TFLite file: tensor 1 name at byte {pos} claims 2147483647 elements, which runs past the end of the "
        f"file ({len(data)} bytes)"
    )


def test_opcode_index_out_of_range():
    data = bytearray(build(dw_spec()))
    # One operator code: make the operator point at code 5 (the vtable says where the field is).
    import tflite

    fm = tflite.Model.GetRootAsModel(bytes(data), 0)
    op = fm.Subgraphs(0).Operators(0)
    o = op._tab.Offset(4)
    struct.pack_into("<I", data, op._tab.Pos + o, 5)
    assert error_of(bytes(data)) == "malformed TFLite file: op 0 uses operator code 5 but the model has 1"


NASTY = [
    'we"ird\'name', "end*/ of comment /* x", "multi\nline\r\nname", "Gewichtsüberprüfung/卷积",
    "\u2028sep", "??/trigraph\\", "", "a" * 5000, "0starts_with_digit", "int", "__reserved",
]


@pytest.mark.parametrize("name", NASTY, ids=range(len(NASTY)))
def test_nasty_names(name):
    spec = dw_spec()
    spec["tensors"][3]["name"] = name
    spec["tensors"][1]["name"] = name
    (op,) = read_model(build(spec)).depthwise
    assert op.output_name == name  # raw, kept as data
    assert is_c_identifier(op.c_name) and 0 < len(op.c_name) <= C_NAME_MAX
    comment = op.display_name
    assert comment.isascii() and comment.isprintable()
    assert "*/" not in comment and "/*" not in comment and "??" not in comment and "\\\n" not in comment
    assert not comment.endswith("\\")
    # and in an error message the name stays on one line
    spec["tensors"][3]["shape"] = [1, 2, 2, 8]
    msg = error_of(build(spec))
    assert msg.startswith("op 0 (DEPTHWISE_CONV_2D): output tensor 3 ")


def test_c_identifier_rules():
    assert c_identifier("model/block_1/dw/depthwise;model/block_1/dw/BiasAdd") == "dw"
    assert c_identifier("StatefulPartitionedCall_1:0", "dw_op3") == "dw_op3"
    assert c_identifier("卷积", "dw_op0") == "dw_op0"
    assert c_identifier("3x3") == "t_3x3"
    assert c_identifier("while") == "while_dw"
    assert c_identifier("Ünïcödé Läyer!") == "unicode_layer"
    assert len(c_identifier("x" * 500)) == C_NAME_MAX


def test_duplicate_names_get_suffixes():
    spec = dw_spec()
    spec["tensors"].append(_tensor("model/dw_layer/Relu6", [1, 6, 6, 16], "int8", scale=[0.04],
                                   zero_point=[-128]))
    spec["tensors"].append(copy.deepcopy(spec["tensors"][1]))
    spec["tensors"][5].update(shape=[1, 3, 3, 16], data=np.ones(144), scale=[0.01] * 16, zero_point=[0] * 16)
    spec["tensors"].append(copy.deepcopy(spec["tensors"][3]))
    spec["tensors"].append(_tensor("dw_layer_2", [1, 6, 6, 8], "int8", scale=[0.04], zero_point=[-128]))
    spec["ops"].append({"code": DW, "version": 3, "inputs": [3, 5, -1], "outputs": [4],
                        "options": {"padding": 0, "depth_multiplier": 2}})
    spec["ops"].append({"code": DW, "version": 3, "inputs": [0, 1, 2], "outputs": [7],
                        "options": {"padding": 0, "depth_multiplier": 2}})
    spec["ops"].append({"code": DW, "version": 3, "inputs": [0, 1, 2], "outputs": [6],
                        "options": {"padding": 0, "depth_multiplier": 2}})
    spec["outputs"] = [4, 6, 7]
    names = [op.c_name for op in read_model(build(spec)).depthwise]
    # three layers named dw_layer are told apart by op index; the real dw_layer_2 keeps its name
    assert names == ["dw_layer_op0", "dw_layer_op1", "dw_layer_2", "dw_layer_op3"]


def test_c_comment_text():
    assert c_comment_text("a */ b") == "a \\x2a/ b"
    assert c_comment_text("x\ny") == "x\\x0ay"
    assert c_comment_text("é") == "\\xe9"
    assert c_comment_text("??/") == "\\x3f\\x3f/"


def test_random_hand_built_models_match_tflite():
    """Random configurations written as .tflite: what the reader extracts runs like TFLite."""
    rng = np.random.default_rng(5)
    checked = 0
    for case in range(60):
        c, m = int(rng.integers(1, 6)), int(rng.integers(1, 4))
        kh, kw = int(rng.integers(1, 6)), int(rng.integers(1, 6))
        sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        dh, dw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        h, w = int(rng.integers(1, 12)), int(rng.integers(1, 12))
        padding = "same" if rng.random() < 0.5 else "valid"
        layer = DepthwiseLayer((kh, kw), (sh, sw), padding, m, dilation_rate=(dh, dw),
                               activation=str(rng.choice(["none", "relu", "relu6", "relu_n1_to_1"])))
        try:
            g = layer.geometry((1, h, w, c))
        except Exception:
            continue
        spec = dw_spec(c=c, m=m, h=h, w=w, k=(kh, kw), seed=case)
        spec["tensors"][3]["shape"] = [1, g.out_h, g.out_w, c * m]
        if rng.random() < 0.3:  # per-tensor weights
            spec["tensors"][1]["scale"], spec["tensors"][1]["zero_point"] = [0.01], [0]
        spec["tensors"][0]["zero_point"] = [int(rng.integers(-128, 128))]
        spec["tensors"][3]["zero_point"] = [int(rng.integers(-128, 128))]
        spec["ops"][0]["options"] = {
            "padding": 0 if padding == "same" else 1, "stride_h": sh, "stride_w": sw,
            "dilation_h": dh, "dilation_w": dw, "depth_multiplier": m,
            "activation": {"none": 0, "relu": 1, "relu_n1_to_1": 2, "relu6": 3}[layer.activation],
        }
        data = build(spec)
        (op,) = read_model(data).depthwise
        assert op.qlayer.layer == layer and op.qlayer.geometry == g
        it = _interpreter(data)
        x = op.qlayer.random_input(case)
        it.set_tensor(0, x)
        it.invoke()
        assert np.array_equal(depthwise_conv(op.qlayer, x), it.get_tensor(3)), (case, layer)
        checked += 1
    assert checked > 30
