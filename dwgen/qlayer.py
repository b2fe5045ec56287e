"""One quantized depthwise layer, ready to generate: spec + input shape + numbers.

`QuantizedLayer` is the single value every stage downstream takes (reference model,
oracle, planner, code generator, benchmarks). It checks that the weights, bias and
quantization agree with the layer's geometry, and normalizes the weights to TFLite's
filter layout `[kh, kw, C*M]` (output channel `oc = c*M + m` last).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from .errors import QuantizationError
from .layer import DepthwiseLayer, Geometry
from .quant import (
    INT8_MAX, INT8_MIN, INT32_MAX, INT32_MIN, MAX_SHIFT, MIN_SHIFT, Quantization, quantize_bias, quantize_weights,
)


def _integer_array(name: str, value: Any, lo: int, hi: int, kind: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":
        raise QuantizationError(
            f"{name} has dtype {arr.dtype}: it must be {kind} (integers); for a float kernel and "
            "bias use QuantizedLayer.from_float"
        )
    if arr.size and (arr.min() < lo or arr.max() > hi):
        raise QuantizationError(
            f"{name} holds values in [{arr.min()}, {arr.max()}], outside [{lo}, {hi}]: it must be {kind}"
        )
    return arr


def kernel_shapes(g: Geometry) -> list[tuple[int, ...]]:
    """The weight shapes users have: Keras [kh,kw,C,M] / [k,C,M], [kh,kw,C*M], TFLite [1,kh,kw,C*M]."""
    kh, kw, c, m = g.kernel_h, g.kernel_w, g.in_c, g.depth_multiplier
    accepted = {
        (kh, kw, c, m): None,
        (kh, kw, c * m): None,
        (1, kh, kw, c * m): None,
    }
    if g.rank == 1:
        accepted[(kw, c, m)] = None
        accepted[(kw, c * m)] = None
    return list(accepted)


def _kernel_to_tflite_layout(name: str, w: np.ndarray, g: Geometry) -> np.ndarray:
    """Accept any of `kernel_shapes(g)`; return [kh, kw, C*M]."""
    kh, kw, c, m = g.kernel_h, g.kernel_w, g.in_c, g.depth_multiplier
    accepted = kernel_shapes(g)
    if w.shape not in accepted:
        shapes = " or ".join(str(list(s)) for s in accepted)
        raise QuantizationError(
            f"{name} has shape {list(w.shape)}: for this layer it must be {shapes}"
        )
    return w.reshape(kh, kw, c * m)


@dataclass(frozen=True, eq=False)
class QuantizedLayer:
    layer: DepthwiseLayer
    geometry: Geometry
    quant: Quantization
    weights: np.ndarray  # int8 [kh, kw, OC]
    bias: np.ndarray  # int32 [OC]

    @classmethod
    def create(
        cls,
        layer: DepthwiseLayer,
        input_shape: Iterable[Any],
        quant: Quantization,
        weights: Any,
        bias: Any = None,
    ) -> "QuantizedLayer":
        g = layer.geometry(input_shape)
        oc = g.out_c
        w = _integer_array("weights", weights, INT8_MIN, INT8_MAX, "int8")
        w = _kernel_to_tflite_layout("weights", w, g).astype(np.int8)
        if bias is None:
            b = np.zeros(oc, dtype=np.int32)
        else:
            b = _integer_array("bias", bias, INT32_MIN, INT32_MAX, "int32")
            if b.shape != (oc,):
                raise QuantizationError(f"bias has shape {list(b.shape)}: it must be [{oc}] (one per output channel)")
            b = b.astype(np.int32)
            if not layer.use_bias and np.any(b != 0):
                raise QuantizationError(
                    "the layer has use_bias=False but a non-zero bias was given: pass bias=None "
                    "(or all zeros)"
                )
        if quant.num_channels == 1 and oc != 1:
            # A per-tensor multiplier given directly: replicate it, as TFLite's Prepare does.
            import dataclasses

            quant = dataclasses.replace(
                quant, multipliers=quant.multipliers * oc, shifts=quant.shifts * oc
            )
        # Also for a Quantization built field by field: the generated C relies on these ranges
        # (single rounding shifts by 31 - shift, which must stay positive).
        hi = 30 if quant.rounding == "single" else MAX_SHIFT
        for i, (mult, shift) in enumerate(zip(quant.multipliers, quant.shifts)):
            if not (0 <= mult <= INT32_MAX and MIN_SHIFT <= shift <= hi):
                raise QuantizationError(
                    f"multipliers[{i}]={mult}, shifts[{i}]={shift} is not allowed: a multiplier is in "
                    f"[0, 2^31 - 1] and a shift in [{MIN_SHIFT}, {hi}]"
                )
        if quant.num_channels != oc:
            raise QuantizationError(
                f"the quantization has {quant.num_channels} channel multipliers: this layer has "
                f"{oc} output channels (C={g.in_c} x depth_multiplier={g.depth_multiplier})"
            )
        w.setflags(write=False)
        b.setflags(write=False)
        return cls(layer=layer, geometry=g, quant=quant, weights=w, bias=b)

    @classmethod
    def from_float(
        cls,
        layer: DepthwiseLayer,
        input_shape: Iterable[Any],
        kernel: Any,
        bias: Any,
        input_scale: float,
        input_zero_point: int,
        output_scale: float,
        output_zero_point: int,
        per_channel: bool = True,
        rounding: str = "double",
    ) -> "QuantizedLayer":
        """Quantize float Keras weights the way the TFLite converter does."""
        g = layer.geometry(input_shape)
        if not isinstance(per_channel, (bool, np.bool_)):
            raise QuantizationError(f"per_channel={per_channel!r:.60} is not allowed: use True or False")
        k = np.asarray(kernel)
        if k.dtype.kind != "f":
            raise QuantizationError(f"kernel has dtype {k.dtype}: from_float takes float weights")
        k = _kernel_to_tflite_layout("kernel", k, g)
        qw, scales = quantize_weights(k, per_channel=per_channel)
        quant = Quantization.from_scales(
            input_scale, input_zero_point, scales, output_scale, output_zero_point,
            g.out_c, rounding=rounding,
        )
        qb = None
        if bias is not None and layer.use_bias:
            qb = quantize_bias(bias, quant.input_scale, np.asarray(scales), g.out_c)
        return cls.create(layer, input_shape, quant, qw, qb)

    # -- derived values ---------------------------------------------------------------------
    @property
    def act_min(self) -> int:
        return self.quant.bounds(self.layer.activation)[0]

    @property
    def act_max(self) -> int:
        return self.quant.bounds(self.layer.activation)[1]

    def with_rounding(self, rounding: str) -> "QuantizedLayer":
        import dataclasses

        return dataclasses.replace(self, quant=self.quant.with_rounding(rounding))

    def random_input(self, seed: int | np.random.Generator = 0) -> np.ndarray:
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        return rng.integers(INT8_MIN, INT8_MAX + 1, size=self.geometry.input_shape, dtype=np.int8)

    def check_input(self, x: Any) -> np.ndarray:
        arr = np.asarray(x)
        if arr.dtype != np.int8:
            raise QuantizationError(f"the input has dtype {arr.dtype}: it must be int8")
        if arr.shape != self.geometry.input_shape:
            raise QuantizationError(
                f"the input has shape {list(arr.shape)}: this layer takes {list(self.geometry.input_shape)}"
            )
        return arr


__all__ = ["QuantizedLayer", "kernel_shapes"]
