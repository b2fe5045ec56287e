"""The numpy reference is bit-exact with TFLite (reference kernels) and TFLite Micro.

The sweeps are seeded (each config has its own fixed seed), so every run and every CI
machine checks the same layers; a failing config is reproducible from its id alone:
`make_config(i)`. Sizes are kept small so the whole file runs in seconds.

Environment knobs (for quick runs, e.g. .ci/legacy-oracle.sh):
  DWGEN_ORACLE_CONFIGS  number of configs against TFLite       (default 200)
  DWGEN_TFLM_CONFIGS    number of configs against TFLite Micro (default 60)
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest

from dwgen import DepthwiseConv1D, DepthwiseConv2D, DepthwiseLayer, Quantization, QuantizedLayer
from dwgen.errors import OracleUnavailable
from dwgen.oracle import interpreters, run_tflite, run_tflm, write_model
from dwgen.reference import depthwise_conv as reference

N_TFLITE = int(os.environ.get("DWGEN_ORACLE_CONFIGS", "200"))
N_TFLM = int(os.environ.get("DWGEN_TFLM_CONFIGS", "60"))
#: The coverage self-check always looks at this many configs (independent of the knobs).
N_COVERAGE = 200
TFLM_SEED_OFFSET = 100_000

ACTIVATIONS = ("none", "relu", "relu6", "relu_n1_to_1")
LAYOUTS = ("nhwc", "nchw", "1d", "1d_cf")


def _tflite_available() -> str | None:
    return interpreters()["tflite"]


def _tflm_available() -> str | None:
    return interpreters()["tflm"]


needs_tflite = pytest.mark.skipif(
    _tflite_available() is None,
    reason="no TFLite interpreter: pip install ai-edge-litert (or tflite-runtime with numpy<2)",
)
needs_tflm = pytest.mark.skipif(
    _tflm_available() is None, reason="TensorFlow Lite Micro is not installed: pip install tflite-micro"
)


# -- the randomized configurations ----------------------------------------------------------
@dataclass
class Config:
    ql: QuantizedLayer
    x: np.ndarray
    real: np.ndarray  # the effective scales in*w/out, per output channel
    desc: str


def _zero_point(rng: np.random.Generator) -> int:
    u = rng.random()
    if u < 0.12:
        return -128
    if u < 0.2:
        return 127
    return int(rng.integers(-128, 128))


def _axis_size(rng: np.random.Generator, k: int, s: int, d: int, padding: str) -> int:
    eff = (k - 1) * d + 1
    if padding == "valid":
        return eff + int(rng.integers(0, 2 * s + 3))
    return int(rng.integers(1, eff + 2 * s + 3))  # SAME: smaller than the kernel too


def make_config(seed: int) -> Config:
    """One random layer + quantization + input, fully determined by `seed`."""
    rng = np.random.default_rng([20240601, seed])
    layout = LAYOUTS[int(rng.choice(4, p=[0.45, 0.2, 0.2, 0.15]))]
    rank = 1 if layout.startswith("1d") else 2
    data_format = "channels_first" if layout in ("nchw", "1d_cf") else "channels_last"
    activation = ACTIVATIONS[seed % 4]
    padding = ("same", "valid")[(seed // 4) % 2]

    def stride() -> int:
        return int(rng.choice([1, 2, 3], p=[0.5, 0.3, 0.2]))

    def dilation() -> int:
        return int(rng.choice([1, 2, 3], p=[0.55, 0.25, 0.2]))

    kw, sw, dw = int(rng.integers(1, 8)), stride(), dilation()
    if rank == 1:
        kh = sh = dh = 1
    else:
        kh, sh, dh = int(rng.integers(1, 8)), stride(), dilation()
    c = int(rng.integers(1, 41))
    m = int(rng.integers(1, 5))
    oc = c * m
    batch = int(rng.integers(1, 3))
    h = 1 if rank == 1 else _axis_size(rng, kh, sh, dh, padding)
    w = _axis_size(rng, kw, sw, dw, padding)
    use_bias = rng.random() > 0.1

    # The Keras classes where Keras allows the configuration, the permissive class
    # (what a .tflite reader builds) for strided+dilated layers and RELU_N1_TO_1.
    strided_dilated = max(sh, sw) > 1 and max(dh, dw) > 1
    if strided_dilated or activation == "relu_n1_to_1":
        layer = DepthwiseLayer(
            kernel_size=(kh, kw), strides=(sh, sw), padding=padding, depth_multiplier=m,
            data_format=data_format, dilation_rate=(dh, dw), activation=activation,
            use_bias=use_bias, rank=rank,
        )
    else:
        keras_act = {"none": None if rng.random() < 0.5 else "linear"}.get(activation, activation)
        if rank == 1:
            layer = DepthwiseConv1D(
                kw, strides=sw, padding=padding.upper() if rng.random() < 0.3 else padding,
                depth_multiplier=m, data_format=data_format, dilation_rate=dw,
                activation=keras_act, use_bias=use_bias,
            )
        else:
            layer = DepthwiseConv2D(
                (kh, kw), strides=(sh, sw), padding=padding, depth_multiplier=m,
                data_format=data_format, dilation_rate=(dh, dw), activation=keras_act,
                use_bias=use_bias,
            )
    if rank == 1:
        input_shape = (batch, c, w) if data_format == "channels_first" else (batch, w, c)
    else:
        input_shape = (batch, c, h, w) if data_format == "channels_first" else (batch, h, w, c)

    # Weights: a different magnitude per output channel (occasionally an all-zero one).
    amp = rng.integers(0, 128, size=oc) if rng.random() < 0.1 else rng.integers(1, 128, size=oc)
    weights = (rng.uniform(-1, 1, size=(kh, kw, oc)) * (amp + 0.5)).round().clip(-127, 127).astype(np.int8)
    per_channel = rng.random() < 0.75
    in_zp, out_zp = _zero_point(rng), _zero_point(rng)

    # Bias (in accumulator units): realistic random values, sometimes re-centering the
    # zero-point offset as a trained model's bias tends to.
    wsum = weights.reshape(kh * kw, oc).astype(np.int64)
    acc_std = 74.0 * np.sqrt((wsum**2).sum(axis=0)) + 1.0  # x - in_zp has std ~74
    bias = None
    acc_mean = -(in_zp + 0.5) * wsum.sum(axis=0)
    if use_bias:
        b = rng.normal(0, 2 * acc_std)
        if rng.random() < 0.3:
            b = b + in_zp * wsum.sum(axis=0)
        bias = np.clip(np.round(b), -(2**24), 2**24).astype(np.int32)
        acc_mean = acc_mean + bias

    # Effective scales in*w/out: "fit" spreads the outputs over the int8 range; "wide"
    # draws log-uniform multipliers from tiny to 16 (positive shifts up to 4); "extreme"
    # reaches the flush-to-zero limit (shift -31 and below).
    mode = str(rng.choice(["fit", "wide", "extreme"], p=[0.6, 0.3, 0.1]))
    n_real = oc if per_channel else 1
    if mode == "fit":
        span = np.abs(acc_mean) + 2 * acc_std
        real = 96.0 / (span if per_channel else span.max(keepdims=True))
        real = real * 2.0 ** rng.uniform(-1.5, 1.5, size=n_real)
    elif mode == "wide":
        real = 2.0 ** rng.uniform(-20, 4, size=n_real)
    else:
        real = 2.0 ** rng.uniform(-34, -3, size=n_real)
    # The output scale is what the activation's range suggests (so its clamp bounds land
    # inside the int8 range), varied; without one, anything.
    natural = {"relu6": 6 / 255, "relu_n1_to_1": 2 / 255, "relu": 2.0**-4}.get(activation)
    log_out = rng.uniform(-8, 0) if natural is None else np.log2(natural) + rng.uniform(-1.5, 1.5)
    out_scale = float(np.float32(2.0**log_out))
    in_scale = float(np.float32(2.0 ** rng.uniform(-9, -1)))
    w_scales = (real * out_scale / in_scale).astype(np.float32)
    quant = Quantization.from_scales(in_scale, in_zp, w_scales, out_scale, out_zp, oc)

    keras_shape = (kw, c, m) if rank == 1 else (kh, kw, c, m)
    ql = QuantizedLayer.create(layer, input_shape, quant, weights.reshape(keras_shape), bias)
    x = ql.random_input(rng)
    real_full = np.array(
        [float(np.float32(in_scale)) * float(s) / float(np.float32(out_scale)) for s in quant.weight_scales]
    )
    desc = (
        f"seed={seed} {layout} {layer!r} input={input_shape} in_zp={in_zp} out_zp={out_zp} "
        f"{'per-channel' if per_channel else 'per-tensor'} mode={mode} "
        f"shifts=[{min(quant.shifts)}, {max(quant.shifts)}]"
    )
    return Config(ql=ql, x=x, real=real_full, desc=desc)


def _assert_same(got: np.ndarray, want: np.ndarray, desc: str, who: str) -> None:
    assert got.shape == want.shape, f"{who}: shape {got.shape} != reference {want.shape} ({desc})"
    assert got.dtype == np.int8, f"{who}: dtype {got.dtype} ({desc})"
    if not np.array_equal(got, want):
        bad = np.argwhere(got != want)
        first = tuple(bad[0])
        diff = got.astype(int) - want.astype(int)
        pytest.fail(
            f"{who} != reference on {len(bad)} of {want.size} outputs, first at {first}: "
            f"{who}={got[first]} reference={want[first]}, max |diff|={np.abs(diff).max()}\n{desc}"
        )


# -- the sweeps -----------------------------------------------------------------------------
@needs_tflite
@pytest.mark.parametrize("seed", range(N_TFLITE))
def test_reference_matches_tflite(seed: int) -> None:
    cfg = make_config(seed)
    _assert_same(run_tflite(cfg.ql, cfg.x), reference(cfg.ql, cfg.x), cfg.desc, "TFLite")


@needs_tflm
@pytest.mark.parametrize("seed", range(TFLM_SEED_OFFSET, TFLM_SEED_OFFSET + N_TFLM))
def test_reference_matches_tflm(seed: int) -> None:
    cfg = make_config(seed)
    _assert_same(run_tflm(cfg.ql, cfg.x), reference(cfg.ql, cfg.x), cfg.desc, "TFLM")


def test_sweep_covers_the_space() -> None:
    """The seeded configs really exercise everything the sweep claims to."""
    cfgs = [make_config(i) for i in range(N_COVERAGE)]
    gs = [c.ql.geometry for c in cfgs]
    seen = lambda f: {f(c, g) for c, g in zip(cfgs, gs)}  # noqa: E731
    assert seen(lambda c, g: g.kernel_h) >= set(range(1, 8))
    assert seen(lambda c, g: g.kernel_w) >= set(range(1, 8))
    assert any(g.kernel_h != g.kernel_w and g.rank == 2 for g in gs)
    assert seen(lambda c, g: g.stride_h) >= {1, 2, 3} and seen(lambda c, g: g.stride_w) >= {1, 2, 3}
    assert seen(lambda c, g: g.dilation_h) >= {1, 2, 3} and seen(lambda c, g: g.dilation_w) >= {1, 2, 3}
    assert sum(max(g.stride_h, g.stride_w) > 1 and max(g.dilation_h, g.dilation_w) > 1 for g in gs) >= 10
    assert seen(lambda c, g: g.depth_multiplier) == {1, 2, 3, 4}
    assert seen(lambda c, g: g.in_c % 2) == {0, 1} and 1 in seen(lambda c, g: g.in_c)
    assert max(g.in_c for g in gs) >= 38
    assert seen(lambda c, g: g.batch) == {1, 2}
    assert seen(lambda c, g: c.ql.layer.padding) == {"same", "valid"}
    assert seen(lambda c, g: c.ql.layer.activation) == set(ACTIVATIONS)
    assert seen(lambda c, g: (g.rank, g.data_format)) == {
        (1, "channels_last"), (1, "channels_first"), (2, "channels_last"), (2, "channels_first")
    }
    assert any(g.in_h < g.kernel_h or g.in_w < g.kernel_w for g in gs)  # SAME smaller than the kernel
    zps = seen(lambda c, g: c.ql.quant.input_zero_point) | seen(lambda c, g: c.ql.quant.output_zero_point)
    assert {-128, 127} <= zps and len(zps) > 100
    assert seen(lambda c, g: c.ql.quant.per_channel) == {True, False}
    shifts = [s for c in cfgs for s in c.ql.quant.shifts]
    assert max(shifts) >= 3 and min(shifts) <= -20 and 0 in shifts
    assert sum(1 for c in cfgs for r in c.real if r > 1.0) > 50  # multipliers > 1
    assert any(m == 0 for c in cfgs for m in c.ql.quant.multipliers)  # flushed to zero
    assert sum(not c.ql.layer.use_bias for c in cfgs) > 5
    assert sum(type(c.ql.layer) is DepthwiseLayer for c in cfgs) > 40
    assert sum(type(c.ql.layer) is not DepthwiseLayer for c in cfgs) > 80
    # The outputs are not trivially saturated: most configs produce many distinct values,
    # and the activations clamp in a real share of them.
    outs = [reference(c.ql, c.x) for c in cfgs]
    assert sum(np.unique(y).size >= min(16, y.size // 2) for y in outs) > N_COVERAGE * 0.6
    clamped = [c for c in cfgs if c.ql.layer.activation != "none" and c.ql.act_min > -128]
    assert len(clamped) > 60
    assert sum(c.ql.act_max < 127 for c in cfgs) > 20


# -- fixed cases ----------------------------------------------------------------------------
def _mobilenet_like(shape=(1, 112, 112, 32), seed: int = 7, rounding: str = "double", activation="relu6"):
    rng = np.random.default_rng(seed)
    c = shape[-1]
    layer = DepthwiseConv2D(3, padding="same", activation=activation)
    kernel = rng.normal(0, 0.3, size=(3, 3, c, 1)).astype(np.float32)
    bias = rng.normal(0, 0.5, size=c)
    return QuantizedLayer.from_float(
        layer, shape, kernel, bias, input_scale=0.0235, input_zero_point=-128,
        output_scale=0.0235, output_zero_point=-128, rounding=rounding,
    )


@needs_tflite
def test_large_layer_matches_tflite() -> None:
    ql = _mobilenet_like()
    x = ql.random_input(3)
    _assert_same(run_tflite(ql, x), reference(ql, x), "112x112x32 3x3 SAME relu6", "TFLite")


@needs_tflite
def test_strided_same_pads_bottom_right() -> None:
    """Stride-2 SAME on an even input pads 0 top/left and 1 bottom/right (TFLite's SAME padding)."""
    layer = DepthwiseConv2D(3, strides=2, padding="same")
    ql = QuantizedLayer.create(
        layer, (1, 6, 6, 1), Quantization.from_scales(1.0, 0, 1.0, 1.0, 0, 1),
        np.ones((3, 3, 1, 1), dtype=np.int8),
    )
    assert (ql.geometry.pad_top, ql.geometry.pad_bottom) == (0, 1)
    x = np.ones((1, 6, 6, 1), dtype=np.int8)
    got = run_tflite(ql, x)
    _assert_same(got, reference(ql, x), "stride-2 SAME", "TFLite")
    assert got[0, :, :, 0].tolist() == [[9, 9, 6], [9, 9, 6], [6, 6, 4]]


def test_model_fields() -> None:
    """Read the written model back with the `tflite` package: every field TFLite reads for the op."""
    import tflite

    layer = DepthwiseLayer(
        kernel_size=(3, 2), strides=(2, 3), padding="same", depth_multiplier=3,
        dilation_rate=(2, 3), activation="relu_n1_to_1",
    )
    c, m = 5, 3
    rng = np.random.default_rng(1)
    w_scales = rng.uniform(0.001, 0.01, size=c * m).astype(np.float32)
    quant = Quantization.from_scales(0.05, -7, w_scales, 0.02, 11, c * m)
    weights = rng.integers(-127, 128, size=(3, 2, c, m)).astype(np.int8)
    bias = rng.integers(-1000, 1000, size=c * m).astype(np.int32)
    ql = QuantizedLayer.create(layer, (2, 11, 13, c), quant, weights, bias)
    data = write_model(ql)

    assert data[4:8] == b"TFL3"
    assert tflite.Model.ModelBufferHasIdentifier(data, 0)
    model = tflite.Model.GetRootAs(data, 0)
    assert model.Version() == 3
    assert model.BuffersLength() == 5 and model.Buffers(0).DataLength() == 0
    assert model.OperatorCodesLength() == 1
    opc = model.OperatorCodes(0)
    assert opc.BuiltinCode() == tflite.BuiltinOperator.DEPTHWISE_CONV_2D == 4
    assert opc.DeprecatedBuiltinCode() == 4
    assert opc.Version() == 3
    assert model.SubgraphsLength() == 1
    sg = model.Subgraphs(0)
    assert sg.InputsAsNumpy().tolist() == [0] and sg.OutputsAsNumpy().tolist() == [3]
    assert sg.OperatorsLength() == 1
    op = sg.Operators(0)
    assert op.OpcodeIndex() == 0
    assert op.InputsAsNumpy().tolist() == [0, 1, 2] and op.OutputsAsNumpy().tolist() == [3]
    assert op.BuiltinOptionsType() == tflite.BuiltinOptions.DepthwiseConv2DOptions
    opts = tflite.DepthwiseConv2DOptions()
    opts.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
    # Every field present in the table (not left to schema defaults)...
    for vtable_offset in range(4, 18, 2):  # padding .. dilation_h_factor
        assert opts._tab.Offset(vtable_offset) != 0, f"field at vtable offset {vtable_offset} not written"
    # ... with the layer's values.
    assert opts.Padding() == tflite.Padding.SAME
    assert (opts.StrideH(), opts.StrideW()) == (2, 3)
    assert (opts.DilationHFactor(), opts.DilationWFactor()) == (2, 3)
    assert opts.DepthMultiplier() == 3
    assert opts.FusedActivationFunction() == tflite.ActivationFunctionType.RELU_N1_TO_1

    g = ql.geometry
    tin, tw, tb, tout = (sg.Tensors(i) for i in range(4))
    assert tin.ShapeAsNumpy().tolist() == [2, 11, 13, 5] and tin.Type() == tflite.TensorType.INT8
    assert tout.ShapeAsNumpy().tolist() == [2, g.out_h, g.out_w, 15] == [2, 6, 5, 15]
    assert tout.Type() == tflite.TensorType.INT8
    assert tw.ShapeAsNumpy().tolist() == [1, 3, 2, 15] and tw.Type() == tflite.TensorType.INT8
    assert tb.ShapeAsNumpy().tolist() == [15] and tb.Type() == tflite.TensorType.INT32
    for t in (tin, tout):
        assert model.Buffers(t.Buffer()).DataLength() == 0
    wbuf = model.Buffers(tw.Buffer()).DataAsNumpy().view(np.int8).reshape(3, 2, 15)
    np.testing.assert_array_equal(wbuf, ql.weights)
    bbuf = model.Buffers(tb.Buffer()).DataAsNumpy().view("<i4")
    np.testing.assert_array_equal(bbuf, bias)

    qin, qw, qb, qout = (t.Quantization() for t in (tin, tw, tb, tout))
    assert qin.ScaleAsNumpy().tolist() == [np.float32(0.05)] and qin.ZeroPointAsNumpy().tolist() == [-7]
    assert qout.ScaleAsNumpy().tolist() == [np.float32(0.02)] and qout.ZeroPointAsNumpy().tolist() == [11]
    np.testing.assert_array_equal(qw.ScaleAsNumpy(), w_scales)
    assert qw.ZeroPointAsNumpy().dtype == np.int64 and qw.ZeroPointAsNumpy().tolist() == [0] * 15
    assert qw.QuantizedDimension() == 3
    np.testing.assert_array_equal(qb.ScaleAsNumpy(), (np.float32(0.05) * w_scales).astype(np.float32))
    assert qb.ZeroPointAsNumpy().tolist() == [0] * 15

    # Per-tensor: one scale, one zero point; no bias (use_bias=False) still writes a zero bias.
    layer1 = DepthwiseConv2D(3, use_bias=False)
    q1 = Quantization.from_scales(0.05, 0, 0.003, 0.02, 0, 4)
    ql1 = QuantizedLayer.create(layer1, (1, 5, 5, 4), q1, np.ones((3, 3, 4, 1), dtype=np.int8))
    m1 = tflite.Model.GetRootAs(write_model(ql1), 0)
    sg1 = m1.Subgraphs(0)
    assert sg1.Operators(0).InputsAsNumpy().tolist() == [0, 1, 2]
    qw1 = sg1.Tensors(1).Quantization()
    assert qw1.ScaleAsNumpy().tolist() == [np.float32(0.003)] and qw1.ZeroPointAsNumpy().tolist() == [0]
    assert qw1.QuantizedDimension() == 3
    assert m1.Buffers(sg1.Tensors(2).Buffer()).DataAsNumpy().view("<i4").tolist() == [0] * 4
    opts1 = tflite.DepthwiseConv2DOptions()
    op1 = sg1.Operators(0).BuiltinOptions()
    opts1.Init(op1.Bytes, op1.Pos)
    assert opts1.Padding() == tflite.Padding.VALID and opts1.FusedActivationFunction() == 0
    assert (opts1.StrideH(), opts1.StrideW(), opts1.DilationHFactor(), opts1.DilationWFactor()) == (1, 1, 1, 1)
    assert opts1.DepthMultiplier() == 1


@needs_tflite
def test_layouts_round_trip_through_the_nhwc_model() -> None:
    """channels_first and 1-D layers: callers pass and get data in the layer's own layout."""
    rng = np.random.default_rng(5)
    for layer, shape, out_shape in (
        (DepthwiseConv2D(3, data_format="channels_first", depth_multiplier=2), (1, 3, 6, 5), (1, 6, 4, 3)),
        (DepthwiseConv1D(3, padding="same"), (2, 7, 4), (2, 7, 4)),
        (DepthwiseConv1D(2, data_format="channels_first", strides=2), (1, 3, 9), (1, 3, 4)),
    ):
        g = layer.geometry(shape)
        quant = Quantization.from_scales(0.1, 3, 0.01, 0.05, -2, g.out_c)
        keras_shape = (3, 3, 3, 2) if g.rank == 2 else (g.kernel_w, g.in_c, 1)
        ql = QuantizedLayer.create(layer, shape, quant, rng.integers(-127, 128, size=keras_shape).astype(np.int8))
        x = ql.random_input(rng)
        got = run_tflite(ql, x)
        assert got.shape == out_shape == ql.geometry.output_shape
        _assert_same(got, reference(ql, x), repr(layer), "TFLite")


# -- edge cases the random sweep rarely reaches ----------------------------------------------
def _edge_layer(activation: str, in_scale: float, w_scale: float | list, out_scale: float, out_zp: int = 0,
                bias: np.ndarray | None = None, weights: np.ndarray | None = None, seed: int = 0):
    rng = np.random.default_rng(seed)
    c = 4
    layer = DepthwiseLayer(kernel_size=(3, 3), padding="same", activation=activation)
    quant = Quantization.from_scales(in_scale, 5, w_scale, out_scale, out_zp, c)
    if weights is None:
        weights = rng.integers(-127, 128, size=(3, 3, c)).astype(np.int8)
    ql = QuantizedLayer.create(layer, (1, 8, 8, c), quant, weights, bias)
    return ql, ql.random_input(rng)


def _edge_cases() -> dict:
    one_below = float(np.float32(1 - 2**-23))
    one_above = float(np.float32(1 + 2**-23))
    acc_unit = 10.0 / (74 * 3 * 64)  # outputs spread over about +-10
    rng = np.random.default_rng(99)
    return {
        # float32 6/2.4000001 == 2.5 exactly (rounds to 3); in double it is 2.4999999 (2).
        "relu6 bound in float32": dict(
            ql=_edge_layer("relu6", 0.5, 2.4000000953674316 * acc_unit / 0.5 * 4, 2.4000000953674316),
            bounds=(0, 3)),
        # float32 1/0.4 == 2.5 (3) and -1/0.4 == -2.5 (-3); double gives 2 and -2.
        "relu_n1_to_1 bound in float32": dict(
            ql=_edge_layer("relu_n1_to_1", 0.5, 0.4000000059604645 * acc_unit / 0.5 * 4, 0.4000000059604645),
            bounds=(-3, 3)),
        # in*w/out = 1 - 2^-46: q * 2^31 rounds up to 2^31, renormalized to (2^30, shift 1).
        "multiplier rounds up to 2^31": dict(
            ql=_edge_layer("none", one_above, one_below, 1.0,
                           weights=rng.integers(-1, 2, size=(3, 3, 4)).astype(np.int8)),
            mult=(1 << 30, 1)),
        "multiplier rounds up to 2^31, right shift": dict(
            ql=_edge_layer("none", one_above, one_below * 2**-12, 1.0), mult=(1 << 30, -11)),
        # |bias| close to 2^31 (no wrap: the taps add at most 9*127*255 < 2^21).
        "bias near the int32 limit": dict(
            ql=_edge_layer("none", 0.5, 2**-25 * 0.5, 0.5 * 0.5,
                           bias=np.array([2**31 - 2**21, -(2**31) + 2**21, 2**30 + 12345, -(2**29)], dtype=np.int32))),
        # int8 weights may hold -128 (TFLite's converter never writes it, the kernel accepts it).
        "weight -128": dict(
            ql=_edge_layer("none", 0.5, acc_unit * 4, 0.5,
                           weights=np.full((3, 3, 4), -128, dtype=np.int8))),
        # effective scales just above and below 2^-32: shift -31 (kept) and flush to (0, 0).
        "shift -31 and flush": dict(
            ql=_edge_layer("none", 0.5, [1.5 * 2**-32, 2**-32, 1.99 * 2**-33, 2**-34], 0.5,
                           bias=np.full(4, 2**31 - 2**21, dtype=np.int32)),
            mult=[(3 << 29, -31), (1 << 30, -31), (0, 0), (0, 0)]),
    }


EDGE_CASES = list(_edge_cases())


@pytest.mark.parametrize("name", EDGE_CASES)
@pytest.mark.parametrize("runner", ["tflite", "tflm"])
def test_edge_cases(name: str, runner: str) -> None:
    if interpreters()[runner] is None:
        pytest.skip(f"{runner} is not installed")
    case = _edge_cases()[name]
    ql, x = case["ql"]
    if "bounds" in case:
        assert (ql.act_min, ql.act_max) == case["bounds"]  # the float32 bounds, not double
    if "mult" in case:
        want_mult = case["mult"] if isinstance(case["mult"], list) else [case["mult"]] * 4
        assert list(zip(ql.quant.multipliers, ql.quant.shifts)) == want_mult
    want = reference(ql, x)
    if "bounds" in case:  # the clamp really decides some outputs
        assert (want == ql.act_max).any() and (want == ql.act_min).any()
    got = (run_tflite if runner == "tflite" else run_tflm)(ql, x)
    _assert_same(got, want, name, runner)


# -- rounding modes -------------------------------------------------------------------------
def test_single_rounding_differs_by_at_most_one() -> None:
    ql = _mobilenet_like(shape=(1, 32, 32, 32), activation=None)
    x = ql.random_input(11)
    double = reference(ql, x).astype(int)
    single = reference(ql.with_rounding("single"), x).astype(int)
    diff = single - double
    assert np.abs(diff).max() == 1
    assert 0 < np.count_nonzero(diff) < diff.size // 20


def test_single_rounding_is_refused_by_the_interpreters() -> None:
    ql = _mobilenet_like(shape=(1, 4, 4, 2), rounding="single")
    x = ql.random_input(0)
    with pytest.raises(OracleUnavailable, match="single"):
        run_tflite(ql, x)
    with pytest.raises(OracleUnavailable, match="single"):
        run_tflm(ql, x)


# -- what cannot be written or run ----------------------------------------------------------
def test_from_multipliers_has_no_model() -> None:
    layer = DepthwiseConv2D(3)
    quant = Quantization.from_multipliers([1 << 30] * 2, [-5] * 2, 0, 0)
    ql = QuantizedLayer.create(layer, (1, 4, 4, 2), quant, np.ones((3, 3, 2, 1), dtype=np.int8))
    with pytest.raises(OracleUnavailable, match="from_multipliers"):
        write_model(ql)
    with pytest.raises(OracleUnavailable, match="from_multipliers"):
        run_tflite(ql, ql.random_input(0))


def test_missing_interpreters_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    ql = _mobilenet_like(shape=(1, 4, 4, 2))
    for name in ("ai_edge_litert", "ai_edge_litert.interpreter", "tflite_runtime", "tflite_runtime.interpreter"):
        monkeypatch.setitem(sys.modules, name, None)  # makes `import name` fail
    with pytest.raises(OracleUnavailable) as err:
        run_tflite(ql, ql.random_input(0))
    assert "ai-edge-litert" in str(err.value) and "tflite-runtime" in str(err.value)
    for name in ("tflite_micro", "tflite_micro.python", "tflite_micro.python.tflite_micro",
                 "tflite_micro.python.tflite_micro.runtime"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(OracleUnavailable, match="tflite-micro"):
        run_tflm(ql, ql.random_input(0))
    assert interpreters() == {"tflite": None, "tflm": None}


def test_interpreters_report() -> None:
    found = interpreters()
    assert set(found) == {"tflite", "tflm"}
    if found["tflite"] is not None:
        assert found["tflite"].split()[0] in ("ai-edge-litert", "tflite-runtime")
    if found["tflm"] is not None:
        assert found["tflm"].startswith("tflite-micro ")


def test_importing_dwgen_does_not_load_an_interpreter() -> None:
    code = (
        "import sys, dwgen, dwgen.oracle\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in "
        "('ai_edge_litert', 'tflite_runtime', 'tflite_micro', 'tensorflow')]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
