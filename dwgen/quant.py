"""TFLite-exact int8 quantization arithmetic.

Everything here reproduces TFLite bit for bit (`QuantizeMultiplier`, `MultiplyByQuantizedMultiplier`): how a float multiplier
becomes a (multiplier, shift) pair, how an int32 accumulator is scaled back, and how
fused activations become clamp bounds (computed in float32, as TFLite does).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from .errors import QuantizationError, show_value

ROUNDING_MODES = ("double", "single")
INT8_MIN, INT8_MAX = -128, 127
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
#: The requantization shifts dwgen accepts (positive = left). TFLite computes the left shift
#: as `x * (1 << shift)` in int32, which is undefined from 32 on, and QuantizeMultiplier never
#: makes a right shift above 31 (it flushes smaller scales to zero). Every shift table in the
#: generated C is int8_t because of this range.
MIN_SHIFT, MAX_SHIFT = -31, 31


class EffectiveScaleError(QuantizationError):
    """An effective scale too large for TFLite's requantization (a left shift above 31)."""


#: Most output channels a layer may have: dwgen reads at most 64 MiB of weights
#: (dwgen.npyfile.MAX_ARRAY_BYTES), one int8 per channel at the least.
MAX_CHANNELS = 64 * 2**20


def _show(value: object, limit: int = 60) -> str:
    return show_value(value, limit)


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _int_list(name: str, values: object) -> list[int]:
    """A list of integers given by the caller: floats, strings and bools are refused, not truncated."""
    try:
        if isinstance(values, (str, bytes, dict)):
            raise TypeError
        items = list(values)  # type: ignore[call-overload]
    except TypeError:
        raise QuantizationError(f"{name}={_show(values)} is not allowed: give a list of integers, one per output channel") from None
    out = []
    for i, v in enumerate(items):
        if not _is_int(v):
            raise QuantizationError(f"{name}[{i}]={_show(v)} is not allowed: {name} are integers")
        out.append(int(v))
    return out


def _check_rounding(rounding: str) -> str:
    if not isinstance(rounding, str) or rounding not in ROUNDING_MODES:
        raise QuantizationError(
            f"rounding={_show(rounding)} is not allowed: use 'double' (TFLite's default) or 'single' "
            "(TFLite built with TFLITE_SINGLE_ROUNDING)"
        )
    return rounding


def _round_half_away(x: float) -> float:
    return math.copysign(math.floor(abs(x) + 0.5), x)


def quantize_multiplier(real: float, rounding: str = "double") -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: `real ~= mult * 2^(shift - 31)`, mult in [2^30, 2^31).

    A positive shift is a left shift. Zero gives (0, 0); a value too small to represent
    (exponent below -31) flushes to (0, 0); single rounding saturates shifts above 30.
    """
    _check_rounding(rounding)
    if real == 0.0:
        return 0, 0
    q, e = math.frexp(real)
    qf = int(_round_half_away(q * (1 << 31)))
    if qf == 1 << 31:
        qf //= 2
        e += 1
    if e < -31:
        return 0, 0
    if rounding == "single" and e > 30:
        return INT32_MAX, 30
    return qf, e


def effective_scale(input_scale: float, weight_scale: float, output_scale: float) -> float:
    """`in * w / out` with float32 inputs promoted to double, multiplied in that order."""
    return float(np.float32(input_scale)) * float(np.float32(weight_scale)) / float(np.float32(output_scale))


def activation_bounds(activation: str, output_scale: float | None, output_zero_point: int) -> tuple[int, int]:
    """Clamp bounds of a fused activation, computed in float32 exactly as TFLite does."""

    def q(f: float) -> int:
        with np.errstate(over="ignore"):  # a tiny scale gives inf: saturated below
            v = np.float32(f) / np.float32(output_scale)
        r = _round_half_away(min(max(float(v), INT32_MIN), INT32_MAX))  # clamp first: v may be inf
        return output_zero_point + int(r)

    if activation not in ("none", "relu", "relu6", "relu_n1_to_1"):
        raise QuantizationError(
            f"activation={activation!r} is not allowed: use one of none, relu, relu6, relu_n1_to_1"
        )
    if activation == "none":
        return INT8_MIN, INT8_MAX
    if output_scale is None:
        raise QuantizationError(
            f"activation {activation!r} needs the output scale to compute its bounds: give "
            "output_scale, or act_min/act_max directly"
        )
    if activation == "relu":
        return max(INT8_MIN, q(0.0)), INT8_MAX
    if activation == "relu6":
        return max(INT8_MIN, q(0.0)), min(INT8_MAX, q(6.0))
    return max(INT8_MIN, q(-1.0)), min(INT8_MAX, q(1.0))  # relu_n1_to_1


# -- requantization (vectorized; the reference model uses it) ------------------------------
def _trunc_div_pow2(v: np.ndarray, n: int) -> np.ndarray:
    """C integer division by 2^n (truncates toward zero) on int64."""
    mag = np.abs(v) >> n
    return np.where(v < 0, -mag, mag)


def _wrap_int32(v: np.ndarray) -> np.ndarray:
    return ((v.astype(np.int64) + 2**31) % 2**32 - 2**31).astype(np.int64)


def multiply_by_quantized_multiplier(
    x: np.ndarray, multiplier: np.ndarray | int, shift: np.ndarray | int, rounding: str = "double"
) -> np.ndarray:
    """TFLite's MultiplyByQuantizedMultiplier on int32 values; returns int64 (int32-ranged).

    `multiplier`/`shift` broadcast against `x` (per-channel along the last axis).
    """
    _check_rounding(rounding)
    x = np.asarray(x, dtype=np.int64)
    m = np.broadcast_to(np.asarray(multiplier, dtype=np.int64), x.shape)
    s = np.broadcast_to(np.asarray(shift, dtype=np.int64), x.shape)
    if rounding == "single":
        total = 31 - s
        rnd = np.left_shift(np.int64(1), total - 1)
        return _wrap_int32((x * m + rnd) >> total)
    left = np.maximum(s, 0)
    right = np.maximum(-s, 0)
    a = _wrap_int32(x << left)  # int32 `x * (1 << left)` wraps in TFLite's C++
    p = a * m
    nudge = np.where(p >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    # (p + nudge) fits int64: |p| < 2^62
    hi = _trunc_div_pow2(p + nudge, 31)
    # SaturatingRoundingDoublingHighMul saturates only for INT32_MIN * INT32_MIN, which a
    # non-negative multiplier never produces.
    mask = (np.int64(1) << right) - 1
    rem = hi & mask
    thr = (mask >> 1) + (hi < 0)
    return (hi >> right) + (rem > thr)


# -- the quantization parameters of one layer -----------------------------------------------
@dataclass(frozen=True)
class Quantization:
    """int8 activations, int8 symmetric weights, int32 bias, for one layer.

    Build it with `Quantization.from_scales(...)` (what a model file or converter gives)
    or `Quantization.from_multipliers(...)` (when the integer parameters are known).
    `multipliers`/`shifts` hold one entry per output channel.
    """

    input_zero_point: int
    output_zero_point: int
    multipliers: tuple[int, ...]
    shifts: tuple[int, ...]
    rounding: str = "double"
    input_scale: float | None = None
    output_scale: float | None = None
    weight_scales: tuple[float, ...] | None = None
    per_channel: bool = True
    act_range: tuple[int, int] | None = field(default=None)

    @staticmethod
    def _zero_point(name: str, value: object) -> int:
        if not _is_int(value) or not (INT8_MIN <= int(value) <= INT8_MAX):
            raise QuantizationError(f"{name}={_show(value)} is not allowed: an int8 zero point is an integer in [-128, 127]")
        return int(value)

    @staticmethod
    def _scale(name: str, value: object) -> float:
        # float() would also take "0.1" and True: a scale must already be a number.
        bad_type = isinstance(value, (str, bytes, bool, np.bool_))
        try:
            v = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):
            bad_type = True
        if bad_type:
            raise QuantizationError(f"{name}={_show(value)} is not allowed: a scale is a positive finite number") from None
        with np.errstate(over="ignore"):  # a value beyond float32 becomes inf: rejected below
            v32 = np.float32(v)
        if not math.isfinite(v) or v <= 0 or not math.isfinite(float(v32)) or v32 == 0:
            raise QuantizationError(
                f"{name}={_show(value)} is not allowed: a scale is a positive finite number (as float32)"
            )
        return float(np.float32(v))

    @classmethod
    def from_scales(
        cls,
        input_scale: float,
        input_zero_point: int,
        weight_scales: float | Sequence[float],
        output_scale: float,
        output_zero_point: int,
        num_channels: int,
        rounding: str = "double",
        weight_zero_points: int | Sequence[int] | None = None,
    ) -> "Quantization":
        """TFLite's Prepare: per-channel (len == num_channels) or per-tensor (one) weight scales."""
        _check_rounding(rounding)
        if not _is_int(num_channels) or not 0 < num_channels <= MAX_CHANNELS:
            raise QuantizationError(
                f"num_channels={_show(num_channels)} is not allowed: a layer has 1 to {MAX_CHANNELS} output channels"
            )
        in_s = cls._scale("input_scale", input_scale)
        out_s = cls._scale("output_scale", output_scale)
        in_zp = cls._zero_point("input_zero_point", input_zero_point)
        out_zp = cls._zero_point("output_zero_point", output_zero_point)
        try:
            raw = np.asarray(weight_scales)
            if raw.dtype.kind not in "iuf":  # strings, bools and objects are not scales
                raise TypeError
            ws = np.atleast_1d(raw.astype(np.float64))
        except (TypeError, ValueError, OverflowError):
            raise QuantizationError(
                f"weight_scales={_show(weight_scales)} is not allowed: give one positive number or one per "
                "output channel"
            ) from None
        if ws.ndim != 1:
            raise QuantizationError(
                f"weight_scales has shape {ws.shape}: give one scale (per-tensor) or a flat list "
                f"with one per output channel ({num_channels})"
            )
        if len(ws) not in (1, num_channels):
            raise QuantizationError(
                f"weight_scales has {ws.size} entries: give one (per-tensor) or one per output "
                f"channel ({num_channels})"
            )
        scales = tuple(cls._scale(f"weight_scales[{i}]", s.item()) for i, s in enumerate(ws))
        if weight_zero_points is not None:
            zps = np.atleast_1d(np.asarray(weight_zero_points))
            if np.any(zps != 0):
                raise QuantizationError(
                    f"weight zero point {zps[zps != 0][0].item()!r} is not allowed: int8 weights are "
                    "symmetric, every weight zero point must be 0"
                )
        per_channel = len(scales) != 1 or num_channels == 1
        for i, s in enumerate(scales):
            real = effective_scale(in_s, s, out_s)
            shift = quantize_multiplier(real)[1]  # the exponent before single rounding saturates it
            if shift > MAX_SHIFT:
                which = f"of output channel {i}" if len(scales) > 1 else "of the layer"
                raise EffectiveScaleError(
                    f"the effective scale {which} (input_scale * weight_scale / output_scale = "
                    f"{in_s:.9g} * {s:.9g} / {out_s:.9g} = {real:.9g}) needs a requantization left "
                    f"shift of {shift}: dwgen accepts effective scales below 2^31 - 0.5 (a left shift "
                    f"of at most {MAX_SHIFT}; TFLite's requantization overflows beyond it)"
                )
        full = scales if len(scales) == num_channels else scales * num_channels
        pairs = [quantize_multiplier(effective_scale(in_s, s, out_s), rounding) for s in full]
        return cls(
            input_zero_point=in_zp, output_zero_point=out_zp,
            multipliers=tuple(p[0] for p in pairs), shifts=tuple(p[1] for p in pairs),
            rounding=rounding, input_scale=in_s, output_scale=out_s,
            weight_scales=scales, per_channel=per_channel,
        )

    @classmethod
    def from_multipliers(
        cls,
        multipliers: Iterable[int],
        shifts: Iterable[int],
        input_zero_point: int,
        output_zero_point: int,
        rounding: str = "double",
        output_scale: float | None = None,
        act_min: int | None = None,
        act_max: int | None = None,
    ) -> "Quantization":
        """Integer parameters given directly (CMSIS-NN style); one entry per output channel."""
        _check_rounding(rounding)
        mults = _int_list("multipliers", multipliers)
        sh = _int_list("shifts", shifts)
        if len(mults) != len(sh) or not mults:
            raise QuantizationError(
                f"{len(mults)} multipliers and {len(sh)} shifts: give one of each per output channel"
            )
        for i, (m, s) in enumerate(zip(mults, sh)):
            if not (0 <= m <= INT32_MAX):
                raise QuantizationError(f"multipliers[{i}]={m} is not allowed: a multiplier is in [0, 2^31 - 1]")
            lo = MIN_SHIFT
            hi = 30 if rounding == "single" else MAX_SHIFT
            if not (lo <= s <= hi):
                raise QuantizationError(f"shifts[{i}]={s} is not allowed: a shift is in [{lo}, {hi}]")
        act = None
        for key, v in (("act_min", act_min), ("act_max", act_max)):
            if v is not None and not _is_int(v):
                raise QuantizationError(f"{key}={_show(v)} is not allowed: it is an integer in [-128, 127]")
        if act_min is not None or act_max is not None:
            lo_a = INT8_MIN if act_min is None else int(act_min)
            hi_a = INT8_MAX if act_max is None else int(act_max)
            if not (INT8_MIN <= lo_a <= hi_a <= INT8_MAX):
                raise QuantizationError(
                    f"act_min={act_min!r}, act_max={act_max!r} is not allowed: need -128 <= act_min <= act_max <= 127"
                )
            act = (lo_a, hi_a)
        return cls(
            input_zero_point=cls._zero_point("input_zero_point", input_zero_point),
            output_zero_point=cls._zero_point("output_zero_point", output_zero_point),
            multipliers=tuple(mults), shifts=tuple(sh), rounding=rounding,
            output_scale=None if output_scale is None else cls._scale("output_scale", output_scale),
            act_range=act,
        )

    @property
    def num_channels(self) -> int:
        return len(self.multipliers)

    def bounds(self, activation: str) -> tuple[int, int]:
        """Clamp bounds for a fused activation (explicit act_min/act_max win)."""
        if self.act_range is not None:
            return self.act_range
        return activation_bounds(activation, self.output_scale, self.output_zero_point)

    def with_rounding(self, rounding: str) -> "Quantization":
        """The same layer for a TFLite built with the other rounding mode."""
        _check_rounding(rounding)
        if rounding == self.rounding:
            return self
        if self.weight_scales is None:
            # Without scales the multipliers are taken as given; only the saturation differs.
            if rounding == "single":
                pairs = [(INT32_MAX, 30) if s > 30 else (m, s) for m, s in zip(self.multipliers, self.shifts)]
                return _replace(self, rounding=rounding, multipliers=tuple(p[0] for p in pairs),
                                shifts=tuple(p[1] for p in pairs))
            return _replace(self, rounding=rounding)
        q = Quantization.from_scales(
            self.input_scale, self.input_zero_point,
            self.weight_scales, self.output_scale, self.output_zero_point,
            self.num_channels, rounding,
        )
        return _replace(q, act_range=self.act_range)

    def describe(self) -> dict:
        return {
            "input_scale": self.input_scale,
            "input_zero_point": self.input_zero_point,
            "output_scale": self.output_scale,
            "output_zero_point": self.output_zero_point,
            "weight_scales": None if self.weight_scales is None else list(self.weight_scales),
            "per_channel": self.per_channel,
            "rounding": self.rounding,
        }


def _replace(q: Quantization, **changes) -> Quantization:
    import dataclasses

    return dataclasses.replace(q, **changes)


# -- float -> int8, the way the TFLite converter does it -------------------------------------
def quantize_weights(kernel: np.ndarray, per_channel: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 quantization of a float depthwise kernel, `max|w| -> 127`.

    `kernel` has the output channel on its last axis after flattening C and M
    (`[kh, kw, C*M]`). Returns (int8 weights of the same shape, float32 scales).
    """
    w = np.asarray(kernel, dtype=np.float32)
    if not np.all(np.isfinite(w)):
        raise QuantizationError("the float kernel holds NaN or infinite values")
    flat = w.reshape(-1, w.shape[-1])
    maxabs = np.max(np.abs(flat), axis=0) if per_channel else np.array([np.max(np.abs(flat))])
    scales = np.where(maxabs > 0, maxabs / np.float32(127.0), np.float32(1.0)).astype(np.float32)
    full = np.broadcast_to(scales, (w.shape[-1],)) if not per_channel else scales
    q = np.clip(_round_away(w / full), -127, 127).astype(np.int8)
    return q, scales


def quantize_bias(bias: np.ndarray, input_scale: float, weight_scales: np.ndarray, num_channels: int) -> np.ndarray:
    """int32 bias with scale `input_scale * weight_scale[c]`, rounded half away from zero."""
    b = np.asarray(bias, dtype=np.float64)
    if b.shape != (num_channels,):
        raise QuantizationError(f"the float bias has shape {b.shape}: it needs ({num_channels},)")
    if not np.all(np.isfinite(b)):
        raise QuantizationError("the float bias holds NaN or infinite values")
    ws = np.broadcast_to(np.asarray(weight_scales, dtype=np.float64), (num_channels,))
    q = _round_away(b / (np.float64(np.float32(input_scale)) * ws))
    return np.clip(q, INT32_MIN, INT32_MAX).astype(np.int32)


def _round_away(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


__all__ = [
    "EffectiveScaleError", "MAX_SHIFT", "MIN_SHIFT", "Quantization", "ROUNDING_MODES", "activation_bounds", "effective_scale",
    "multiply_by_quantized_multiplier", "quantize_bias", "quantize_multiplier", "quantize_weights",
]
