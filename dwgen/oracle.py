"""The TFLite oracle: write one layer as a single-op .tflite model and run it.

`write_model` builds a `DEPTHWISE_CONV_2D` flatbuffer with the `flatbuffers` runtime and
the generated TFLite schema of the `tflite` package (what the converter writes for the op).
`run_tflite` runs it under TFLite's *reference* kernels (LiteRT `ai-edge-litert`, or the
older `tflite-runtime` with the same API), `run_tflm` under TensorFlow Lite Micro
(`tflite-micro`). Both take and return numpy data in the layer's own layout
(`ql.geometry.input_shape` / `output_shape`): the model itself is always NHWC (a 1-D
layer is H == 1), and the runners transpose/reshape around it, as the TFLite converter's
TRANSPOSE/RESHAPE ops would.

No interpreter is imported at module import time: `dwgen emit` works without any.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .errors import OracleUnavailable
from .qlayer import QuantizedLayer
from .quant import Quantization, activation_bounds
from .reference import from_nhwc, to_nhwc

#: Operator version written for an int8 per-channel depthwise convolution (the converter's choice).
DEPTHWISE_INT8_VERSION = 3
#: Flatbuffer schema version of a .tflite file.
SCHEMA_VERSION = 3
FILE_IDENTIFIER = b"TFL3"

_LITERT_PIP = "ai-edge-litert"
_TFLITE_RUNTIME_PIP = "tflite-runtime"
_TFLM_PIP = "tflite-micro"

# Buffer data is aligned like the TFLite converter does, so that every kernel (and
# every interpreter version) may read it in place.
_BUFFER_ALIGNMENT = 16


# -- writing the model ----------------------------------------------------------------------
def _check_writable(ql: QuantizedLayer) -> Quantization:
    q = ql.quant
    if q.weight_scales is None or q.input_scale is None or q.output_scale is None:
        raise OracleUnavailable(
            "this layer was built with Quantization.from_multipliers and has no float scales: "
            "a .tflite model stores scales, not multipliers, so TFLite cannot run it; build it "
            "with Quantization.from_scales (or QuantizedLayer.from_float) to use the TFLite "
            "oracle, or use dwgen.reference"
        )
    activation = ql.layer.activation
    if q.act_range is not None and tuple(q.act_range) != activation_bounds(
        activation, q.output_scale, q.output_zero_point
    ):
        raise OracleUnavailable(
            f"this layer clamps to act_min/act_max={tuple(q.act_range)}, which no fused "
            f"activation of TFLite gives ({activation!r} with these scales gives "
            f"{activation_bounds(activation, q.output_scale, q.output_zero_point)}); use "
            "dwgen.reference"
        )
    # The multipliers must be the ones TFLite derives from the stored scales, otherwise
    # the model would silently compute a different layer.
    derived = Quantization.from_scales(
        q.input_scale, q.input_zero_point, q.weight_scales, q.output_scale,
        q.output_zero_point, ql.geometry.out_c, rounding=q.rounding,
    )
    if derived.multipliers != q.multipliers or derived.shifts != q.shifts:
        raise OracleUnavailable(
            "this layer's multipliers/shifts are not the ones TFLite derives from its scales "
            "(they were changed after Quantization.from_scales): a .tflite model cannot "
            "express that; use dwgen.reference"
        )
    return q


def _aligned_bytes(builder: Any, data: bytes) -> int:
    """A [ubyte] vector whose payload starts on a _BUFFER_ALIGNMENT boundary."""
    builder.StartVector(1, len(data), _BUFFER_ALIGNMENT)
    builder.head = builder.head - len(data)
    builder.Bytes[builder.head : builder.head + len(data)] = data
    return builder.EndVector()


def _vector(builder: Any, start: Callable[[Any, int], Any], values: np.ndarray, prepend: str) -> int:
    """A scalar vector written with the schema's Start...Vector function."""
    start(builder, len(values))
    add = getattr(builder, prepend)
    for v in reversed(values.tolist()):
        add(v)
    return builder.EndVector()


def _activation_code(activation: str) -> int:
    import tflite

    A = tflite.ActivationFunctionType
    codes = {"none": A.NONE, "relu": A.RELU, "relu6": A.RELU6, "relu_n1_to_1": A.RELU_N1_TO_1}
    if activation not in codes:  # pragma: no cover - DepthwiseLayer validates it
        raise OracleUnavailable(f"activation {activation!r} has no TFLite fused activation")
    return codes[activation]


def write_model(ql: QuantizedLayer) -> bytes:
    """A single-op DEPTHWISE_CONV_2D .tflite model (NHWC, int8, per-channel) of `ql`."""
    import flatbuffers
    import tflite

    q = _check_writable(ql)
    g = ql.geometry
    oc = g.out_c
    in_shape = [g.batch, g.in_h, g.in_w, g.in_c]
    out_shape = [g.batch, g.out_h, g.out_w, oc]
    w_shape = [1, g.kernel_h, g.kernel_w, oc]
    w_scales = np.asarray(q.weight_scales, dtype=np.float32)
    # Bias scale = input scale * weight scale (TFLite does not read it, but keeps it valid).
    b_scales = (np.float32(q.input_scale) * np.broadcast_to(w_scales, (len(w_scales),))).astype(np.float32)

    b = flatbuffers.Builder(4096 + ql.weights.nbytes + ql.bias.nbytes)

    # Buffers: 0 is the empty sentinel, 1 weights, 2 bias, 3/4 input/output (empty).
    weights_data = _aligned_bytes(b, np.ascontiguousarray(ql.weights, dtype=np.int8).tobytes())
    bias_data = _aligned_bytes(b, np.ascontiguousarray(ql.bias, dtype="<i4").tobytes())
    buffers = []
    for data in (None, weights_data, bias_data, None, None):
        tflite.BufferStart(b)
        if data is not None:
            tflite.BufferAddData(b, data)
        buffers.append(tflite.BufferEnd(b))

    def quantization(scales: np.ndarray, zero_points: np.ndarray, dim: int) -> int:
        s = _vector(b, tflite.QuantizationParametersStartScaleVector, scales.astype(np.float32), "PrependFloat32")
        z = _vector(b, tflite.QuantizationParametersStartZeroPointVector, zero_points.astype(np.int64), "PrependInt64")
        tflite.QuantizationParametersStart(b)
        tflite.QuantizationParametersAddScale(b, s)
        tflite.QuantizationParametersAddZeroPoint(b, z)
        tflite.QuantizationParametersAddQuantizedDimension(b, dim)
        return tflite.QuantizationParametersEnd(b)

    q_in = quantization(np.array([q.input_scale]), np.array([q.input_zero_point]), 0)
    q_w = quantization(w_scales, np.zeros(len(w_scales), dtype=np.int64), 3)
    q_b = quantization(b_scales, np.zeros(len(b_scales), dtype=np.int64), 0)
    q_out = quantization(np.array([q.output_scale]), np.array([q.output_zero_point]), 0)

    T = tflite.TensorType
    tensor_specs = [  # name, shape, type, buffer, quantization
        ("input", in_shape, T.INT8, 3, q_in),
        ("depthwise_weights", w_shape, T.INT8, 1, q_w),
        ("bias", [oc], T.INT32, 2, q_b),
        ("output", out_shape, T.INT8, 4, q_out),
    ]
    tensors = []
    for name, shape, ttype, buf, quant in tensor_specs:
        name_off = b.CreateString(name)
        shape_off = _vector(b, tflite.TensorStartShapeVector, np.array(shape, dtype=np.int32), "PrependInt32")
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape_off)
        tflite.TensorAddType(b, ttype)
        tflite.TensorAddBuffer(b, buf)
        tflite.TensorAddName(b, name_off)
        tflite.TensorAddQuantization(b, quant)
        tensors.append(tflite.TensorEnd(b))

    # Every option written explicitly: the schema defaults (stride 0, depth_multiplier 0)
    # are not what any interpreter should see, and ForceDefaults keeps even the fields
    # whose value happens to equal the schema default (e.g. padding SAME == 0).
    b.ForceDefaults(True)
    tflite.DepthwiseConv2DOptionsStart(b)
    tflite.DepthwiseConv2DOptionsAddPadding(
        b, tflite.Padding.SAME if ql.layer.padding == "same" else tflite.Padding.VALID
    )
    tflite.DepthwiseConv2DOptionsAddStrideW(b, g.stride_w)
    tflite.DepthwiseConv2DOptionsAddStrideH(b, g.stride_h)
    tflite.DepthwiseConv2DOptionsAddDepthMultiplier(b, g.depth_multiplier)
    tflite.DepthwiseConv2DOptionsAddFusedActivationFunction(b, _activation_code(ql.layer.activation))
    tflite.DepthwiseConv2DOptionsAddDilationWFactor(b, g.dilation_w)
    tflite.DepthwiseConv2DOptionsAddDilationHFactor(b, g.dilation_h)
    options = tflite.DepthwiseConv2DOptionsEnd(b)

    op_inputs = _vector(b, tflite.OperatorStartInputsVector, np.array([0, 1, 2], dtype=np.int32), "PrependInt32")
    op_outputs = _vector(b, tflite.OperatorStartOutputsVector, np.array([3], dtype=np.int32), "PrependInt32")
    tflite.OperatorStart(b)
    tflite.OperatorAddOpcodeIndex(b, 0)
    tflite.OperatorAddInputs(b, op_inputs)
    tflite.OperatorAddOutputs(b, op_outputs)
    tflite.OperatorAddBuiltinOptionsType(b, tflite.BuiltinOptions.DepthwiseConv2DOptions)
    tflite.OperatorAddBuiltinOptions(b, options)
    operator = tflite.OperatorEnd(b)

    tflite.OperatorCodeStart(b)
    tflite.OperatorCodeAddDeprecatedBuiltinCode(b, tflite.BuiltinOperator.DEPTHWISE_CONV_2D)
    tflite.OperatorCodeAddBuiltinCode(b, tflite.BuiltinOperator.DEPTHWISE_CONV_2D)
    tflite.OperatorCodeAddVersion(b, DEPTHWISE_INT8_VERSION)
    opcode = tflite.OperatorCodeEnd(b)
    b.ForceDefaults(False)

    def offsets(start: Callable[[Any, int], Any], items: list[int]) -> int:
        start(b, len(items))
        for item in reversed(items):
            b.PrependUOffsetTRelative(item)
        return b.EndVector()

    sg_tensors = offsets(tflite.SubGraphStartTensorsVector, tensors)
    sg_inputs = _vector(b, tflite.SubGraphStartInputsVector, np.array([0], dtype=np.int32), "PrependInt32")
    sg_outputs = _vector(b, tflite.SubGraphStartOutputsVector, np.array([3], dtype=np.int32), "PrependInt32")
    sg_ops = offsets(tflite.SubGraphStartOperatorsVector, [operator])
    sg_name = b.CreateString("main")
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, sg_tensors)
    tflite.SubGraphAddInputs(b, sg_inputs)
    tflite.SubGraphAddOutputs(b, sg_outputs)
    tflite.SubGraphAddOperators(b, sg_ops)
    tflite.SubGraphAddName(b, sg_name)
    subgraph = tflite.SubGraphEnd(b)

    m_opcodes = offsets(tflite.ModelStartOperatorCodesVector, [opcode])
    m_subgraphs = offsets(tflite.ModelStartSubgraphsVector, [subgraph])
    m_buffers = offsets(tflite.ModelStartBuffersVector, buffers)
    m_desc = b.CreateString(f"dwgen: {ql.layer!r}")
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, SCHEMA_VERSION)
    tflite.ModelAddOperatorCodes(b, m_opcodes)
    tflite.ModelAddSubgraphs(b, m_subgraphs)
    tflite.ModelAddDescription(b, m_desc)
    tflite.ModelAddBuffers(b, m_buffers)
    model = tflite.ModelEnd(b)
    b.Finish(model, file_identifier=FILE_IDENTIFIER)
    return bytes(b.Output())


# -- finding the interpreters ---------------------------------------------------------------
def _load_tflite() -> tuple[Any, str]:
    """(the interpreter module, "pip-name version"), LiteRT first."""
    import importlib
    from importlib.metadata import PackageNotFoundError, version

    errors = []
    for module, pip in (("ai_edge_litert.interpreter", _LITERT_PIP), ("tflite_runtime.interpreter", _TFLITE_RUNTIME_PIP)):
        try:
            mod = importlib.import_module(module)
        except Exception as exc:  # not installed, or built against another numpy (tflite-runtime)
            errors.append(f"{pip}: {type(exc).__name__}: {exc}")
            continue
        try:
            ver = version(pip)
        except PackageNotFoundError:  # pragma: no cover - e.g. a source build
            ver = "unknown"
        return mod, f"{pip} {ver}"
    raise OracleUnavailable(
        f"no TFLite interpreter is installed: pip install {_LITERT_PIP} (numpy 2), or "
        f"{_TFLITE_RUNTIME_PIP} (numpy<2, Python <= 3.11) [{'; '.join(errors)}]"
    )


def _load_tflm() -> tuple[Any, str]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        from tflite_micro.python.tflite_micro import runtime
    except Exception as exc:  # not installed, or a broken install
        raise OracleUnavailable(f"TensorFlow Lite Micro is not installed: pip install {_TFLM_PIP} [{exc}]") from None
    try:
        ver = version(_TFLM_PIP)
    except PackageNotFoundError:  # pragma: no cover
        ver = "unknown"
    return runtime, f"{_TFLM_PIP} {ver}"


def interpreters() -> dict[str, str | None]:
    """What can run the oracle here: {"tflite": "ai-edge-litert 2.3.0" | None, "tflm": ... | None}."""
    found: dict[str, str | None] = {}
    for key, load in (("tflite", _load_tflite), ("tflm", _load_tflm)):
        try:
            found[key] = load()[1]
        except OracleUnavailable:
            found[key] = None
    return found


# -- running --------------------------------------------------------------------------------
def _check_double_rounding(ql: QuantizedLayer, who: str) -> None:
    if ql.quant.rounding != "double":
        raise OracleUnavailable(
            f"{who} is built with double rounding and cannot run a layer with "
            f"rounding={ql.quant.rounding!r} (that needs a build with TFLITE_SINGLE_ROUNDING); "
            "dwgen.reference is the oracle for single rounding"
        )


def _input_nhwc(ql: QuantizedLayer, x: Any) -> np.ndarray:
    return np.ascontiguousarray(to_nhwc(ql, ql.check_input(x)), dtype=np.int8)


def _output(ql: QuantizedLayer, y: np.ndarray) -> np.ndarray:
    g = ql.geometry
    y = np.asarray(y, dtype=np.int8).reshape(g.batch, g.out_h, g.out_w, g.out_c)
    return from_nhwc(ql, y)


def run_tflite(ql: QuantizedLayer, x: Any) -> np.ndarray:
    """Run `ql` on int8 `x` (the layer's own layout) under TFLite's reference kernels."""
    _check_double_rounding(ql, "the TFLite interpreter")
    x_nhwc = _input_nhwc(ql, x)
    model = write_model(ql)
    mod, _ = _load_tflite()
    interp = mod.Interpreter(
        model_content=model,
        experimental_op_resolver_type=mod.OpResolverType.BUILTIN_REF,
    )
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x_nhwc)
    interp.invoke()
    return _output(ql, interp.get_tensor(interp.get_output_details()[0]["index"]))


def tflm_arena_size(ql: QuantizedLayer) -> int:
    """A tensor arena that fits the model under TFLite Micro.

    TFLM places the input and output tensors, the per-channel multipliers and shifts
    (2 x int32 per output channel) and its own bookkeeping (a few KB for one op) in the
    arena; the weights and bias stay in the model. Measured with `print_allocations`:
    the overhead is under 2 KB for this model, 16 KB leaves ample room.
    """
    g = ql.geometry

    def aligned(n: int) -> int:
        return (n + 15) // 16 * 16

    return aligned(g.input_size) + aligned(g.output_size) + aligned(8 * g.out_c) + 16 * 1024


def run_tflm(ql: QuantizedLayer, x: Any) -> np.ndarray:
    """Run `ql` on int8 `x` (the layer's own layout) under TensorFlow Lite Micro."""
    _check_double_rounding(ql, "TensorFlow Lite Micro")
    x_nhwc = _input_nhwc(ql, x)
    model = write_model(ql)
    runtime, _ = _load_tflm()
    interp = runtime.Interpreter.from_bytes(model, arena_size=tflm_arena_size(ql))
    interp.set_input(x_nhwc, 0)
    interp.invoke()
    return _output(ql, interp.get_output(0))


__all__ = [
    "DEPTHWISE_INT8_VERSION", "FILE_IDENTIFIER", "interpreters", "run_tflite", "run_tflm",
    "tflm_arena_size", "write_model",
]
