"""The TFLite Micro drop-in: `dwgen emit MODEL.tflite --tflm` writes dwgen_tflm.c / .h.

TFLM's CMSIS-NN depthwise kernel calls `arm_depthwise_conv_wrapper_s8` for every int8
depthwise layer. Linked with `-Wl,--wrap=arm_depthwise_conv_wrapper_s8`, that call reaches
`__wrap_arm_depthwise_conv_wrapper_s8` in dwgen_tflm.c, which runs the dwgen kernel of the
layer and forwards every other call to `__real_arm_depthwise_conv_wrapper_s8` (CMSIS-NN's).

A call is a kernel's only when it is that kernel's layer, weights included:
1. its parameters: the kernel's own `NAME_cmsis_nn_check` (dims, strides, padding, dilation,
   offsets, activation, depth multiplier, the per-channel multipliers and shifts by value);
2. for baked weights, the filter and bias contents: FNV-1a (64 bit) over the int8 filter in
   TFLite's layout followed by the int32 bias (little-endian bytes), computed here from the
   weights the kernel was generated from and compared once per filter/bias pointer pair; the
   dispatcher then remembers the pointers, so later calls cost a pointer compare. A kernel
   without bias takes only calls without one (bias_data NULL). Extern-weights kernels read the
   model's weights, so the parameters decide.

The dispatcher is one per directory (the linker has one __wrap_ symbol per image): it lists
every kernel of the directory's manifest emitted with --tflm, whatever model it came from.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from . import __version__
from .codegen import template_environment
from .names import name_problem
from .tflite_model import c_comment_text

TFLM_C = "dwgen_tflm.c"
TFLM_H = "dwgen_tflm.h"
WRAPPED = "arm_depthwise_conv_wrapper_s8"
LINK_FLAG = f"-Wl,--wrap={WRAPPED}"

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MASK64 = (1 << 64) - 1
_HASH = re.compile(r"0x[0-9a-f]{16}")


def fnv1a64(data: bytes) -> int:
    h = _FNV_OFFSET
    for b in data:
        h = ((h ^ b) * _FNV_PRIME) & _MASK64
    return h


def weights_bytes(ql) -> bytes:
    """What dwgen_tflm.c hashes: the int8 filter [1][kh][kw][OC] as TFLite stores it, then the
    int32 bias [OC] as little-endian bytes (nothing when the layer has no bias)."""
    data = np.ascontiguousarray(ql.weights, dtype=np.int8).tobytes()
    if ql.layer.use_bias:
        data += np.ascontiguousarray(ql.bias, dtype="<i4").tobytes()
    return data


def tflm_info(ql, weights: str) -> dict:
    """The manifest's `tflm` record of a kernel: what the dispatcher compares."""
    g = ql.geometry
    baked = weights == "baked"
    return {
        "weights": weights,
        "filter_bytes": g.kernel_h * g.kernel_w * g.out_c,
        "bias_count": g.out_c if ql.layer.use_bias else 0,
        "weights_fnv1a64": f"0x{fnv1a64(weights_bytes(ql)):016x}" if baked else None,
    }


def _uint(v, hi: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= hi


def valid_tflm_info(info) -> bool:
    """A `tflm` record read back from manifest.json: only values that are safe to print as C."""
    if not isinstance(info, dict) or info.get("weights") not in ("baked", "extern"):
        return False
    h = info.get("weights_fnv1a64")
    if info["weights"] == "baked" and not (isinstance(h, str) and _HASH.fullmatch(h)):
        return False
    if info["weights"] == "extern" and h is not None:
        return False
    return _uint(info.get("filter_bytes"), 0x7FFFFFFF) and _uint(info.get("bias_count"), 0x7FFFFFFF)


def dispatched(entries: Sequence[dict]) -> list[dict]:
    """The manifest entries the dispatcher routes to: those emitted with --tflm."""
    return [e for e in entries if e.get("tflm") is not None]


def dispatcher_files(entries: Sequence[dict]) -> dict[str, str]:
    """dwgen_tflm.c and dwgen_tflm.h for the --tflm kernels among the manifest's `entries`."""
    kernels = []
    for e in dispatched(entries):
        name, info = e["name"], e["tflm"]
        if name_problem(name) is not None or not valid_tflm_info(info):  # never reached from dwgen's own manifest
            raise ValueError(f"manifest entry {name!r} is not one dwgen wrote")
        kernels.append({
            "name": name,
            "origin": f"{c_comment_text(e['model'])}, op {int(e['op_index'])}"
                      + (f" (--prefix {c_comment_text(e.get('prefix', ''))})" if e.get("prefix") else ""),
            "baked": info["weights"] == "baked",
            "filter_bytes": info["filter_bytes"],
            "bias_count": info["bias_count"],
            "hash": info["weights_fnv1a64"] or "0x0000000000000000",
            "extern_bias": info["weights"] == "extern" and info["bias_count"] > 0,
        })
    env = template_environment()
    ctx = {"version": __version__, "kernels": kernels, "wrapped": WRAPPED, "link_flag": LINK_FLAG}
    return {TFLM_C: env.get_template("dwgen_tflm.c.j2").render(**ctx),
            TFLM_H: env.get_template("dwgen_tflm.h.j2").render(**ctx)}


def is_generated_dispatcher(head: bytes | None, name: str) -> bool:
    return head is not None and head.startswith(f"/*\n * {name} - TFLite Micro dispatcher, dwgen ".encode())


__all__ = ["LINK_FLAG", "TFLM_C", "TFLM_H", "WRAPPED", "dispatched", "dispatcher_files", "fnv1a64",
           "is_generated_dispatcher", "tflm_info", "valid_tflm_info", "weights_bytes"]
