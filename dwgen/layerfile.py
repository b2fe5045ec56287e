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
      "weights": "layer.npz"                      # relative to this file's directory, inside it
    }

The .npz holds `weights` (int8, or float to be quantized like the TFLite converter does)
and optionally `bias` (int32 with int8 weights, float with float weights). Instead of
scales, `quantization` may give `multipliers` and `shifts` (one per output channel) with
optional `output_scale` or `act_min`/`act_max`. `SCHEMA` is the JSON Schema of the file.
Besides Keras' activations, `config.activation` may be "relu_n1_to_1": TFLite's fused
RELU_N1_TO_1 has no Keras name, and `dump` writes it for such layers.

A layer file is untrusted input: types are checked strictly (no string for a number, no
float for an integer, no bool for either), integers have at most 32 digits, nesting is
at most 32 deep, and the .npz is read header first (`dwgen.npyfile`). `weights` cannot
leave the layer file's directory (absolute paths, `..`, symbolic links) unless the
caller allows it (`--allow-outside-weights`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DwgenError
from .layer import DepthwiseLayer, from_keras_config
from .npyfile import MAX_ARRAY_BYTES, NpzArchive, human_bytes, open_regular_file
from .qlayer import QuantizedLayer, kernel_shapes
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
        "weights": {"type": "string", "minLength": 1,
                    "description": ".npz path, relative to LAYER.json's directory and inside it (unless "
                    "--allow-outside-weights): arrays 'weights' and optional 'bias'"},
    },
}

_TOP_KEYS = tuple(SCHEMA["properties"])
_QUANT_KEYS = tuple(SCHEMA["properties"]["quantization"]["properties"])


#: Largest layer file read (a per-channel scale list for ~1M channels fits).
MAX_LAYER_FILE_BYTES = 16 * 2**20
#: Deepest nesting of JSON objects and lists (a Keras config nests about 4 deep).
MAX_JSON_DEPTH = 32
#: Longest integer literal (int64 needs 20 characters; Python refuses > 4300 digits).
MAX_INT_DIGITS = 32
#: dtypes read from the .npz: integer weights are range-checked, float ones quantized.
WEIGHT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                 "float16", "float32", "float64")
OUTSIDE_FLAG = "--allow-outside-weights"


def _fail(path: Path, msg: str) -> DwgenError:
    return DwgenError(f"{path}: {msg}")


def _show(value: Any, limit: int = 60) -> str:
    """A JSON value for a one-line message: JSON spelling, cut short when long."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _require_keys(path: Path, where: str, obj: dict, allowed: tuple[str, ...], required: tuple[str, ...]) -> None:
    unknown = sorted(set(obj) - set(allowed))
    if unknown:
        shown = ", ".join(repr(k if len(k) <= 40 else k[:37] + "...") for k in unknown[:5])
        shown += ", ..." if len(unknown) > 5 else ""
        raise _fail(path, f"unknown key(s) {shown} in {where}: allowed are {', '.join(allowed)}")
    missing = [k for k in required if k not in obj]
    if missing:
        raise _fail(path, f"missing key(s) {', '.join(map(repr, missing))} in {where}")


class _BadNumber(Exception):
    """An integer literal too long to be a size or parameter (raised while parsing)."""


def _parse_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise _BadNumber(f"an integer has {digits} digits: integers in a layer file have at most {MAX_INT_DIGITS} digits")
    return int(text)


def _parse_constant(name: str) -> Any:
    raise _BadNumber(f"{name} is not a JSON number (JSON has no NaN or Infinity)")


def _depth(doc: Any) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest, stack = 0, [(doc, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (dict, list)):
            deepest = max(deepest, d)
            if d > MAX_JSON_DEPTH:
                break
            stack.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def _parse(path: Path) -> dict:
    with open_regular_file(path) as f:
        # read(n) allocates n bytes up front: ask for what the file holds, +1 to see it grow.
        raw = f.read(min(os.fstat(f.fileno()).st_size, MAX_LAYER_FILE_BYTES) + 1)
    if len(raw) > MAX_LAYER_FILE_BYTES:
        raise _fail(path, f"the file is larger than {human_bytes(MAX_LAYER_FILE_BYTES)}: a layer file is "
                          "a small JSON document (weights go in its .npz)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _fail(path, "not UTF-8 text: a layer file is JSON") from None
    try:
        doc = json.loads(text, parse_int=_parse_int, parse_constant=_parse_constant)
    except json.JSONDecodeError as exc:
        raise _fail(path, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except _BadNumber as exc:
        raise _fail(path, f"not valid JSON for dwgen: {exc}") from None
    except RecursionError:
        raise _fail(path, f"nested too deeply: a layer file has at most {MAX_JSON_DEPTH} levels of objects "
                          "and lists") from None
    if _depth(doc) > MAX_JSON_DEPTH:
        raise _fail(path, f"nested too deeply: a layer file has at most {MAX_JSON_DEPTH} levels of objects "
                          "and lists")
    if not isinstance(doc, dict):
        raise _fail(path, "the top level must be a JSON object")
    return doc


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# Each 'quantization' key: (check, what is accepted). JSON types are checked here, so a
# message names the key as written; value ranges are checked by dwgen.quant.
_QUANT_TYPES: dict[str, tuple[Any, str]] = {
    "input_scale": (_is_number, "a positive number"),
    "output_scale": (_is_number, "a positive number"),
    "input_zero_point": (_is_int, "an integer in [-128, 127]"),
    "output_zero_point": (_is_int, "an integer in [-128, 127]"),
    "act_min": (_is_int, "an integer in [-128, 127]"),
    "act_max": (_is_int, "an integer in [-128, 127]"),
    "weight_scales": (lambda v: _is_number(v) or (isinstance(v, list) and bool(v) and all(map(_is_number, v))),
                      "a positive number, or a list of them (one per output channel)"),
    "per_channel": (lambda v: isinstance(v, bool), "true or false"),
    "multipliers": (lambda v: isinstance(v, list) and bool(v) and all(map(_is_int, v)),
                    "a list of integers, one per output channel"),
    "shifts": (lambda v: isinstance(v, list) and bool(v) and all(map(_is_int, v)),
               "a list of integers, one per output channel"),
    "rounding": (lambda v: v in ("double", "single"), '"double" or "single"'),
}


def _check_types(path: Path, doc: dict) -> None:
    cls = doc["class_name"]
    if not isinstance(cls, str) or cls not in ("DepthwiseConv2D", "DepthwiseConv1D"):
        raise _fail(path, f"'class_name' is {_show(cls)}: it must be \"DepthwiseConv2D\" or \"DepthwiseConv1D\"")
    if not isinstance(doc["config"], dict):
        raise _fail(path, f"'config' is {_show(doc['config'])}: it must be an object (the Keras layer's get_config())")
    shape = doc["input_shape"]
    if not isinstance(shape, list) or not all(d is None or _is_int(d) for d in shape):
        raise _fail(path, f"'input_shape' is {_show(shape)}: it must be a list of sizes (integers; the batch may be null)")
    if not isinstance(doc["weights"], str) or not doc["weights"]:
        raise _fail(path, f"'weights' is {_show(doc['weights'])}: it must be the path of an .npz file, relative "
                          "to the layer file")
    for key, value in doc["quantization"].items():
        ok, accepted = _QUANT_TYPES[key]
        if not ok(value):
            raise _fail(path, f"'quantization.{key}' is {_show(value)}: it must be {accepted}")


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def weights_path(path: Path, given: str, allow_outside: bool = False) -> Path:
    """Where a layer file's `weights` is read from.

    `given` is relative to the directory of the layer file (as `path` names it). Unless
    `allow_outside`, it must be relative and, with every symbolic link resolved, inside
    that directory: a layer file from elsewhere cannot make dwgen open files outside it.
    """
    if "\0" in given:
        raise _fail(path, f"'weights' is {_show(given, 200)}: a file name cannot contain a NUL character")
    p = Path(given)
    how = f"pass {OUTSIDE_FLAG} to read weights from elsewhere"
    if p.is_absolute() and not allow_outside:
        raise _fail(path, f"'weights' is the absolute path {_show(given, 200)}: weights are read relative to the layer "
                          f"file and must be in its directory or below it ({how})")
    target = path.parent / p
    if allow_outside:
        return target
    try:
        base = path.parent.resolve()
        real = target.resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop (RuntimeError before Python 3.13)
        raise _fail(path, f"'weights' {_show(given, 200)} cannot be resolved ({exc.__class__.__name__}): "
                          "check its symbolic links") from None
    if not _inside(real, base):
        # Spelled inside but resolved outside: a symbolic link on the way leads out.
        through = " through a symbolic link" if _inside(Path(os.path.normpath(base / p)), base) else ""
        raise _fail(path, f"'weights' {_show(given, 200)} leads outside the layer file's directory{through}: weights "
                          f"must be in the layer file's directory or below it ({how})")
    return real


def _read_npz(path: Path, doc: dict, g, allow_outside: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """The 'weights' and 'bias' arrays, each header checked against the layer before it is read."""
    label = doc["weights"] if doc["weights"].isprintable() else _show(doc["weights"])
    npz_path = weights_path(path, doc["weights"], allow_outside)
    try:
        with NpzArchive(npz_path, label) as npz:
            keys = set(npz.names)
            if keys - {"weights", "bias"} or "weights" not in keys:
                shown = ", ".join(repr(k) for k in list(npz.names)[:5]) + (", ..." if len(keys) > 5 else "")
                raise DwgenError(f"{label} holds [{shown}]: it must hold 'weights' and optionally 'bias'")
            weights = npz.load("weights", kernel_shapes(g), WEIGHT_DTYPES)
            bias = npz.load("bias", (g.out_c,), WEIGHT_DTYPES) if "bias" in keys else None
    except DwgenError as exc:
        raise _fail(path, str(exc)) from None
    return weights, bias


@dataclass(frozen=True)
class LayerDoc:
    qlayer: QuantizedLayer
    name: str  # the Keras layer name, or the file's stem when the config has none


#: The fused activation a layer file may name that Keras has no name for (see the module doc).
TFLITE_ONLY_ACTIVATION = "relu_n1_to_1"


def _layer_from_config(config: dict, class_name: str) -> DepthwiseLayer:
    """The Keras config's layer; "relu_n1_to_1" (written by `dump`) is taken as that activation."""
    if config.get("activation") != TFLITE_ONLY_ACTIVATION:
        return from_keras_config(config, class_name=class_name)
    lay = from_keras_config({**config, "activation": "linear"}, class_name=class_name)
    return DepthwiseLayer(lay.kernel_size, lay.strides, lay.padding, lay.depth_multiplier, lay.data_format,
                          lay.dilation_rate, TFLITE_ONLY_ACTIVATION, lay.use_bias, lay.rank)


def load(path: str | Path, allow_outside_weights: bool = False) -> QuantizedLayer:
    """Read LAYER.json and its .npz into a QuantizedLayer (every problem is a DwgenError)."""
    return read(path, allow_outside_weights).qlayer


def read(path: str | Path, allow_outside_weights: bool = False) -> LayerDoc:
    """Like `load`, also returning the layer's name (used for the default kernel name).

    `weights` must be inside the layer file's directory unless `allow_outside_weights`
    (see `weights_path`).
    """
    path = Path(path)
    doc = _parse(path)
    _require_keys(path, "the layer file", doc, _TOP_KEYS, tuple(SCHEMA["required"]))
    quant = doc["quantization"]
    if not isinstance(quant, dict):
        raise _fail(path, f"'quantization' is {_show(quant)}: it must be an object")
    _require_keys(path, "'quantization'", quant, _QUANT_KEYS, ("input_zero_point", "output_zero_point"))
    _check_types(path, doc)
    try:
        layer = _layer_from_config(doc["config"], doc["class_name"])
        g = layer.geometry(doc["input_shape"])
    except DwgenError as exc:
        raise _fail(path, str(exc)) from None
    n_weights = g.kernel_h * g.kernel_w * g.out_c
    if n_weights > MAX_ARRAY_BYTES:
        raise _fail(path, f"the layer has {n_weights} weights (kernel {g.kernel_h}x{g.kernel_w}, "
                          f"{g.in_c} channels x depth_multiplier {g.depth_multiplier}): dwgen reads at most "
                          f"{human_bytes(MAX_ARRAY_BYTES)} of weights")
    weights, bias = _read_npz(path, doc, g, allow_outside_weights)
    try:
        ql = _quantized_layer(layer, doc["input_shape"], quant, weights, bias)
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


__all__ = ["SCHEMA", "LayerDoc", "dump", "load", "read", "weights_path"]
