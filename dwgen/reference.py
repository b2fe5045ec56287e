"""A vectorized numpy model of TFLite's quantized depthwise convolution.

It mirrors the reference kernel's integer math (`reference_integer_ops::DepthwiseConvPerChannel`) with one array operation per
kernel tap, so a 112x112x32 3x3 layer takes milliseconds. Taps outside the image are
handled by padding with the input zero point, which contributes `x - in_zp = 0`, exactly
like skipping them. It is the oracle for rounding modes and configurations that the
TFLite interpreter cannot run, and the source of expected outputs for test vectors.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .qlayer import QuantizedLayer
from .quant import multiply_by_quantized_multiplier


def accumulate(ql: QuantizedLayer, x_nhwc: np.ndarray) -> np.ndarray:
    """The int32 accumulators (bias included) before requantization, NHWC int64."""
    g = ql.geometry
    zp = ql.quant.input_zero_point
    need_h = (g.out_h - 1) * g.stride_h + (g.kernel_h - 1) * g.dilation_h + 1
    need_w = (g.out_w - 1) * g.stride_w + (g.kernel_w - 1) * g.dilation_w + 1
    pad_bottom = max(need_h - g.in_h - g.pad_top, 0)
    pad_right = max(need_w - g.in_w - g.pad_left, 0)
    xs = x_nhwc.astype(np.int64) - zp  # zero-point padding now contributes 0
    xs = np.pad(xs, ((0, 0), (g.pad_top, pad_bottom), (g.pad_left, pad_right), (0, 0)))
    if g.depth_multiplier > 1:
        xs = np.repeat(xs, g.depth_multiplier, axis=3)  # channel oc reads input oc // M
    w = ql.weights.astype(np.int64)
    acc = np.broadcast_to(ql.bias.astype(np.int64), (g.batch, g.out_h, g.out_w, g.out_c)).copy()
    for ky in range(g.kernel_h):
        y0 = ky * g.dilation_h
        rows = slice(y0, y0 + (g.out_h - 1) * g.stride_h + 1, g.stride_h)
        for kx in range(g.kernel_w):
            x0 = kx * g.dilation_w
            cols = slice(x0, x0 + (g.out_w - 1) * g.stride_w + 1, g.stride_w)
            acc += xs[:, rows, cols, :] * w[ky, kx]
    # TFLite accumulates in int32 and so does the C kernel: a huge bias wraps the same way.
    return (acc + 2**31) % 2**32 - 2**31


def to_nhwc(ql: QuantizedLayer, x: np.ndarray) -> np.ndarray:
    g = ql.geometry
    x = x.reshape(g.input_shape)
    if g.rank == 1:
        x = x[:, None, :, :] if not g.channels_first else x[:, :, None, :]
    return np.transpose(x, (0, 2, 3, 1)) if g.channels_first else x


def from_nhwc(ql: QuantizedLayer, y: np.ndarray) -> np.ndarray:
    g = ql.geometry
    if g.channels_first:
        y = np.transpose(y, (0, 3, 1, 2))
    return np.ascontiguousarray(y.reshape(g.output_shape))


def requantize(ql: QuantizedLayer, acc: np.ndarray) -> np.ndarray:
    q = ql.quant
    scaled = multiply_by_quantized_multiplier(
        acc, np.asarray(q.multipliers), np.asarray(q.shifts), q.rounding
    )
    out = scaled + q.output_zero_point
    return np.clip(out, ql.act_min, ql.act_max).astype(np.int8)


def depthwise_conv(ql: QuantizedLayer, x: Any) -> np.ndarray:
    """Run the layer on an int8 input in the layer's own layout; returns int8 output."""
    x = ql.check_input(x)
    return from_nhwc(ql, requantize(ql, accumulate(ql, to_nhwc(ql, x))))


__all__ = ["accumulate", "depthwise_conv", "requantize"]
