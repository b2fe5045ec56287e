"""QuantizedLayer: weight layouts, bias, multipliers, inputs, from_float, errors."""

from __future__ import annotations

import re

import numpy as np
import pytest

from dwgen.errors import LayerError, QuantizationError
from dwgen.layer import DepthwiseConv1D, DepthwiseConv2D, DepthwiseLayer
from dwgen.qlayer import QuantizedLayer
from dwgen.quant import (
    INT32_MAX,
    INT32_MIN,
    Quantization,
    effective_scale,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
)

f32 = np.float32


def raises(msg: str, exc=QuantizationError):
    return pytest.raises(exc, match="^" + re.escape(msg) + "$")


def _quant(oc: int, **kw) -> Quantization:
    return Quantization.from_scales(0.05, -3, [0.01 * (1 + c % 5) for c in range(oc)], 0.1, 4, oc, **kw)


# ---------------------------------------------------------------------------------------
# Weight layouts
# ---------------------------------------------------------------------------------------
class TestWeightLayouts:
    def test_2d_layouts_agree(self):
        kh, kw, c, m = 3, 2, 3, 2  # non-square so a transposition would show
        layer = DepthwiseConv2D((kh, kw), depth_multiplier=m, padding="same")
        rng = np.random.default_rng(0)
        w4 = rng.integers(-128, 128, (kh, kw, c, m)).astype(np.int8)
        q = _quant(c * m)
        forms = {
            "keras [kh,kw,C,M]": w4,
            "[kh,kw,C*M]": w4.reshape(kh, kw, c * m),
            "tflite [1,kh,kw,C*M]": w4.reshape(1, kh, kw, c * m),
        }
        got = {name: QuantizedLayer.create(layer, (6, 5, c), q, w).weights for name, w in forms.items()}
        for name, w in got.items():
            assert w.shape == (kh, kw, c * m) and w.dtype == np.int8, name
        for ky in range(kh):
            for kx in range(kw):
                for ic in range(c):
                    for mm in range(m):
                        for name, w in got.items():
                            assert w[ky, kx, ic * m + mm] == w4[ky, kx, ic, mm], name

    def test_1d_layouts_agree(self):
        k, c, m = 5, 4, 3
        layer = DepthwiseConv1D(k, depth_multiplier=m)
        rng = np.random.default_rng(1)
        w3 = rng.integers(-128, 128, (k, c, m)).astype(np.int8)
        q = _quant(c * m)
        forms = [
            w3,                               # Keras DepthwiseConv1D kernel [k, C, M]
            w3.reshape(k, c * m),
            w3.reshape(1, k, c, m),           # as a 2-D Keras kernel with kh = 1
            w3.reshape(1, k, c * m),
            w3.reshape(1, 1, k, c * m),       # TFLite filter
        ]
        for w in forms:
            ql = QuantizedLayer.create(layer, (20, c), q, w)
            assert ql.weights.shape == (1, k, c * m)
            for kx in range(k):
                for ic in range(c):
                    for mm in range(m):
                        assert ql.weights[0, kx, ic * m + mm] == w3[kx, ic, mm]

    @pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8])
    def test_integer_dtypes_accepted(self, dtype):
        layer = DepthwiseConv2D(3)
        w = np.arange(-40, 41, 10).reshape(3, 3, 1)
        if dtype == np.uint8:
            w = np.abs(w)
        ql = QuantizedLayer.create(layer, (5, 5, 1), _quant(1), w.astype(dtype))
        assert ql.weights.dtype == np.int8
        assert ql.weights[..., 0].tolist() == w[..., 0].tolist()

    def test_python_lists(self):
        layer = DepthwiseConv2D(1, depth_multiplier=2)
        ql = QuantizedLayer.create(layer, (2, 2, 2), _quant(4), [[[[1, -2], [3, -4]]]], [5, 6, 7, 8])
        assert ql.weights.tolist() == [[[1, -2, 3, -4]]]
        assert ql.bias.tolist() == [5, 6, 7, 8] and ql.bias.dtype == np.int32

    def test_arrays_are_read_only_copies(self):
        w = np.ones((3, 3, 2), dtype=np.int8)
        b = np.array([1, 2], dtype=np.int32)
        ql = QuantizedLayer.create(DepthwiseConv2D(3), (4, 4, 2), _quant(2), w, b)
        with pytest.raises(ValueError):
            ql.weights[0, 0, 0] = 5
        with pytest.raises(ValueError):
            ql.bias[0] = 5


# ---------------------------------------------------------------------------------------
# Bias, multipliers, activation bounds
# ---------------------------------------------------------------------------------------
class TestBiasAndMultipliers:
    def test_no_bias_is_zero(self):
        ql = QuantizedLayer.create(DepthwiseConv2D(3, depth_multiplier=2), (4, 4, 3), _quant(6),
                                   np.zeros((3, 3, 3, 2), np.int8))
        assert ql.bias.dtype == np.int32 and ql.bias.tolist() == [0] * 6

    def test_bias_extremes(self):
        b = np.array([INT32_MIN, INT32_MAX], dtype=np.int64)
        ql = QuantizedLayer.create(DepthwiseConv2D(1), (2, 2, 2), _quant(2), np.zeros((1, 1, 2), np.int8), b)
        assert ql.bias.tolist() == [INT32_MIN, INT32_MAX] and ql.bias.dtype == np.int32

    def test_use_bias_false_accepts_zero_bias(self):
        layer = DepthwiseConv2D(1, use_bias=False)
        ql = QuantizedLayer.create(layer, (2, 2, 2), _quant(2), np.ones((1, 1, 2), np.int8), [0, 0])
        assert ql.bias.tolist() == [0, 0]

    def test_per_tensor_multiplier_replicated(self):
        layer = DepthwiseConv2D(3, depth_multiplier=3)
        q = Quantization.from_multipliers([1234567890], [-7], 1, 2, output_scale=0.1)
        ql = QuantizedLayer.create(layer, (5, 5, 2), q, np.ones((3, 3, 2, 3), np.int8))
        assert ql.quant.multipliers == (1234567890,) * 6
        assert ql.quant.shifts == (-7,) * 6
        assert ql.quant.num_channels == 6
        assert (ql.quant.input_zero_point, ql.quant.output_zero_point) == (1, 2)
        assert ql.quant.output_scale == float(f32(0.1))

    def test_per_tensor_scale_for_one_channel_replicated(self):
        q = Quantization.from_scales(0.05, 0, 0.02, 0.1, 0, 1)
        ql = QuantizedLayer.create(DepthwiseConv2D(3), (5, 5, 4), q, np.ones((3, 3, 4), np.int8))
        assert ql.quant.num_channels == 4
        assert ql.quant.multipliers == q.multipliers * 4 and ql.quant.shifts == q.shifts * 4
        # and it still switches rounding mode with all four channels
        assert ql.with_rounding("single").quant.num_channels == 4

    def test_act_bounds(self):
        w = np.ones((3, 3, 2), np.int8)
        q = Quantization.from_scales(0.05, 0, [0.01, 0.02], 0.05, -128, 2)
        for act, want in [("none", (-128, 127)), ("relu", (-128, 127)), ("relu6", (-128, -8)),
                          ("relu_n1_to_1", (-128, -108))]:
            ql = QuantizedLayer.create(DepthwiseLayer((3, 3), activation=act), (4, 4, 2), q, w)
            assert (ql.act_min, ql.act_max) == want, act
        ql = QuantizedLayer.create(DepthwiseConv2D(3, activation="relu6"), (4, 4, 2),
                                   Quantization.from_multipliers([2**30] * 2, [0, 0], 0, 0), w)
        with raises(
            "activation 'relu6' needs the output scale to compute its bounds: give "
            "output_scale, or act_min/act_max directly"
        ):
            ql.act_min

    def test_with_rounding(self):
        layer = DepthwiseConv2D(3)
        w = np.ones((3, 3, 2), np.int8)
        ql = QuantizedLayer.create(layer, (4, 4, 2), Quantization.from_scales(2.0**15, 0, [2.0**15, 0.01], 1.0, 0, 2), w)
        s = ql.with_rounding("single")
        assert s.quant.rounding == "single" and ql.quant.rounding == "double"
        assert (s.quant.multipliers[0], s.quant.shifts[0]) == (INT32_MAX, 30)
        assert s.weights is ql.weights and s.bias is ql.bias and s.geometry == ql.geometry
        assert s.layer == ql.layer


# ---------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------
class TestInputs:
    @pytest.mark.parametrize("layer, shape, want", [
        (DepthwiseConv2D(3), (7, 6, 3), (1, 7, 6, 3)),
        (DepthwiseConv2D(3), (2, 7, 6, 3), (2, 7, 6, 3)),
        (DepthwiseConv2D(3, data_format="channels_first"), (3, 7, 6), (1, 3, 7, 6)),
        (DepthwiseConv1D(3), (40, 3), (1, 40, 3)),
        (DepthwiseConv1D(3, data_format="channels_first"), (2, 3, 40), (2, 3, 40)),
    ])
    def test_random_input(self, layer, shape, want):
        ql = QuantizedLayer.create(layer, shape, _quant(3), np.ones(
            (layer.kernel_size[0], layer.kernel_size[1], 3), np.int8))
        x = ql.random_input()
        assert x.shape == want == ql.geometry.input_shape
        assert x.dtype == np.int8
        assert np.array_equal(x, ql.random_input(0))
        assert not np.array_equal(x, ql.random_input(1))
        assert np.array_equal(ql.random_input(np.random.default_rng(5)), ql.random_input(5))
        assert ql.check_input(x) is not None

    def test_random_input_covers_int8(self):
        ql = QuantizedLayer.create(DepthwiseConv2D(1), (64, 64, 4), _quant(4), np.ones((1, 1, 4), np.int8))
        x = ql.random_input(3)
        assert x.min() == -128 and x.max() == 127

    def test_check_input(self):
        ql = QuantizedLayer.create(DepthwiseConv2D(3, data_format="channels_first"), (3, 7, 6),
                                   _quant(3), np.ones((3, 3, 3), np.int8))
        x = np.zeros((1, 3, 7, 6), np.int8)
        assert np.array_equal(ql.check_input(x), x)
        with raises("the input has dtype float32: it must be int8"):
            ql.check_input(x.astype(np.float32))
        with raises("the input has dtype uint8: it must be int8"):
            ql.check_input(x.astype(np.uint8))
        with raises("the input has dtype int64: it must be int8"):
            ql.check_input([[[[0]]]])
        with raises("the input has shape [1, 7, 6, 3]: this layer takes [1, 3, 7, 6]"):
            ql.check_input(np.zeros((1, 7, 6, 3), np.int8))
        with raises("the input has shape [3, 7, 6]: this layer takes [1, 3, 7, 6]"):
            ql.check_input(np.zeros((3, 7, 6), np.int8))


# ---------------------------------------------------------------------------------------
# from_float, end to end
# ---------------------------------------------------------------------------------------
def _float_depthwise(x, w, b, pad_t, pad_l, oh, ow, stride, act):
    """A plain float NHWC depthwise convolution (w is [kh, kw, C, M]), zero padded."""
    n, h, wd, c = x.shape
    kh, kw, _, m = w.shape
    xp = np.zeros((n, h + 2 * kh, wd + 2 * kw, c))
    xp[:, pad_t:pad_t + h, pad_l:pad_l + wd] = x
    y = np.zeros((n, oh, ow, c * m))
    for oy in range(oh):
        for ox in range(ow):
            for ic in range(c):
                for mm in range(m):
                    win = xp[:, oy * stride:oy * stride + kh, ox * stride:ox * stride + kw, ic]
                    y[:, oy, ox, ic * m + mm] = (win * w[:, :, ic, mm]).sum(axis=(1, 2)) + b[ic * m + mm]
    if act == "relu6":
        y = np.clip(y, 0, 6)
    return y


class TestFromFloat:
    IN_S, IN_ZP, OUT_S, OUT_ZP = 0.02, -7, 0.03, 5

    def _make(self, per_channel=True, rounding="double"):
        rng = np.random.default_rng(11)
        c, m = 3, 2
        kernel = rng.normal(0, 0.4, (3, 3, c, m)).astype(np.float32)
        kernel[:, :, 1, 0] *= 0.01  # a channel with a much smaller range
        bias = rng.normal(0, 0.5, c * m).astype(np.float32)
        layer = DepthwiseConv2D(3, padding="same", depth_multiplier=m, activation="relu6")
        ql = QuantizedLayer.from_float(layer, (9, 8, c), kernel, bias, self.IN_S, self.IN_ZP,
                                       self.OUT_S, self.OUT_ZP, per_channel=per_channel,
                                       rounding=rounding)
        return ql, kernel, bias

    def test_parameters(self):
        ql, kernel, bias = self._make()
        flat = kernel.reshape(3, 3, 6)
        maxabs = np.abs(flat).max(axis=(0, 1))
        scales = (maxabs / f32(127)).astype(np.float32)
        assert ql.quant.weight_scales == tuple(float(s) for s in scales)
        assert ql.quant.per_channel and ql.quant.rounding == "double"
        want_w = np.sign(flat / scales) * np.floor(np.abs(flat / scales) + 0.5)
        assert np.array_equal(ql.weights, want_w.astype(np.int8))
        assert np.all(np.abs(ql.weights.astype(int)).max(axis=(0, 1)) == 127)
        want_b = bias.astype(np.float64) / (float(f32(self.IN_S)) * scales.astype(np.float64))
        want_b = np.sign(want_b) * np.floor(np.abs(want_b) + 0.5)
        assert ql.bias.tolist() == want_b.astype(int).tolist()
        for oc in range(6):
            assert (ql.quant.multipliers[oc], ql.quant.shifts[oc]) == quantize_multiplier(
                effective_scale(self.IN_S, scales[oc], self.OUT_S))
        assert (ql.quant.input_zero_point, ql.quant.output_zero_point) == (self.IN_ZP, self.OUT_ZP)
        # relu6 with scale 0.03, zp 5: Q(0) = 5, Q(6) = 5 + 200 -> 127
        assert (ql.act_min, ql.act_max) == (5, 127)

    def test_matches_float_model(self):
        """The integer pipeline (hand-written here) agrees with float math to 1 LSB."""
        ql, kernel, bias = self._make()
        g = ql.geometry
        assert (g.pad_top, g.pad_left, g.out_h, g.out_w) == (1, 1, 9, 8)
        x = ql.random_input(2)
        x = np.clip(x, -60, 60).astype(np.int8)  # keep most outputs inside the clamp
        w_scales = np.asarray(ql.quant.weight_scales)
        # dequantized values
        xf = (x.astype(np.float64) - self.IN_ZP) * float(f32(self.IN_S))
        wf = (ql.weights.astype(np.float64) * w_scales).reshape(3, 3, 3, 2)
        bf = ql.bias * float(f32(self.IN_S)) * w_scales
        yf = _float_depthwise(xf, wf, bf, 1, 1, 9, 8, 1, "relu6")
        want = np.clip(np.floor(yf / float(f32(self.OUT_S)) + 0.5) + self.OUT_ZP, ql.act_min, ql.act_max)
        # the integer pipeline: accumulate with the input offset, skip padding taps
        acc = np.tile(ql.bias.astype(np.int64), (1, 9, 8, 1))
        for oy in range(9):
            for ox in range(8):
                for ky in range(3):
                    for kx in range(3):
                        iy, ix = g.input_row(oy, ky), g.input_col(ox, kx)
                        if 0 <= iy < 9 and 0 <= ix < 8:
                            xin = np.repeat(x[0, iy, ix].astype(np.int64) - self.IN_ZP, 2)
                            acc[0, oy, ox] += ql.weights[ky, kx].astype(np.int64) * xin
        out = multiply_by_quantized_multiplier(acc, np.array(ql.quant.multipliers), np.array(ql.quant.shifts))
        got = np.clip(out + self.OUT_ZP, ql.act_min, ql.act_max)
        assert np.abs(got - want).max() <= 1
        assert np.count_nonzero(got != want) <= got.size // 50
        # and the clamp is really exercised on both sides
        assert (got == ql.act_min).any() and (got > ql.act_min).mean() > 0.3

    def test_per_tensor(self):
        ql, kernel, _ = self._make(per_channel=False)
        assert not ql.quant.per_channel
        s = f32(np.abs(kernel).max()) / f32(127)
        assert ql.quant.weight_scales == (float(s),)
        assert len(set(ql.quant.multipliers)) == 1 and ql.quant.num_channels == 6
        assert np.count_nonzero(np.abs(ql.weights.astype(int)) == 127) >= 1
        # the weak channel keeps small integers under a shared scale
        assert np.abs(ql.weights[:, :, 2].astype(int)).max() <= 3

    def test_single_rounding(self):
        ql, _, _ = self._make(rounding="single")
        assert ql.quant.rounding == "single"
        d, _, _ = self._make()
        assert ql.quant.multipliers == d.quant.multipliers  # realistic scales: no saturation

    def test_1d_layouts(self):
        rng = np.random.default_rng(4)
        k = rng.normal(0, 1, (5, 4, 2)).astype(np.float32)
        layer = DepthwiseConv1D(5, depth_multiplier=2)
        a = QuantizedLayer.from_float(layer, (30, 4), k, np.zeros(8), 0.1, 0, 0.2, 0)
        b = QuantizedLayer.from_float(layer, (30, 4), k.reshape(1, 1, 5, 8), np.zeros(8), 0.1, 0, 0.2, 0)
        assert np.array_equal(a.weights, b.weights) and a.weights.shape == (1, 5, 8)
        assert a.quant.multipliers == b.quant.multipliers
        assert a.weights[0, 2, 1 * 2 + 1] == np.round(k[2, 1, 1] / a.quant.weight_scales[3])

    def test_no_bias(self):
        k = np.ones((3, 3, 2), np.float32)
        ql = QuantizedLayer.from_float(DepthwiseConv2D(3), (4, 4, 2), k, None, 0.1, 0, 0.2, 0)
        assert ql.bias.tolist() == [0, 0]
        # use_bias=False: TFLite still stores a zero bias, a given bias is not used
        layer = DepthwiseConv2D(3, use_bias=False)
        ql = QuantizedLayer.from_float(layer, (4, 4, 2), k, np.array([1.0, 2.0]), 0.1, 0, 0.2, 0)
        assert ql.bias.tolist() == [0, 0]

    def test_float64_and_lists(self):
        ql = QuantizedLayer.from_float(DepthwiseConv2D(1), (2, 2, 2), [[[0.5, -0.25]]], [0.1, 0.2],
                                       0.1, 0, 0.2, 0)
        assert ql.weights.tolist() == [[[127, -127]]]


# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------
FLOAT_HINT = "for a float kernel and bias use QuantizedLayer.from_float"


class TestQLayerErrors:
    LAYER = DepthwiseConv2D(3)  # C = 4 below

    def _create(self, weights=None, bias=None, quant=None, layer=None, shape=(6, 6, 4)):
        layer = layer or self.LAYER
        if weights is None:
            weights = np.zeros((3, 3, 4), np.int8)
        return QuantizedLayer.create(layer, shape, quant or _quant(4), weights, bias)

    @pytest.mark.parametrize("dtype", [np.float32, np.float64, np.bool_])
    def test_weights_dtype(self, dtype):
        with raises(f"weights has dtype {np.dtype(dtype)}: it must be int8 (integers); {FLOAT_HINT}"):
            self._create(weights=np.zeros((3, 3, 4), dtype))

    @pytest.mark.parametrize("lo, hi", [(-129, 0), (0, 128), (-200, 300)])
    def test_weights_range(self, lo, hi):
        w = np.zeros((3, 3, 4), np.int16)
        w[0, 0, 0], w[2, 2, 3] = lo, hi
        with raises(f"weights holds values in [{lo}, {hi}], outside [-128, 127]: it must be int8"):
            self._create(weights=w)

    @pytest.mark.parametrize("shape", [(3, 3, 5), (3, 3, 4, 2), (1, 3, 3, 4, 1), (3, 4), (2, 3, 4), (9, 4)])
    def test_weights_shape(self, shape):
        with raises(
            f"weights has shape {list(shape)}: for this layer it must be [3, 3, 4, 1] or [3, 3, 4] "
            "or [1, 3, 3, 4]"
        ):
            self._create(weights=np.zeros(shape, np.int8))

    def test_weights_shape_1d(self):
        layer = DepthwiseConv1D(5, depth_multiplier=2)
        with raises(
            "weights has shape [5, 2, 2]: for this layer it must be [1, 5, 3, 2] or [1, 5, 6] "
            "or [1, 1, 5, 6] or [5, 3, 2] or [5, 6]"
        ):
            QuantizedLayer.create(layer, (20, 3), _quant(6), np.zeros((5, 2, 2), np.int8))

    def test_bias_dtype(self):
        with raises(f"bias has dtype float64: it must be int32 (integers); {FLOAT_HINT}"):
            self._create(bias=np.zeros(4))
        with raises(f"bias has dtype float64: it must be int32 (integers); {FLOAT_HINT}"):
            self._create(bias=[1.0, 2, 3, 4])

    def test_bias_range(self):
        with raises("bias holds values in [-1, 2147483648], outside [-2147483648, 2147483647]: it must be int32"):
            self._create(bias=np.array([0, 2**31, -1, 0], np.int64))
        with raises("bias holds values in [-2147483649, 0], outside [-2147483648, 2147483647]: it must be int32"):
            self._create(bias=[0, 0, -(2**31) - 1, 0])

    @pytest.mark.parametrize("shape", [(3,), (5,), (1, 4), ()])
    def test_bias_shape(self, shape):
        with raises(f"bias has shape {list(shape)}: it must be [4] (one per output channel)"):
            self._create(bias=np.zeros(shape, np.int32))

    def test_use_bias_false_with_bias(self):
        with raises(
            "the layer has use_bias=False but a non-zero bias was given: pass bias=None (or all zeros)"
        ):
            self._create(layer=DepthwiseConv2D(3, use_bias=False), bias=[0, 0, 1, 0])

    def test_wrong_channel_count(self):
        with raises(
            "the quantization has 3 channel multipliers: this layer has 8 output channels "
            "(C=4 x depth_multiplier=2)"
        ):
            QuantizedLayer.create(DepthwiseConv2D(3, depth_multiplier=2), (6, 6, 4), _quant(3),
                                  np.zeros((3, 3, 4, 2), np.int8))
        with raises(
            "the quantization has 8 channel multipliers: this layer has 4 output channels "
            "(C=4 x depth_multiplier=1)"
        ):
            self._create(quant=Quantization.from_multipliers([2**30] * 8, [0] * 8, 0, 0))

    def test_bad_input_shape_is_a_layer_error(self):
        with raises(
            "input_shape=(6, 6) is not allowed: a DepthwiseConv2D with channels_last takes "
            "(H, W, C) or (N, H, W, C)", LayerError,
        ):
            self._create(shape=(6, 6))

    def test_from_float_kernel_dtype(self):
        with raises("kernel has dtype int8: from_float takes float weights"):
            QuantizedLayer.from_float(self.LAYER, (6, 6, 4), np.zeros((3, 3, 4), np.int8), None,
                                      0.1, 0, 0.1, 0)

    def test_from_float_kernel_shape(self):
        with raises(
            "kernel has shape [3, 3, 2, 2]: for this layer it must be [3, 3, 4, 1] or [3, 3, 4] "
            "or [1, 3, 3, 4]"
        ):
            QuantizedLayer.from_float(self.LAYER, (6, 6, 4), np.zeros((3, 3, 2, 2)), None, 0.1, 0, 0.1, 0)

    def test_from_float_bias_and_kernel_values(self):
        k = np.ones((3, 3, 4))
        with raises("the float bias has shape (3,): it needs (4,)"):
            QuantizedLayer.from_float(self.LAYER, (6, 6, 4), k, np.zeros(3), 0.1, 0, 0.1, 0)
        with raises("the float bias holds NaN or infinite values"):
            QuantizedLayer.from_float(self.LAYER, (6, 6, 4), k, np.array([0, 0, np.nan, 0]), 0.1, 0, 0.1, 0)
        k[1, 1, 1] = np.inf
        with raises("the float kernel holds NaN or infinite values"):
            QuantizedLayer.from_float(self.LAYER, (6, 6, 4), k, None, 0.1, 0, 0.1, 0)

    def test_from_float_quantization_params(self):
        k = np.ones((3, 3, 4))
        with raises("output_scale=-0.1 is not allowed: a scale is a positive finite number (as float32)"):
            QuantizedLayer.from_float(self.LAYER, (6, 6, 4), k, None, 0.1, 0, -0.1, 0)
        with raises("input_zero_point=200 is not allowed: an int8 zero point is an integer in [-128, 127]"):
            QuantizedLayer.from_float(self.LAYER, (6, 6, 4), k, None, 0.1, 200, 0.1, 0)
        with raises(
            "rounding='round' is not allowed: use 'double' (TFLite's default) or 'single' "
            "(TFLite built with TFLITE_SINGLE_ROUNDING)"
        ):
            QuantizedLayer.from_float(self.LAYER, (6, 6, 4), k, None, 0.1, 0, 0.1, 0, rounding="round")
