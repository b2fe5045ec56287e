"""Kernels for every depthwise layer of a .tflite model, plus what a firmware build needs.

For each selected op: `<c_name>.c` / `<c_name>.h`. Then `dwgen_kernels.h`, an umbrella
header including them all, and `manifest.json`, which maps each op index to its files,
entry point and tensor shapes. Names in code come only from `DepthwiseOp.c_name` (a
sanitized identifier); raw tensor names appear only JSON-escaped in the manifest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from . import __version__
from .codegen import EmitOptions, GeneratedKernel, generate
from .errors import DwgenError
from .names import check_distinct, name_problem
from .outdir import read_head
from .tflite_model import DepthwiseOp, Model, c_comment_text

UMBRELLA = "dwgen_kernels.h"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class ModelKernel:
    op: DepthwiseOp
    kernel: GeneratedKernel
    as_written: bool  # the user's layer (NCHW / dilated), replacing the converter's pattern

    @property
    def qlayer(self):
        return self.op.user_qlayer if self.as_written else self.op.qlayer


def parse_only(text: str | None, model: Model) -> list[DepthwiseOp]:
    """`--only 3,7`: op indices as `dwgen inspect` shows them."""
    ops = model.depthwise
    if not ops:
        why = "; ".join(f"op {u.index}: {u.reason}" for u in model.unsupported) or "it has no DEPTHWISE_CONV_2D"
        raise DwgenError(f"the model has no depthwise layer dwgen can generate ({why})")
    if text is None:
        return list(ops)
    by_index = {op.index: op for op in ops}
    chosen = []
    for part in text.split(","):
        part = part.strip()
        # str.isdigit() also takes '²' and other Unicode digits int() refuses; 9 digits
        # keep int() far from Python's digit limit and exceed any model's op count.
        if not (part.isascii() and part.isdigit()) or len(part) > 9:
            shown = text if len(text) <= 40 else text[:37] + "..."
            raise DwgenError(f"--only {shown!r}: give op indices separated by commas, e.g. --only 3,7 (ASCII digits only)")
        idx = int(part)
        if idx not in by_index:
            known = ", ".join(str(i) for i in sorted(by_index)) or "none"
            raise DwgenError(f"--only: op {idx} is not a depthwise layer dwgen can generate (those are: {known})")
        if by_index[idx] not in chosen:
            chosen.append(by_index[idx])
    return chosen


def generate_model(
    ops: Sequence[DepthwiseOp],
    target: str = "generic",
    weights: str = "baked",
    rounding: str | None = None,
    as_written: bool = False,
    cmsis_nn_api: bool = False,
    model_name: str = "model",
    opt: str = "speed",
) -> list[ModelKernel]:
    # c_name is unique per model (dwgen.names); ops of two models mixed by an API caller are not.
    check_distinct([op.c_name for op in ops])
    out = []
    for op in ops:
        ql = op.user_qlayer if as_written else op.qlayer
        if rounding:
            ql = ql.with_rounding(rounding)
        origin = f"From {c_comment_text(model_name)}, op {op.index} ({op.pattern}): {op.display_name}"
        opts = EmitOptions(name=op.c_name, weights=weights, target=target,
                           cmsis_nn_api=cmsis_nn_api and not ql.geometry.channels_first, origin=origin,
                           opt=opt)
        out.append(ModelKernel(op, generate(ql, opts), as_written))
    return out


def umbrella_header(kernels: Sequence[ModelKernel], model_name: str) -> str:
    return _umbrella([{"name": mk.kernel.name, "op_index": mk.op.index} for mk in kernels], model_name)


def _umbrella(entries: Sequence[dict], model_name: str) -> str:
    lines = [
        "/*",
        f" * {UMBRELLA} - every depthwise kernel dwgen {__version__} generated for",
        f" * {c_comment_text(model_name)}. See manifest.json for op indices and tensor shapes.",
        " */",
        "#ifndef DWGEN_KERNELS_H",
        "#define DWGEN_KERNELS_H",
        "",
    ]
    for e in entries:
        lines.append(f'#include "{e["name"]}.h" /* op {e["op_index"]} */')
    lines += ["", f"#define DWGEN_KERNEL_COUNT {len(entries)}", "", "#endif /* DWGEN_KERNELS_H */", ""]
    return "\n".join(lines)


def manifest(kernels: Sequence[ModelKernel], model_name: str, target: str) -> dict:
    entries = []
    for mk in kernels:
        ql, k = mk.qlayer, mk.kernel
        g = ql.geometry
        entries.append({
            "subgraph": mk.op.subgraph,
            "op_index": mk.op.index,
            "replaces_ops": list(mk.op.pattern_ops) if mk.as_written else [mk.op.index],
            "pattern": mk.op.pattern,
            "name": k.name,
            "files": sorted(k.files),
            "entry_point": f"void {k.name}({k.signature})",
            "input_tensor": mk.op.user_input if mk.as_written else mk.op.input,
            "output_tensor": mk.op.user_output if mk.as_written else mk.op.output,
            "input_name": mk.op.input_name,
            "output_name": mk.op.output_name,
            "input_shape": list(g.input_shape),
            "output_shape": list(g.output_shape),
            "layout": g.data_format,
            "macs": g.macs,
            "scratch_bytes": 0,
            "data_flow": k.data_flow,
        })
    return {"model": model_name, "dwgen_version": __version__, "target": target, "kernels": entries}


def output_files(kernels: Sequence[ModelKernel], model_name: str, target: str) -> dict[str, str]:
    files: dict[str, str] = {}
    for mk in kernels:
        files.update(mk.kernel.files)
    files.update(index_files(kernels, model_name, target)[0])
    return files


#: A manifest.json larger than this is not one dwgen wrote: it is not merged.
MANIFEST_MAX_BYTES = 8 << 20


def _read_manifest(path: Path) -> dict | None:
    """The manifest dwgen wrote at `path`, or None (missing, unreadable, foreign, malformed)."""
    data = read_head(path, MANIFEST_MAX_BYTES + 1)
    if data is None or len(data) > MANIFEST_MAX_BYTES:
        return None
    try:
        doc = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    if not (isinstance(doc, dict) and isinstance(doc.get("kernels"), list)
            and all(isinstance(doc.get(k), str) for k in ("model", "dwgen_version", "target"))):
        return None
    for e in doc["kernels"]:
        if not (isinstance(e, dict) and isinstance(e.get("name"), str) and name_problem(e["name"]) is None
                and all(isinstance(e.get(k), int) and not isinstance(e.get(k), bool) for k in ("subgraph", "op_index"))
                and isinstance(e.get("files"), list) and e["files"]
                and all(isinstance(f, str) and Path(f).name == f and f not in ("", ".", "..") for f in e["files"])):
            return None
    return doc


def _is_generated_umbrella(path: Path) -> bool:
    head = f"/*\n * {UMBRELLA} - every depthwise kernel dwgen ".encode()
    return read_head(path, len(head)) == head


def index_files(kernels: Sequence[ModelKernel], model_name: str, target: str,
                directory: Path | None = None) -> tuple[dict[str, str], set[str]]:
    """`dwgen_kernels.h` and `manifest.json`, and which of them may replace existing files.

    They index every kernel of the model in `directory`: when it already holds a manifest
    dwgen wrote for the same model file name, target and dwgen version, its entries for
    kernels still present there (and not emitted again now) are kept, so emits of different
    ops of one model into one directory add up (also when they run concurrently: the caller
    computes this under the directory's lock). Any other manifest is replaced only with --force.
    """
    doc = manifest(kernels, model_name, target)
    regenerated: set[str] = set()
    old = _read_manifest(directory / MANIFEST) if directory is not None else None
    if old is not None and (old["model"], old["target"], old["dwgen_version"]) == (model_name, target, __version__):
        new = {e["name"] for e in doc["kernels"]}
        kept = [e for e in old["kernels"]
                if e["name"] not in new and all((directory / f).is_file() for f in e["files"])]
        doc["kernels"] = sorted(kept + doc["kernels"], key=lambda e: (e["subgraph"], e["op_index"], e["name"]))
        regenerated.add(MANIFEST)
        if _is_generated_umbrella(directory / UMBRELLA):
            regenerated.add(UMBRELLA)
    files = {
        UMBRELLA: _umbrella(doc["kernels"], model_name),
        MANIFEST: json.dumps(doc, indent=2, ensure_ascii=True) + "\n",
    }
    return files, regenerated


__all__ = ["MANIFEST", "UMBRELLA", "ModelKernel", "generate_model", "index_files", "manifest", "output_files", "parse_only"]
