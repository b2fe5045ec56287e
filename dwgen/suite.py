"""The benchmark layer set of docs/benchmark-layers.md, as QuantizedLayers.

Shapes, kernels, strides, padding, dilation, depth multiplier, activation, zero points and
activation bounds are exactly those of the baseline table; per-channel scales, weights and
bias are random with a fixed seed per layer (the output scale is chosen so that the fused
activation gives the listed bounds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .layer import DepthwiseLayer
from .qlayer import QuantizedLayer
from .quant import Quantization


@dataclass(frozen=True)
class SuiteLayer:
    index: int
    name: str
    shape: tuple[int, ...]  # NHWC (or NWC for 1-D)
    kernel: tuple[int, int]
    stride: int
    padding: str
    dilation: int
    depth_multiplier: int
    activation: str
    in_zp: int
    out_zp: int
    act_min: int
    act_max: int
    cmsis_m4_cycles_per_mac: float
    cmsis_m4_cycles: int
    rank: int = 2


MLPERF_TINY = (
    SuiteLayer(0, "kws_dscnn_dw", (1, 25, 5, 64), (3, 3), 1, "same", 1, 1, "none", -127, 117, -128, 127, 8.98, 646891),
    SuiteLayer(1, "vww_dw1", (1, 48, 48, 8), (3, 3), 1, "same", 1, 1, "relu6", 82, -127, -127, -40, 10.24, 1698619),
    SuiteLayer(2, "vww_dw2", (1, 48, 48, 16), (3, 3), 2, "same", 1, 1, "none", -117, 108, -128, 127, 9.72, 805951),
    SuiteLayer(3, "vww_dw3", (1, 24, 24, 32), (3, 3), 1, "same", 1, 1, "relu6", 71, -81, -81, -2, 9.35, 1551571),
    SuiteLayer(4, "vww_dw4", (1, 24, 24, 32), (3, 3), 2, "same", 1, 1, "none", -13, -39, -128, 127, 9.36, 388143),
    SuiteLayer(5, "vww_dw5", (1, 12, 12, 64), (3, 3), 1, "same", 1, 1, "relu6", -46, 99, 99, 127, 9.03, 749271),
    SuiteLayer(6, "vww_dw6", (1, 12, 12, 64), (3, 3), 2, "same", 1, 1, "none", 50, 24, -128, 127, 9.04, 187405),
    SuiteLayer(7, "vww_dw7", (1, 6, 6, 128), (3, 3), 1, "same", 1, 1, "relu6", 37, -15, -15, 64, 8.60, 356701),
    SuiteLayer(8, "vww_dw12", (1, 6, 6, 128), (3, 3), 2, "same", 1, 1, "none", 77, 34, -128, 127, 8.60, 89193),
    SuiteLayer(9, "vww_dw13", (1, 3, 3, 256), (3, 3), 1, "same", 1, 1, "relu6", -41, 108, 108, 127, 7.88, 163401),
    SuiteLayer(10, "gen_5x5", (1, 16, 16, 32), (5, 5), 1, "same", 1, 1, "none", 21, -112, -128, 127, 12.43, 2545961),
    SuiteLayer(11, "gen_dil2_valid", (1, 20, 20, 16), (3, 3), 1, "valid", 2, 1, "relu6", 31, 40, 40, 125, 48.99, 1805912),
    SuiteLayer(12, "gen_m2", (1, 12, 12, 8), (3, 3), 1, "same", 1, 2, "none", -124, -92, -128, 127, 39.15, 811802),
    SuiteLayer(13, "gen_1d_k5", (1, 64, 32), (1, 5), 1, "same", 1, 1, "relu6", 93, 42, 42, 121, 21.04, 215446, rank=1),
    SuiteLayer(14, "gen_m4_odd_c", (1, 10, 10, 3), (3, 3), 2, "valid", 1, 4, "none", 115, -95, -128, 127, 15.20, 26270),
)

SUITES = {"mlperf-tiny": MLPERF_TINY}


def _output_scale(s: SuiteLayer, rng: np.random.Generator) -> float:
    if s.activation == "relu6":
        if s.act_max < 127:
            return 6.0 / (s.act_max - s.out_zp)
        return 6.0 / (127 - s.out_zp) * 0.9
    return float(rng.uniform(0.02, 0.2))


def quantized(s: SuiteLayer, seed: int | None = None) -> QuantizedLayer:
    rng = np.random.default_rng(1000 + s.index if seed is None else seed)
    layer = DepthwiseLayer(
        s.kernel, (1, s.stride) if s.rank == 1 else s.stride, s.padding, s.depth_multiplier, "channels_last",
        (1, s.dilation) if s.rank == 1 else s.dilation, s.activation, True, s.rank,
    )
    in_c = s.shape[-1]
    oc = in_c * s.depth_multiplier
    out_scale = _output_scale(s, rng)
    in_scale = float(rng.uniform(0.01, 0.05))
    # per-channel real multipliers around 2^-9 .. 2^-6 (right shifts, as in real models)
    real = 2.0 ** rng.uniform(-9.0, -6.0, oc)
    wscales = real * out_scale / in_scale
    q = Quantization.from_scales(in_scale, s.in_zp, wscales, out_scale, s.out_zp, oc)
    kh, kw = s.kernel
    weights = rng.integers(-127, 128, (kh, kw, in_c, s.depth_multiplier))
    bias = rng.integers(-20000, 20000, oc)
    ql = QuantizedLayer.create(layer, s.shape, q, weights, bias)
    if (ql.act_min, ql.act_max) != (s.act_min, s.act_max):
        raise AssertionError(f"{s.name}: bounds {(ql.act_min, ql.act_max)} != {(s.act_min, s.act_max)}")
    return ql


def suite_layers(name: str = "mlperf-tiny") -> list[tuple[SuiteLayer, QuantizedLayer]]:
    return [(s, quantized(s)) for s in SUITES[name]]


__all__ = ["MLPERF_TINY", "SUITES", "SuiteLayer", "quantized", "suite_layers"]
