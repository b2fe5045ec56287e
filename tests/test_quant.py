"""TFLite-exact quantization arithmetic (TFLite's QuantizeMultiplier and MultiplyByQuantizedMultiplier) and every QuantizationError.

The special values below (the effective-scale order case, the float32 RELU6 bound, the
single-vs-double rounding cases) were found by a programmatic search when these tests
were written and are hard-coded; each test also re-derives why the value is special,
so it cannot silently stop discriminating.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from dwgen.errors import DwgenError, QuantizationError
from dwgen.quant import (
    INT32_MAX,
    INT32_MIN,
    Quantization,
    activation_bounds,
    effective_scale,
    multiply_by_quantized_multiplier,
    quantize_bias,
    quantize_multiplier,
    quantize_weights,
)

f32 = np.float32


def raises(msg: str):
    """pytest.raises for a QuantizationError with exactly this (whole) message."""
    return pytest.raises(QuantizationError, match="^" + re.escape(msg) + "$")


# ---------------------------------------------------------------------------------------
# A straightforward scalar transcription of TFLite's C++ (Python ints, C semantics).
# ---------------------------------------------------------------------------------------
def _c_div(a: int, b: int) -> int:
    """C/C++ integer division: truncates toward zero."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _to_int32(v: int) -> int:
    return (v + 2**31) % 2**32 - 2**31


def saturating_rounding_doubling_high_mul(a: int, b: int) -> int:
    overflow = a == b and a == INT32_MIN
    ab_64 = a * b
    nudge = (1 << 30) if ab_64 >= 0 else (1 - (1 << 30))
    ab_x2_high32 = _to_int32(_c_div(ab_64 + nudge, 1 << 31))
    return INT32_MAX if overflow else ab_x2_high32


def rounding_divide_by_pot(x: int, exponent: int) -> int:
    assert 0 <= exponent <= 31
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def tflite_mbqm_double(x: int, quantized_multiplier: int, shift: int) -> int:
    left_shift = shift if shift > 0 else 0
    right_shift = 0 if shift > 0 else -shift
    return rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(_to_int32(x * (1 << left_shift)), quantized_multiplier),
        right_shift,
    )


def tflite_mbqm_single(x: int, quantized_multiplier: int, shift: int) -> int:
    assert quantized_multiplier >= 0 and -31 <= shift <= 30
    total_shift = 31 - shift
    round_ = 1 << (total_shift - 1)
    result = x * quantized_multiplier + round_
    assert -(2**63) <= result < 2**63  # fits int64, as in C++
    return result >> total_shift


# ---------------------------------------------------------------------------------------
# QuantizeMultiplier
# ---------------------------------------------------------------------------------------
class TestQuantizeMultiplier:
    @pytest.mark.parametrize("real, want", [
        (0.5, (2**30, 0)),
        (1.0, (2**30, 1)),
        (0.25, (2**30, -1)),
        (2.0, (2**30, 2)),
        (0.75, (3 * 2**29, 0)),
        (0.375, (3 * 2**29, -1)),
        (2.0**-31, (2**30, -30)),
        (2.0**-32, (2**30, -31)),  # the smallest exponent kept
    ])
    def test_exact_values(self, real, want):
        assert quantize_multiplier(real) == want
        assert quantize_multiplier(real, "single") == want

    def test_mantissa_rounding_to_2_pow_31(self):
        below_one = math.nextafter(1.0, 0.0)  # 1 - 2^-53
        assert quantize_multiplier(below_one) == (2**30, 1)
        below_half = math.nextafter(0.5, 0.0)
        assert quantize_multiplier(below_half) == (2**30, 0)
        # q * 2^31 = 2^31 - 2^-9: also rounds up
        assert quantize_multiplier(1.0 - 2.0**-40) == (2**30, 1)
        # q * 2^31 = 2^31 - 1 exactly stays
        assert quantize_multiplier((2**31 - 1) / 2**31) == (2**31 - 1, 0)

    def test_ties_round_half_away_from_zero(self):
        # q * 2^31 = 2^30 + 0.5: half-away gives 2^30 + 1 (half-even would give 2^30)
        assert quantize_multiplier(0.5 + 2.0**-32) == (2**30 + 1, 0)
        assert quantize_multiplier(0.5 + 3 * 2.0**-32) == (2**30 + 2, 0)

    def test_zero_and_tiny_flush_to_zero(self):
        assert quantize_multiplier(0.0) == (0, 0)
        assert quantize_multiplier(-0.0) == (0, 0)
        assert quantize_multiplier(2.0**-33) == (0, 0)  # frexp exponent -32 < -31
        assert quantize_multiplier(1e-12) == (0, 0)
        assert quantize_multiplier(5e-324) == (0, 0)
        assert quantize_multiplier(0.9 * 2.0**-32) == (0, 0)
        # just below 2^-32 the mantissa rounds up to 2^31, the exponent becomes -31: kept
        assert quantize_multiplier(math.nextafter(2.0**-32, 0.0)) == (2**30, -31)
        assert quantize_multiplier(2.0**-33, "single") == (0, 0)

    def test_single_rounding_saturates_large_shifts(self):
        assert quantize_multiplier(2.0**29) == (2**30, 30)
        assert quantize_multiplier(2.0**29, "single") == (2**30, 30)
        assert quantize_multiplier(2.0**30) == (2**30, 31)
        assert quantize_multiplier(2.0**30, "single") == (INT32_MAX, 30)
        assert quantize_multiplier(3.0 * 2.0**40) == (3 * 2**29, 42)
        assert quantize_multiplier(3.0 * 2.0**40, "single") == (INT32_MAX, 30)
        # rounding up into e = 31 also saturates
        assert quantize_multiplier(math.nextafter(2.0**30, 0.0), "single") == (INT32_MAX, 30)
        assert quantize_multiplier(math.nextafter(2.0**30, 0.0)) == (2**30, 31)

    def test_random_values_are_accurate(self):
        rng = np.random.default_rng(0)
        for real in rng.uniform(-30, 10, 500):
            real = float(2.0**real)
            m, s = quantize_multiplier(real)
            assert 2**30 <= m < 2**31
            assert abs(m * 2.0 ** (s - 31) - real) <= real * 2.0**-31
            assert math.frexp(real)[1] in (s, s - 1)

    def test_bad_rounding(self):
        with raises(
            "rounding='nearest' is not allowed: use 'double' (TFLite's default) or 'single' "
            "(TFLite built with TFLITE_SINGLE_ROUNDING)"
        ):
            quantize_multiplier(0.5, "nearest")


# ---------------------------------------------------------------------------------------
# Effective scale: (double)in * (double)w / (double)out, float32 inputs
# ---------------------------------------------------------------------------------------
# Found by search: the three orders of evaluation (and float32 arithmetic) all give
# different multipliers.
IN_S, W_S, OUT_S = f32("0.031921476"), f32("0.013370925"), f32("0.30926818")


class TestEffectiveScale:
    def test_order_matters_case(self):
        i, w, o = float(IN_S), float(W_S), float(OUT_S)
        right = quantize_multiplier(i * w / o)
        assert right == (1517431166, -9)
        # the case discriminates: every other way of computing it gives another multiplier
        assert quantize_multiplier(i * (w / o)) == (1517431165, -9)
        assert quantize_multiplier((i / o) * w) == (1517431165, -9)
        assert quantize_multiplier(float(f32(IN_S * W_S) / OUT_S)) == (1517431168, -9)
        assert effective_scale(IN_S, W_S, OUT_S) == i * w / o
        assert quantize_multiplier(effective_scale(IN_S, W_S, OUT_S)) == right
        # also when the scales arrive as Python floats
        assert quantize_multiplier(effective_scale(i, w, o)) == right

    def test_from_scales_uses_that_order(self):
        q = Quantization.from_scales(float(IN_S), 0, [float(W_S), 0.5], float(OUT_S), 0, 2)
        assert (q.multipliers[0], q.shifts[0]) == (1517431166, -9)

    def test_scales_are_rounded_to_float32_first(self):
        got = effective_scale(0.1, 0.2, 0.3)
        assert got == float(f32(0.1)) * float(f32(0.2)) / float(f32(0.3))
        assert quantize_multiplier(got) == (1145324601, -3)
        assert quantize_multiplier(0.1 * 0.2 / 0.3) == (1145324612, -3)  # pure double differs
        q = Quantization.from_scales(0.1, 0, 0.2, 0.3, 0, 1)
        assert (q.multipliers, q.shifts) == ((1145324601,), (-3,))
        assert q.input_scale == float(f32(0.1)) and q.output_scale == float(f32(0.3))
        assert q.weight_scales == (float(f32(0.2)),)


# ---------------------------------------------------------------------------------------
# Activation bounds, in float32
# ---------------------------------------------------------------------------------------
# Found by search: 6 / scale is 83.49999689 in double but exactly 83.5 in float32.
RELU6_SCALE = float.fromhex("0x1.2652c8p-4")  # 0.07185629 as float32


class TestActivationBounds:
    def test_relu6_float32_case(self):
        s = RELU6_SCALE
        assert float(f32(s)) == s
        assert f32(6.0) / f32(s) == f32(83.5)
        assert round(6.0 / s) == 83 and 6.0 / s < 83.5  # double would give 83
        assert activation_bounds("relu6", s, -128) == (-128, -128 + 84)
        assert activation_bounds("relu6", s, 0) == (0, 84)
        q = Quantization.from_scales(0.05, 3, [0.01, 0.02], s, -128, 2)
        assert q.bounds("relu6") == (-128, -44)

    def test_none(self):
        assert activation_bounds("none", 0.1, 5) == (-128, 127)
        assert activation_bounds("none", None, 5) == (-128, 127)

    @pytest.mark.parametrize("zp", [-128, -5, 0, 7, 127])
    def test_relu(self, zp):
        assert activation_bounds("relu", 0.05, zp) == (zp, 127)

    @pytest.mark.parametrize("scale, zp, want", [
        (6 / 255, -128, (-128, 127)),      # 6 / (6/255) = 255 -> clipped
        (0.1, -128, (-128, -68)),          # 6 / 0.1 = 60
        (0.01, 0, (0, 127)),               # 600 -> clipped
        (4.0, 0, (0, 2)),                  # 1.5 rounds away from zero -> 2
        (0.5, 100, (100, 112)),
        (0.05, 127, (127, 127)),
    ])
    def test_relu6(self, scale, zp, want):
        assert activation_bounds("relu6", scale, zp) == want

    @pytest.mark.parametrize("scale, zp, want", [
        (1 / 64, 10, (-54, 74)),
        (2.0, 0, (-1, 1)),      # -0.5 / 0.5 round away from zero (roundf), not to even
        (0.001, 0, (-128, 127)),
        (0.25, -126, (-128, -122)),
    ])
    def test_relu_n1_to_1(self, scale, zp, want):
        assert activation_bounds("relu_n1_to_1", scale, zp) == want

    def test_tiny_output_scale_saturates(self):
        # 6 / 1e-40 overflows float32 to inf; the bound saturates instead of failing
        assert activation_bounds("relu6", 1e-40, 0) == (0, 127)
        assert activation_bounds("relu_n1_to_1", 1e-40, 3) == (-128, 127)

    def test_needs_output_scale(self):
        for act in ("relu", "relu6", "relu_n1_to_1"):
            with raises(
                f"activation {act!r} needs the output scale to compute its bounds: give "
                "output_scale, or act_min/act_max directly"
            ):
                activation_bounds(act, None, 0)

    @pytest.mark.parametrize("act", ["tanh", "RELU", None])
    def test_unknown_activation(self, act):
        msg = f"activation={act!r} is not allowed: use one of none, relu, relu6, relu_n1_to_1"
        with raises(msg):
            activation_bounds(act, 0.1, 0)
        with raises(msg):
            activation_bounds(act, None, 0)


# ---------------------------------------------------------------------------------------
# MultiplyByQuantizedMultiplier
# ---------------------------------------------------------------------------------------
def _random_cases(rng, n, shift_lo, shift_hi):
    m = rng.integers(2**30, 2**31, n, dtype=np.int64)
    m[:8] = [0, 1, 2**30, 2**31 - 1, 2**30 + 1, 1234567, 2**31 - 2, 3 * 2**29]
    s = rng.integers(shift_lo, shift_hi + 1, n, dtype=np.int64)
    # x: a mix of small, accumulator-sized and full-range int32 values
    x = np.concatenate([
        rng.integers(-300, 301, n // 4),
        rng.integers(-(2**20), 2**20, n // 4),
        rng.integers(INT32_MIN, INT32_MAX, n - 2 * (n // 4), endpoint=True),
    ]).astype(np.int64)
    x[:6] = [INT32_MIN, INT32_MAX, INT32_MIN + 1, 0, -1, 1]
    # positive shifts: TFLite computes x * 2^shift in int32, so keep it in range
    pos = s > 0
    limit = np.right_shift(np.int64(2**31 - 1), np.maximum(s, 0))
    x = np.where(pos, np.clip(x, -limit, limit), x)
    return x, m, s


def _ties(rng, n):
    """x * mult * 2^(shift-31) lands exactly on k + 0.5 (positive and negative k)."""
    s = rng.integers(-18, 1, n, dtype=np.int64)
    j = 2 * rng.integers(-500, 500, n, dtype=np.int64) + 1  # odd
    # mult 2^30: x * 2^(s-1) = j / 2 for x = j * 2^-s
    m1, x1 = np.full(n, 2**30, dtype=np.int64), j << (-s)
    # mult 3 * 2^29: x * 3 * 2^(s-2) = 3j / 2 for x = j * 2^(1-s)
    m2, x2 = np.full(n, 3 * 2**29, dtype=np.int64), j << (1 - s)
    return np.concatenate([x1, x2]), np.concatenate([m1, m2]), np.concatenate([s, s])


class TestMultiplyByQuantizedMultiplier:
    def _check(self, x, m, s, rounding):
        got = multiply_by_quantized_multiplier(x, m, s, rounding)
        assert got.dtype == np.int64 and got.shape == x.shape
        ref = tflite_mbqm_double if rounding == "double" else tflite_mbqm_single
        want = [ref(int(a), int(b), int(c)) for a, b, c in zip(x, m, s)]
        bad = [(int(a), int(b), int(c), g, w) for a, b, c, g, w in zip(x, m, s, got.tolist(), want) if g != w]
        assert not bad, bad[:5]
        return got

    def test_double_negative_shifts(self):
        rng = np.random.default_rng(1)
        self._check(*_random_cases(rng, 4000, -31, 0), "double")

    def test_double_positive_shifts(self):
        rng = np.random.default_rng(2)
        self._check(*_random_cases(rng, 2000, 1, 30), "double")

    def test_single_all_shifts(self):
        rng = np.random.default_rng(3)
        self._check(*_random_cases(rng, 4000, -31, 30), "single")

    def test_ties(self):
        rng = np.random.default_rng(4)
        x, m, s = _ties(rng, 500)
        assert np.all(np.abs(x) < 2**31)
        # every case sits exactly half-way: x*m*2^(s-31) = k + 0.5, i.e. x*m / 2^(30-s) is odd
        assert all((a * b) % (1 << (30 - c)) == 0 and ((a * b) >> (30 - c)) % 2 == 1
                   for a, b, c in zip(x.tolist(), m.tolist(), s.tolist()))
        assert (x < 0).any() and (x > 0).any()
        d = self._check(x, m, s, "double")
        g = self._check(x, m, s, "single")
        real = x.astype(np.float64) * m * np.exp2(s.astype(np.float64) - 31)
        half_up = np.floor(real + 0.5)
        half_away = np.sign(real) * np.floor(np.abs(real) + 0.5)
        # single rounding: always half up. Double rounding: with a right shift the tie is
        # decided by RoundingDivideByPOT (half away from zero); with shift 0 by
        # SaturatingRoundingDoublingHighMul, whose nudge 1 - 2^30 rounds negative ties up.
        assert np.array_equal(g, half_up)
        assert np.array_equal(d, np.where(s < 0, half_away, half_up))
        assert np.all((d != g) == ((real < 0) & (s < 0)))
        assert np.count_nonzero(d != g) > 100 and np.count_nonzero(s == 0) > 20

    def test_int32_extremes(self):
        xs, ms, ss = [], [], []
        for x in (INT32_MIN, INT32_MIN + 1, -1, 0, 1, INT32_MAX - 1, INT32_MAX):
            for m in (0, 1, 2**30, 2**31 - 1):
                for s in (-31, -30, -17, -1, 0):
                    xs.append(x), ms.append(m), ss.append(s)
        x, m, s = (np.array(v, dtype=np.int64) for v in (xs, ms, ss))
        d = self._check(x, m, s, "double")
        self._check(x, m, s, "single")
        assert d[(x == INT32_MAX) & (m == 2**31 - 1) & (s == 0)][0] == INT32_MAX - 1
        assert d[(x == INT32_MIN) & (m == 2**31 - 1) & (s == 0)][0] == INT32_MIN + 1
        assert np.all(d[m == 0] == 0)

    def test_positive_shift_wraps_like_int32(self):
        # x * (1 << left_shift) is an int32 multiplication in TFLite; it wraps on hardware
        x = np.array([2**30, -(2**30) - 1, 3 * 2**29], dtype=np.int64)
        got = multiply_by_quantized_multiplier(x, 2**30, 1)
        want = [tflite_mbqm_double(int(v), 2**30, 1) for v in x]
        assert got.tolist() == want
        assert want[0] == -(2**30)  # 2^31 wrapped to -2^31, times 0.5

    @pytest.mark.parametrize("x, m, s, double, single", [
        # found by search: double rounding rounds twice and lands one above the nearest value
        (81047, 1496536349, -6, 883, 882),
        (91801, 1358878237, -2, 14523, 14522),
        # negative values: double rounding goes one further from zero
        (-21001, 1081007014, -3, -1322, -1321),
        (-84045, 2046624704, -2, -20025, -20024),
        # an exact tie on a negative value: -0.5 -> -1 (away from zero) vs 0 (half up)
        (-2, 2**30, -1, -1, 0),
    ])
    def test_single_vs_double_differ_by_one(self, x, m, s, double, single):
        assert tflite_mbqm_double(x, m, s) == double
        assert tflite_mbqm_single(x, m, s) == single
        assert multiply_by_quantized_multiplier(np.array([x]), m, s)[0] == double
        assert multiply_by_quantized_multiplier(np.array([x]), m, s, "double")[0] == double
        assert multiply_by_quantized_multiplier(np.array([x]), m, s, "single")[0] == single
        exact = x * m / 2 ** (31 - s)
        assert abs(single - exact) <= 0.5 and abs(double - single) == 1

    def test_single_vs_double_rarely_and_at_most_one(self):
        rng = np.random.default_rng(5)
        n = 200_000
        x = rng.integers(-(2**20), 2**20, n)
        m = rng.integers(2**30, 2**31, n)
        s = rng.integers(-10, -6, n)  # typical of real layers
        d = multiply_by_quantized_multiplier(x, m, s, "double")
        g = multiply_by_quantized_multiplier(x, m, s, "single")
        diff = d - g
        assert set(np.unique(diff).tolist()) <= {-1, 0, 1}
        frac = np.count_nonzero(diff) / n
        assert 0 < frac < 0.01

    def test_per_channel_broadcast(self):
        rng = np.random.default_rng(6)
        acc = rng.integers(-(2**16), 2**16, (2, 3, 4, 5))
        m = rng.integers(2**30, 2**31, 5)
        s = np.array([-9, -8, 0, 2, -31])
        got = multiply_by_quantized_multiplier(acc, m, s)
        assert got.shape == acc.shape
        for idx in np.ndindex(acc.shape):
            c = idx[-1]
            assert got[idx] == tflite_mbqm_double(int(acc[idx]), int(m[c]), int(s[c]))

    def test_scalar_input(self):
        assert multiply_by_quantized_multiplier(1000, 2**30, -2) == 125
        assert multiply_by_quantized_multiplier(-1000, 2**30, -4) == -31  # -31.25

    def test_bad_rounding(self):
        with raises(
            "rounding='Double' is not allowed: use 'double' (TFLite's default) or 'single' "
            "(TFLite built with TFLITE_SINGLE_ROUNDING)"
        ):
            multiply_by_quantized_multiplier(np.array([1]), 2**30, 0, "Double")


# ---------------------------------------------------------------------------------------
# quantize_weights / quantize_bias
# ---------------------------------------------------------------------------------------
def _round_away(v):
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


class TestQuantizeWeights:
    def test_per_channel(self):
        rng = np.random.default_rng(7)
        k = rng.normal(0, 0.3, (3, 3, 6)).astype(np.float32)
        k[..., 2] = 0.0                 # a dead channel
        k[1, 1, 3] = -2.0               # a negative extreme
        q, scales = quantize_weights(k)
        assert q.dtype == np.int8 and q.shape == k.shape
        assert scales.dtype == np.float32 and scales.shape == (6,)
        for c in range(6):
            col = k[..., c]
            if c == 2:
                assert np.all(q[..., c] == 0) and scales[c] == 1.0
                continue
            maxabs = np.max(np.abs(col))
            assert scales[c] == f32(maxabs) / f32(127)
            i = np.unravel_index(np.argmax(np.abs(col)), col.shape)
            assert q[i + (c,)] == (127 if col[i] > 0 else -127)
            assert np.array_equal(q[..., c], _round_away(col / scales[c]).astype(np.int8))
        assert q[1, 1, 3] == -127
        assert np.abs(q.astype(int)).max() == 127

    def test_per_tensor(self):
        rng = np.random.default_rng(8)
        k = rng.uniform(-1, 1, (5, 4)).astype(np.float32)
        k[2, 1] = 1.5
        k[:, 3] = 0.0
        q, scales = quantize_weights(k, per_channel=False)
        assert scales.shape == (1,) and scales[0] == f32(1.5) / f32(127)
        assert q[2, 1] == 127
        assert np.count_nonzero(np.abs(q.astype(int)) == 127) == 1
        assert np.all(q[:, 3] == 0)
        assert np.array_equal(q, _round_away(k / scales[0]).astype(np.int8))
        # the other channels do not reach 127 unlike per-channel quantization
        qc, _ = quantize_weights(k)
        assert np.all(np.abs(qc[:, :3].astype(int)).max(axis=0) == 127)

    def test_ties_round_away_from_zero(self):
        k = np.array([[127.0], [2.5], [-2.5], [0.5], [-0.5], [-127.0]], dtype=np.float32)
        q, scales = quantize_weights(k)
        assert scales.tolist() == [1.0]
        assert q[:, 0].tolist() == [127, 3, -3, 1, -1, -127]

    def test_all_zero(self):
        q, scales = quantize_weights(np.zeros((3, 3, 4)), per_channel=False)
        assert np.all(q == 0) and scales.tolist() == [1.0]

    def test_non_finite(self):
        for bad in (np.nan, np.inf, -np.inf):
            k = np.ones((3, 3, 2))
            k[0, 0, 1] = bad
            with raises("the float kernel holds NaN or infinite values"):
                quantize_weights(k)


class TestQuantizeBias:
    def test_values(self):
        b = np.array([1.0, -1.0, 0.3, 0.0375, -0.0375])
        ws = np.array([0.25, 0.5, 0.125, 0.0625, 0.0625], dtype=np.float32)
        q = quantize_bias(b, 0.2, ws, 5)
        s = float(f32(0.2)) * ws.astype(np.float64)
        assert q.dtype == np.int32
        assert q.tolist() == _round_away(b / s).astype(int).tolist()
        assert q.tolist() == [20, -10, 12, 3, -3]

    def test_input_scale_read_as_float32(self):
        want = round(1000.0 / (float(f32(0.1)) * 1e-4))
        assert want != round(1000.0 / (0.1 * 1e-4))  # the case discriminates
        assert quantize_bias(np.array([1000.0]), 0.1, np.array([1e-4]), 1).tolist() == [want]

    def test_tie_away_from_zero(self):
        q = quantize_bias(np.array([2.5, -2.5, 0.5]), 0.5, np.array([2.0]), 3)
        assert q.tolist() == [3, -3, 1]

    def test_per_tensor_scale_broadcast(self):
        q = quantize_bias(np.array([1.0, 2.0, -3.0]), 0.5, np.array([0.5], dtype=np.float32), 3)
        assert q.tolist() == [4, 8, -12]

    def test_saturates_to_int32(self):
        q = quantize_bias(np.array([1e12, -1e12]), 1e-3, np.array([1e-3, 1e-3]), 2)
        assert q.tolist() == [INT32_MAX, INT32_MIN]

    def test_wrong_shape(self):
        with raises("the float bias has shape (3,): it needs (4,)"):
            quantize_bias(np.zeros(3), 0.1, np.ones(4), 4)
        with raises("the float bias has shape (1, 4): it needs (4,)"):
            quantize_bias(np.zeros((1, 4)), 0.1, np.ones(4), 4)

    def test_non_finite(self):
        with raises("the float bias holds NaN or infinite values"):
            quantize_bias(np.array([0.0, np.nan]), 0.1, np.ones(2), 2)
        with raises("the float bias holds NaN or infinite values"):
            quantize_bias(np.array([np.inf, 0.0]), 0.1, np.ones(2), 2)


# ---------------------------------------------------------------------------------------
# Quantization
# ---------------------------------------------------------------------------------------
class TestQuantizationFromScales:
    def test_per_channel(self):
        ws = [0.01, 0.02, 0.005, 0.04]
        q = Quantization.from_scales(0.05, -3, ws, 0.1, 7, 4)
        assert q.num_channels == 4 and q.per_channel
        for c, w in enumerate(ws):
            assert (q.multipliers[c], q.shifts[c]) == quantize_multiplier(
                float(f32(0.05)) * float(f32(w)) / float(f32(0.1))
            )
        assert (q.input_zero_point, q.output_zero_point) == (-3, 7)
        assert q.rounding == "double" and q.act_range is None
        assert q.weight_scales == tuple(float(f32(w)) for w in ws)
        assert q.describe() == {
            "input_scale": float(f32(0.05)), "input_zero_point": -3,
            "output_scale": float(f32(0.1)), "output_zero_point": 7,
            "weight_scales": [float(f32(w)) for w in ws], "per_channel": True, "rounding": "double",
        }

    def test_per_tensor_replicated(self):
        q = Quantization.from_scales(0.05, 0, 0.02, 0.1, 0, 6)
        assert not q.per_channel
        assert q.num_channels == 6
        assert len(set(zip(q.multipliers, q.shifts))) == 1
        assert q.weight_scales == (float(f32(0.02)),)
        q1 = Quantization.from_scales(0.05, 0, [0.02], 0.1, 0, 6)
        assert (q1.multipliers, q1.shifts) == (q.multipliers, q.shifts)
        assert Quantization.from_scales(0.05, 0, [0.02], 0.1, 0, 1).per_channel

    def test_numpy_inputs(self):
        q = Quantization.from_scales(
            np.float32(0.05), np.int8(-128), np.array([0.01, 0.02], dtype=np.float32),
            np.float64(0.1), np.int64(5), 2, weight_zero_points=np.zeros(2, dtype=np.int64),
        )
        assert q.input_zero_point == -128 and type(q.input_zero_point) is int
        assert q.output_zero_point == 5 and q.num_channels == 2

    def test_weight_zero_points_zero_accepted(self):
        for zps in (0, [0, 0, 0], np.zeros(3, dtype=np.int64)):
            Quantization.from_scales(0.05, 0, [0.1, 0.2, 0.3], 0.1, 0, 3, weight_zero_points=zps)

    def test_single_rounding(self):
        # effective scale 2^30: left shift 31, the largest accepted; single rounding saturates it
        q = Quantization.from_scales(2.0**15, 0, [2.0**15, 1e-3], 1.0, 0, 2, rounding="single")
        assert (q.multipliers[0], q.shifts[0]) == (INT32_MAX, 30)
        assert q.shifts[1] < 30
        d = Quantization.from_scales(2.0**15, 0, [2.0**15, 1e-3], 1.0, 0, 2)
        assert (d.multipliers[0], d.shifts[0]) == (2**30, 31)


class TestWithRounding:
    def test_from_scales(self):
        q = Quantization.from_scales(2.0**15, 1, [2.0**15, 0.01], 1.0, 2, 2)  # shifts 31 and 9
        assert q.with_rounding("double") is q
        s = q.with_rounding("single")
        assert s.rounding == "single"
        assert (s.multipliers[0], s.shifts[0]) == (INT32_MAX, 30)
        assert (s.multipliers[1], s.shifts[1]) == (q.multipliers[1], q.shifts[1])
        assert (s.input_zero_point, s.output_zero_point) == (1, 2)
        assert s.weight_scales == q.weight_scales
        back = s.with_rounding("double")
        assert (back.multipliers, back.shifts, back.rounding) == (q.multipliers, q.shifts, "double")

    def test_from_scales_keeps_act_range(self):
        import dataclasses

        q = dataclasses.replace(Quantization.from_scales(0.05, 0, [0.02, 0.03], 0.1, 0, 2), act_range=(-5, 9))
        s = q.with_rounding("single")
        assert s.act_range == (-5, 9) and s.bounds("relu") == (-5, 9)
        assert s.with_rounding("double").act_range == (-5, 9)

    def test_per_tensor_keeps_channels(self):
        q = Quantization.from_scales(0.05, 0, 0.02, 0.1, 0, 5)
        s = q.with_rounding("single")
        assert s.num_channels == 5 and not s.per_channel
        assert s.multipliers == q.multipliers

    def test_keeps_act_range(self):
        q = Quantization.from_multipliers([2**30], [31], 0, 0, act_min=-10, act_max=20)
        s = q.with_rounding("single")
        assert s.act_range == (-10, 20) and s.bounds("relu6") == (-10, 20)
        assert (s.multipliers, s.shifts) == ((INT32_MAX,), (30,))
        # without scales the multipliers are taken as given going back
        d = s.with_rounding("double")
        assert (d.multipliers, d.shifts, d.rounding) == ((INT32_MAX,), (30,), "double")
        q2 = Quantization.from_multipliers([2**30, 3 * 2**29], [-5, 0], 0, 0)
        assert q2.with_rounding("single").multipliers == q2.multipliers
        assert q2.with_rounding("single").shifts == q2.shifts

    def test_bad_rounding(self):
        q = Quantization.from_scales(0.05, 0, 0.02, 0.1, 0, 5)
        with raises(
            "rounding='half_even' is not allowed: use 'double' (TFLite's default) or 'single' "
            "(TFLite built with TFLITE_SINGLE_ROUNDING)"
        ):
            q.with_rounding("half_even")


class TestFromMultipliers:
    def test_values(self):
        q = Quantization.from_multipliers([2**30, 1500000000], [-7, 0], -1, 2, output_scale=0.1)
        assert q.multipliers == (2**30, 1500000000) and q.shifts == (-7, 0)
        assert q.num_channels == 2 and q.weight_scales is None
        assert q.output_scale == float(f32(0.1))
        assert q.bounds("relu6") == activation_bounds("relu6", 0.1, 2) == (2, 62)
        assert q.bounds("none") == (-128, 127)

    def test_limits_accepted(self):
        Quantization.from_multipliers([0, INT32_MAX], [-31, 31], 0, 0)
        Quantization.from_multipliers([0, INT32_MAX], [-31, 30], 0, 0, rounding="single")

    def test_act_range(self):
        q = Quantization.from_multipliers([2**30], [0], 0, 0, act_min=-5)
        assert q.act_range == (-5, 127)
        assert Quantization.from_multipliers([2**30], [0], 0, 0, act_max=9).act_range == (-128, 9)
        assert Quantization.from_multipliers([2**30], [0], 0, 0, act_min=3, act_max=3).act_range == (3, 3)
        # explicit bounds win over the activation's
        q = Quantization.from_multipliers([2**30], [0], 0, 0, output_scale=0.1, act_min=-1, act_max=1)
        assert q.bounds("relu6") == (-1, 1)

    def test_bounds_without_scale(self):
        q = Quantization.from_multipliers([2**30], [0], 0, 0)
        with raises(
            "activation 'relu' needs the output scale to compute its bounds: give "
            "output_scale, or act_min/act_max directly"
        ):
            q.bounds("relu")


SCALE_MSG = "is not allowed: a scale is a positive finite number (as float32)"


class TestQuantizationErrors:
    def test_is_value_error_and_dwgen_error(self):
        with pytest.raises(ValueError):
            Quantization.from_scales(0.0, 0, 0.1, 0.1, 0, 1)
        with pytest.raises(DwgenError):
            Quantization.from_scales(0.0, 0, 0.1, 0.1, 0, 1)

    @pytest.mark.parametrize("value, shown", [
        (0.0, "0.0"), (-0.5, "-0.5"), (float("nan"), "nan"), (float("inf"), "inf"),
        (-float("inf"), "-inf"), (1e-46, "1e-46"), (1e39, "1e+39"),
    ])
    def test_bad_scale(self, value, shown):
        with raises(f"input_scale={shown} {SCALE_MSG}"):
            Quantization.from_scales(value, 0, 0.1, 0.1, 0, 1)
        with raises(f"output_scale={shown} {SCALE_MSG}"):
            Quantization.from_scales(0.1, 0, 0.1, value, 0, 1)
        with raises(f"weight_scales[1]={shown} {SCALE_MSG}"):
            Quantization.from_scales(0.1, 0, [0.1, value, 0.1], 0.1, 0, 3)
        with raises(f"output_scale={shown} {SCALE_MSG}"):
            Quantization.from_multipliers([2**30], [0], 0, 0, output_scale=value)

    def test_integer_scales(self):
        with raises(f"input_scale=0 {SCALE_MSG}"):
            Quantization.from_scales(0, 0, 0.1, 0.1, 0, 1)
        with raises(f"weight_scales[0]=-1.0 {SCALE_MSG}"):  # weight scales are read as floats
            Quantization.from_scales(0.1, 0, [-1, 1], 0.1, 0, 2)
        assert Quantization.from_scales(1, 0, [1, 2], 4, 0, 2).weight_scales == (1.0, 2.0)

    def test_smallest_float32_scale_is_accepted(self):
        # 1e-45 rounds to the smallest float32 denormal, not to 0
        q = Quantization.from_scales(1e-45, 0, 0.1, 0.1, 0, 1)
        assert q.input_scale > 0 and q.multipliers == (0,)

    @pytest.mark.parametrize("value", ["abc", None, [0.1, 0.2]])
    def test_scale_not_a_number(self, value):
        with raises(f"input_scale={value!r} is not allowed: a scale is a positive finite number"):
            Quantization.from_scales(value, 0, 0.1, 0.1, 0, 1)

    @pytest.mark.parametrize("value, shown", [
        (128, "128"), (-129, "-129"), (1.5, "1.5"), (0.0, "0.0"), (True, "True"), ("0", "'0'"),
        (None, "None"), (np.int64(200), "np.int64(200)" if np.__version__ >= "2" else "200"),
    ])
    def test_bad_zero_point(self, value, shown):
        tail = "is not allowed: an int8 zero point is an integer in [-128, 127]"
        with raises(f"input_zero_point={shown} {tail}"):
            Quantization.from_scales(0.1, value, 0.1, 0.1, 0, 1)
        with raises(f"output_zero_point={shown} {tail}"):
            Quantization.from_scales(0.1, 0, 0.1, 0.1, value, 1)
        with raises(f"input_zero_point={shown} {tail}"):
            Quantization.from_multipliers([2**30], [0], value, 0)
        with raises(f"output_zero_point={shown} {tail}"):
            Quantization.from_multipliers([2**30], [0], 0, value)

    @pytest.mark.parametrize("zps, shown", [(1, "1"), ([0, 0, -3], "-3"), ([0, 0.5, 0], "0.5")])
    def test_weight_zero_point(self, zps, shown):
        with raises(
            f"weight zero point {shown} is not allowed: int8 weights are symmetric, every "
            "weight zero point must be 0"
        ):
            Quantization.from_scales(0.1, 0, [0.1, 0.2, 0.3], 0.1, 0, 3, weight_zero_points=zps)

    @pytest.mark.parametrize("ws, n", [([0.1, 0.2, 0.3], 4), ([0.1, 0.2], 1), ([], 3)])
    def test_wrong_number_of_scales(self, ws, n):
        with raises(
            f"weight_scales has {len(ws)} entries: give one (per-tensor) or one per output "
            f"channel ({n})"
        ):
            Quantization.from_scales(0.1, 0, ws, 0.1, 0, n)

    def test_scales_not_flat(self):
        with raises(
            "weight_scales has shape (2, 2): give one scale (per-tensor) or a flat list with one "
            "per output channel (4)"
        ):
            Quantization.from_scales(0.1, 0, np.full((2, 2), 0.1), 0.1, 0, 4)

    def test_scales_not_numbers(self):
        with raises(
            "weight_scales=['a', 'b'] is not allowed: give one positive number or one per output channel"
        ):
            Quantization.from_scales(0.1, 0, ["a", "b"], 0.1, 0, 2)

    @pytest.mark.parametrize("mults, shifts", [([2**30] * 3, [0, 0]), ([2**30], [0, 1]), ([], [])])
    def test_multiplier_counts(self, mults, shifts):
        with raises(
            f"{len(mults)} multipliers and {len(shifts)} shifts: give one of each per output channel"
        ):
            Quantization.from_multipliers(mults, shifts, 0, 0)

    @pytest.mark.parametrize("m", [-1, 2**31, -(2**31)])
    def test_multiplier_range(self, m):
        with raises(f"multipliers[1]={m} is not allowed: a multiplier is in [0, 2^31 - 1]"):
            Quantization.from_multipliers([2**30, m], [0, 0], 0, 0)

    @pytest.mark.parametrize("s, rounding, hi", [
        (-32, "double", 31), (32, "double", 31), (-32, "single", 30), (31, "single", 30),
    ])
    def test_shift_range(self, s, rounding, hi):
        with raises(f"shifts[2]={s} is not allowed: a shift is in [-31, {hi}]"):
            Quantization.from_multipliers([2**30] * 3, [0, 0, s], 0, 0, rounding=rounding)

    @pytest.mark.parametrize("lo, hi", [(10, 5), (-129, None), (None, 128), (-200, 300)])
    def test_act_range_errors(self, lo, hi):
        with raises(
            f"act_min={lo!r}, act_max={hi!r} is not allowed: need -128 <= act_min <= act_max <= 127"
        ):
            Quantization.from_multipliers([2**30], [0], 0, 0, act_min=lo, act_max=hi)

    @pytest.mark.parametrize("rounding", ["nearest", "DOUBLE", None])
    def test_bad_rounding(self, rounding):
        msg = (
            f"rounding={rounding!r} is not allowed: use 'double' (TFLite's default) or 'single' "
            "(TFLite built with TFLITE_SINGLE_ROUNDING)"
        )
        with raises(msg):
            Quantization.from_scales(0.1, 0, 0.1, 0.1, 0, 1, rounding=rounding)
        with raises(msg):
            Quantization.from_multipliers([2**30], [0], 0, 0, rounding=rounding)
