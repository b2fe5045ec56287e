"""`dwgen check`: prove every depthwise layer of a real model bit-exact, on its real data.

The whole model runs once under TFLite's reference kernels with every intermediate
tensor preserved. Each depthwise op's kernel is then generated, run on the op's actual
input tensor (on the host through cffi, or cross-compiled on an emulated Cortex-M) and
compared byte for byte with the op's actual output tensor. With TFLite Micro installed,
the same op also runs under TFLite Micro's reference kernels as a second opinion.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .codegen import EmitOptions, generate
from .errors import DwgenError, OracleUnavailable, show_value
from .names import check_distinct
from .tflite_model import DepthwiseOp, Model


@dataclass
class LayerCheck:
    op: DepthwiseOp
    name: str
    input_shape: list[int]
    output_shape: list[int]
    ok: bool
    mismatches: int = 0
    first_mismatch: dict | None = None  # {"index": [...], "got": v, "want": v}
    tflm: str = "not installed"  # "ok" | "mismatch" | "not installed" | "n/a: ..."
    cycles_per_mac: float | None = None
    data_flow: str = "portable"

    def as_dict(self) -> dict:
        return {
            "op": self.op.index, "subgraph": self.op.subgraph, "name": self.name,
            "tensor": self.op.output_name, "pattern": self.op.pattern,
            "input_shape": self.input_shape, "output_shape": self.output_shape,
            "result": "ok" if self.ok else "mismatch", "mismatches": self.mismatches,
            "first_mismatch": self.first_mismatch, "tflm": self.tflm,
            "cycles_per_mac_m4": self.cycles_per_mac, "data_flow": self.data_flow,
        }


@dataclass
class CheckReport:
    model: str
    target: str
    interpreter: str
    layers: list[LayerCheck] = field(default_factory=list)
    unsupported: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(layer.ok and layer.tflm != "mismatch" for layer in self.layers)

    def as_dict(self) -> dict:
        return {
            "model": self.model, "target": self.target, "interpreter": self.interpreter,
            "ok": self.ok, "layers": [layer.as_dict() for layer in self.layers],
            "unsupported": self.unsupported,
        }


#: Exit status of `dwgen check` and `dwgen bench` (cli.py's --help text and the README say the same).
EXIT_OK, EXIT_MISMATCH, EXIT_REJECTED = 0, 1, 2


def _tflite_message(exc: BaseException) -> str:
    msg = " ".join(str(exc).split()) or type(exc).__name__
    return msg if len(msg) <= 300 else msg[:297] + "..."


def load_inputs(path: str | Path, model: Model) -> list[np.ndarray]:
    """The model inputs in FILE.npy (one input) or FILE.npz (one array per input, in order).

    The .npy headers are read first and each array's dtype and shape must be the model
    input's before any data is read (at most `npyfile.MAX_ARRAY_BYTES` per array), so a
    header claiming 10^13 elements costs nothing. The file's content decides between .npy
    and .npz, not its name.
    """
    from .npyfile import _MAGIC, NpzArchive, load_npy_checked, open_regular_file

    label = str(path)
    wanted = [(tuple(int(v) for v in t.shape), _accepted_dtypes(t)) for t in model.inputs]
    with open_regular_file(path, label) as f:
        head = f.read(len(_MAGIC))
    if head == _MAGIC:
        if len(wanted) != 1:
            raise DwgenError(
                f"{label}: a .npy holds one array but the model has {len(wanted)} inputs: give an .npz "
                "with one array per input, in order"
            )
        shape, dtypes = wanted[0]
        arrays = [_explained(model, 0, lambda: load_npy_checked(path, shape, dtypes, label=label))]
    else:
        with NpzArchive(path, label) as npz:
            if len(npz.names) != len(wanted):
                raise DwgenError(
                    f"{label}: the archive holds {len(npz.names)} arrays but the model has {len(wanted)} "
                    "inputs: give one array per input, in order"
                )
            arrays = [_explained(model, i, lambda name=name, shape=shape, dtypes=dtypes: npz.load(name, shape, dtypes))
                      for i, (name, (shape, dtypes)) in enumerate(zip(npz.names, wanted))]
    return [_quantized(t, x) for t, x in zip(model.inputs, arrays)]


#: Float arrays given for a quantized input are quantized with its scale and zero point.
FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def _float_ok(t) -> bool:
    return (t.numpy_dtype is not None and t.numpy_dtype.kind in "iu" and t.per_tensor_scale is not None
            and len(t.zero_point) == 1)


def _accepted_dtypes(t) -> list[np.dtype] | None:
    if t.numpy_dtype is None:
        return None  # TFLite itself says what it wants (model_tensors)
    return [np.dtype(t.numpy_dtype), *(FLOAT_DTYPES if _float_ok(t) else ())]


def _explained(model: Model, i: int, load):
    """`load()`, with a dtype refusal saying what the model's input is in plain numbers."""
    try:
        return load()
    except DwgenError as exc:
        if ": the array has dtype " not in str(exc) and " has dtype " not in str(exc):
            raise
        t = model.inputs[i]
        what = f"model input {i} is {t.numpy_dtype} {'x'.join(str(int(v)) for v in t.shape)}"
        if _float_ok(t):
            what += (f"; float values are quantized with its scale {str(np.float32(t.per_tensor_scale))} and zero "
                     f"point {int(t.zero_point[0])}")
        raise DwgenError(f"{exc} ({what})") from None


def _quantized(t, x: np.ndarray) -> np.ndarray:
    """`x` as the input tensor's dtype: float values quantized as TFLite's QUANTIZE does
    (x / scale in float32, rounded half away from zero, plus the zero point, saturated)."""
    if t.numpy_dtype is None or x.dtype == t.numpy_dtype or not _float_ok(t):
        return x
    want = np.dtype(t.numpy_dtype)
    if not np.all(np.isfinite(x)):
        raise DwgenError(f"the float values given for input {show_value(t.name)} include NaN or infinity: "
                         "they cannot be quantized")
    q = np.asarray(x, np.float32) / np.float32(t.per_tensor_scale)
    q = np.sign(q) * np.floor(np.abs(q) + np.float32(0.5))
    info = np.iinfo(want)
    q = np.clip(q.astype(np.float64) + int(t.zero_point[0]), info.min, info.max)
    return np.ascontiguousarray(q.astype(want))


def model_tensors(model_bytes: bytes, model: Model, inputs: Sequence[np.ndarray], wanted: set[int]):
    """Run the model under BUILTIN_REF keeping every tensor; return the wanted ones.

    A model TFLite refuses to load or to run is rejected input (a DwgenError, exit status
    2), never a mismatch: nothing was compared.
    """
    from .oracle import _load_tflite

    mod, name = _load_tflite()
    try:
        interp = mod.Interpreter(
            model_content=model_bytes,
            experimental_op_resolver_type=mod.OpResolverType.BUILTIN_REF,
            experimental_preserve_all_tensors=True,
        )
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise DwgenError(f"TFLite ({name}) refuses to load the model: {_tflite_message(exc)}") from None
    details = interp.get_input_details()
    if len(details) != len(inputs):
        raise DwgenError(f"the model has {len(details)} inputs; {len(inputs)} were given")
    for d, x in zip(details, inputs):
        # plain ints in messages: the details hold numpy scalars and arrays
        index, want_shape, want_dtype = int(d["index"]), tuple(int(v) for v in d["shape"]), np.dtype(d["dtype"])
        if tuple(x.shape) != want_shape or x.dtype != want_dtype:
            raise DwgenError(
                f"input {index} must be {want_dtype} with shape {list(want_shape)}; "
                f"got {x.dtype} with shape {[int(v) for v in x.shape]}"
            )
        interp.set_tensor(index, x)
    try:
        interp.invoke()
        return {i: np.array(interp.get_tensor(i)) for i in wanted}, name
    except (ValueError, RuntimeError) as exc:
        raise DwgenError(f"TFLite ({name}) cannot run the model: {_tflite_message(exc)}") from None


def _first_mismatch(got: np.ndarray, want: np.ndarray) -> tuple[int, dict | None]:
    diff = got != want
    n = int(diff.sum())
    if n == 0:
        return 0, None
    idx = tuple(int(i) for i in np.argwhere(diff)[0])
    return n, {"index": list(idx), "got": int(got[idx]), "want": int(want[idx])}


def check_model(
    model_bytes: bytes,
    model: Model,
    model_name: str,
    ops: Sequence[DepthwiseOp],
    inputs: Sequence[np.ndarray],
    target: str = "host",
    progress: Callable[[int, int, str], None] | None = None,
) -> CheckReport:
    wanted = {op.input for op in ops} | {op.output for op in ops}
    tensors, interpreter = model_tensors(model_bytes, model, inputs, wanted)
    emit_target = "generic" if target == "host" else target
    # The host build compiles every kernel into one translation unit.
    check_distinct([op.c_name for op in ops])
    kernels = [generate(op.qlayer, EmitOptions(name=op.c_name, target=emit_target)) for op in ops]
    if target == "host":
        from .hostbuild import build

        mod = build(kernels) if kernels else None
        runner = None
    else:
        from .targetrun import TargetBuild

        runner = TargetBuild(kernels, target) if kernels else None
    report = CheckReport(model_name, target, interpreter,
                         unsupported=[{"op": u.index, "reason": u.reason} for u in model.unsupported])
    for i, (op, k) in enumerate(zip(ops, kernels)):
        if progress:
            progress(i, len(ops), k.name)
        g = op.qlayer.geometry
        x = tensors[op.input].reshape(g.input_shape).astype(np.int8, copy=False)
        want = tensors[op.output].reshape(g.output_shape)
        cpm = None
        if runner is None:
            got = mod[k.name](x)
        else:
            run = runner.run(k.name, x)
            got, cpm = run.output, run.cycles_per_mac
        n, first = _first_mismatch(got, want)
        check = LayerCheck(op, k.name, list(g.input_shape), list(g.output_shape), n == 0, n, first,
                           cycles_per_mac=cpm, data_flow=k.data_flow)
        check.tflm = _tflm_opinion(op, x, got)
        report.layers.append(check)
    if progress:
        progress(len(ops), len(ops), "")
    return report


def _tflm_opinion(op: DepthwiseOp, x: np.ndarray, got: np.ndarray) -> str:
    from .oracle import run_tflm

    try:
        y = run_tflm(op.qlayer, x)
    except OracleUnavailable as exc:
        return "not installed" if "not installed" in str(exc) else f"n/a: {exc}"
    return "ok" if np.array_equal(y, got) else "mismatch"


def progress_bar(stream=None, verb: str = "checking") -> Callable[[int, int, str], None]:
    """A one-line progress bar on a terminal; plain lines otherwise (stderr by default, so
    it never mixes with a --json report on stdout)."""
    stream = stream or sys.stderr
    tty = stream.isatty()

    def show(done: int, total: int, name: str) -> None:
        width = 30
        filled = width * done // max(total, 1)
        text = f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {name}"
        if tty:
            stream.write("\r" + text.ljust(70) + ("\n" if done == total else ""))
        elif done < total:
            stream.write(f"{verb} {done + 1}/{total}: {name}\n")
        stream.flush()

    return show


__all__ = [
    "EXIT_MISMATCH", "EXIT_OK", "EXIT_REJECTED", "CheckReport", "LayerCheck", "check_model",
    "load_inputs", "model_tensors", "progress_bar",
]
