"""LAYER.json: one layer described for `dwgen emit` / `dwgen bench`.

    {
      "class_name": "DepthwiseConv2D",            # or "DepthwiseConv1D"
      "config": { ... layer.get_config() ... },   # tf.keras 2.x or Keras 3
      "input_shape": [1, 25, 5, 64],              # in the layer's data_format, batch optional
      "quantization": {
        "input_scale": 0.02, "input_zero_point": -128,
        "output_scale": 0.05, "output_zero_point": -128,
        "weight_scales": [...],                   # int8 weights: one per output channel, or one
        "rounding": "double"                      # optional: "double" (default) or "single"
      },
      "weights": "layer.npz"                      # path relative to this file
    }

The .npz holds `weights` (int8, or float to be quantized like the TFLite converter does)
and optionally `bias` (int32 with int8 weights, float with float weights). Instead of
scales, `quantization` may give `multipliers` and `shifts` (one per output channel) with
optional `output_scale` or `act_min`/`act_max`. `SCHEMA` is the JSON Schema of the file.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DwgenError
from .layer import from_keras_config
from .qlayer import QuantizedLayer
from .quant import Quantization

_NUMBER_ARRAY = {"type": "array", "items": {"type": "number"}, "minItems": 1}
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "dwgen LAYER.json",
    "type": "object",
    "additionalProperties": False,
    "required": ["class_name", "config", "input_shape", "quantization", "weights"],
    "properties": {
        "class_name": {"enum": ["DepthwiseConv2D", "DepthwiseConv1D"]},
        "config": {"type": "object", "description": "keras layer.get_config() (tf.keras 2.x or Keras 3)"},
        "input_shape": {
            "type": "array", "items": {"type": ["integer", "null"]}, "minItems": 2, "maxItems": 4,
            "description": "input shape in the layer's data_format; batch optional (null or absent = 1)",
        },
        "quantization": {
            "type": "object",
            "additionalProperties": False,
            "required": ["input_zero_point", "output_zero_point"],
            "properties": {
                "input_scale": {"type": "number", "exclusiveMinimum": 0},
                "input_zero_point": {"type": "integer", "minimum": -128, "maximum": 127},
                "output_scale": {"type": "number", "exclusiveMinimum": 0},
                "output_zero_point": {"type": "integer", "minimum": -128, "maximum": 127},
                "weight_scales": {"oneOf": [{"type": "number", "exclusiveMinimum": 0}, _NUMBER_ARRAY]},
                "per_channel": {"type": "boolean", "description": "float weights: quantize per channel (default true)"},
                "multipliers": {"type": "array", "items": {"type": "integer"}},
                "shifts": {"type": "array", "items": {"type": "integer"}},
                "act_min": {"type": "integer", "minimum": -128, "maximum": 127},
                "act_max": {"type": "integer", "minimum": -128, "maximum": 127},
                "rounding": {"enum": ["double", "single"]},
            },
        },
        "weights": {"type": "string", "description": ".npz path, relative to LAYER.json: arrays 'weights' and optional 'bias'"},
    },
}

_TOP_KEYS = tuple(SCHEMA["properties"])
_QUANT_KEYS = tuple(SCHEMA["properties"]["quantization"]["properties"])


def _fail(path: Path, msg: str) -> DwgenError:
    return DwgenError(f"{path}: {msg}")


def _require_keys(path: Path, where: str, obj: dict, allowed: tuple[str, ...], required: tuple[str, ...]) -> None:
    unknown = sorted(set(obj) - set(allowed))
    if unknown:
        raise _fail(path, f"unknown key(s) {', '.join(map(repr, unknown))} in {where}: allowed are {', '.join(allowed)}")
    missing = [k for k in required if k not in obj]
    if missing:
        raise _fail(path, f"missing key(s) {', '.join(map(repr, missing))} in {where}")


def _read_npz(path: Path, npz_path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    if not npz_path.is_file():
        raise _fail(path, f"the weights file {str(npz_path)!r} does not exist")
    try:
        with np.load(npz_path, allow_pickle=False) as data:
            keys = set(data.files)
            unknown = sorted(keys - {"weights", "bias"})
            if unknown or "weights" not in keys:
                raise _fail(
                    path,
                    f"{npz_path.name} holds {sorted(keys)}: it must hold 'weights' and optionally 'bias'",
                )
            weights = data["weights"]
            bias = data["bias"] if "bias" in keys else None
    except DwgenError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise _fail(path, f"cannot read {npz_path.name} as an .npz archive ({exc})") from None
    return weights, bias


@dataclass(frozen=True)
class LayerDoc:
    qlayer: QuantizedLayer
    name: str  # the Keras layer name, or the file's stem when the config has none


def load(path: str | Path) -> QuantizedLayer:
    """Read LAYER.json and its .npz into a QuantizedLayer (every problem is a DwgenError)."""
    return read(path).qlayer


def read(path: str | Path) -> LayerDoc:
    """Like `load`, also returning the layer's name (used for the default kernel name)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DwgenError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DwgenError(f"{path}: cannot read it ({exc.__class__.__name__})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(path, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(doc, dict):
        raise _fail(path, "the top level must be a JSON object")
    _require_keys(path, "the layer file", doc, _TOP_KEYS, tuple(SCHEMA["required"]))
    quant = doc["quantization"]
    if not isinstance(quant, dict):
        raise _fail(path, "'quantization' must be an object")
    _require_keys(path, "'quantization'", quant, _QUANT_KEYS, ("input_zero_point", "output_zero_point"))
    if not isinstance(doc["weights"], str):
        raise _fail(path, "'weights' must be the path of an .npz file")
    shape = doc["input_shape"]
    if not isinstance(shape, list):
        raise _fail(path, "'input_shape' must be a list of sizes")
    try:
        layer = from_keras_config(doc["config"], class_name=doc["class_name"])
    except DwgenError as exc:
        raise _fail(path, str(exc)) from None
    weights, bias = _read_npz(path, (path.parent / doc["weights"]))
    try:
        ql = _quantized_layer(layer, shape, quant, weights, bias)
    except DwgenError as exc:
        raise _fail(path, str(exc)) from None
    name = doc["config"].get("name")
    return LayerDoc(ql, name if isinstance(name, str) and name else path.stem)


def _quantized_layer(layer, shape, quant: dict, weights: np.ndarray, bias) -> QuantizedLayer:
    rounding = quant.get("rounding", "double")
    g = layer.geometry(shape)
    if weights.dtype.kind == "f":
        for key in ("input_scale", "output_scale"):
            if key not in quant:
                raise DwgenError(f"float weights need {key!r} in 'quantization' to be quantized")
        if "multipliers" in quant or "weight_scales" in quant:
            raise DwgenError("float weights are quantized by dwgen: give no 'weight_scales' or 'multipliers'")
        if bias is not None and bias.dtype.kind != "f":
            raise DwgenError(f"with float weights the bias must be float too, not {bias.dtype}")
        ql = QuantizedLayer.from_float(
            layer, shape, weights, bias, quant["input_scale"], quant["input_zero_point"],
            quant["output_scale"], quant["output_zero_point"],
            per_channel=quant.get("per_channel", True), rounding=rounding,
        )
    else:
        if "multipliers" in quant or "shifts" in quant:
            q = Quantization.from_multipliers(
                quant.get("multipliers", []), quant.get("shifts", []), quant["input_zero_point"],
                quant["output_zero_point"], rounding=rounding, output_scale=quant.get("output_scale"),
                act_min=quant.get("act_min"), act_max=quant.get("act_max"),
            )
        else:
            for key in ("input_scale", "output_scale", "weight_scales"):
                if key not in quant:
                    raise DwgenError(
                        f"int8 weights need {key!r} in 'quantization' (or 'multipliers' and 'shifts')"
                    )
            q = Quantization.from_scales(
                quant["input_scale"], quant["input_zero_point"], quant["weight_scales"],
                quant["output_scale"], quant["output_zero_point"], g.out_c, rounding=rounding,
            )
        ql = QuantizedLayer.create(layer, shape, q, weights, bias)
    return ql


def dump(ql: QuantizedLayer, json_path: str | Path, npz_name: str | None = None) -> Path:
    """Write a QuantizedLayer as LAYER.json + .npz (int8 weights, int32 bias)."""
    json_path = Path(json_path)
    npz_name = npz_name or (json_path.stem + ".npz")
    q, g = ql.quant, ql.geometry
    quant: dict[str, Any] = {"input_zero_point": q.input_zero_point, "output_zero_point": q.output_zero_point}
    if q.weight_scales is not None:
        quant.update(input_scale=q.input_scale, output_scale=q.output_scale, weight_scales=list(q.weight_scales))
    else:
        quant.update(multipliers=list(q.multipliers), shifts=list(q.shifts))
        if q.act_range is not None:
            quant.update(act_min=q.act_range[0], act_max=q.act_range[1])
        if q.output_scale is not None:
            quant["output_scale"] = q.output_scale
    quant["rounding"] = q.rounding
    cfg = ql.layer.describe()
    cls = cfg.pop("class_name")
    if ql.layer.rank == 1:
        cfg.update(kernel_size=cfg["kernel_size"][1], strides=cfg["strides"][1], dilation_rate=cfg["dilation_rate"][1])
    if cfg["activation"] == "none":
        cfg["activation"] = "linear"
    doc = {"class_name": cls, "config": cfg, "input_shape": list(g.input_shape), "quantization": quant, "weights": npz_name}
    json_path.write_text(json.dumps(doc, indent=2) + "\n")
    np.savez(json_path.parent / npz_name, weights=ql.weights.reshape(g.kernel_h, g.kernel_w, g.in_c, g.depth_multiplier), bias=ql.bias)
    return json_path


__all__ = ["SCHEMA", "LayerDoc", "dump", "load", "read"]
