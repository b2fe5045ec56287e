"""Kernels for every depthwise layer of a .tflite model, plus what a firmware build needs.

For each selected op: `<c_name>.c` / `<c_name>.h`. Then `dwgen_kernels.h`, an umbrella
header including them all, and `manifest.json`, which maps each op index to its files,
entry point (and CMSIS-NN wrapper) and tensor shapes. With `--tflm` (or once the directory
has one) also `dwgen_tflm.c` / `.h`, the TFLite Micro dispatcher over every kernel emitted
with --tflm (dwgen.tflm). Names in code come only from `DepthwiseOp.c_name` (a
sanitized identifier); raw tensor names appear only JSON-escaped in the manifest.

Several models share one output directory side by side: the manifest and the umbrella
header index every kernel of every model there. A model is known by its file name and
its `--prefix`; emitting it again replaces its own kernels and entries and keeps every
other model's, and a kernel name another model already uses there is refused.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from . import __version__
from .codegen import EmitOptions, GeneratedKernel, generate
from .errors import DwgenError
from .names import check_distinct, name_problem
from .outdir import read_head, show
from .tflite_model import DepthwiseOp, Model, c_comment_text
from .tflm import (LINK_FLAG, TFLM_C, TFLM_H, WRAPPED, dispatched, dispatcher_files, is_generated_dispatcher, tflm_info,
                   valid_tflm_info)

UMBRELLA = "dwgen_kernels.h"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class ModelKernel:
    op: DepthwiseOp
    kernel: GeneratedKernel
    as_written: bool  # the user's layer (NCHW / dilated), replacing the converter's pattern
    tflm: bool = False  # routed to by the TFLite Micro dispatcher (dwgen_tflm.c)

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
    tflm: bool = False,
) -> list[ModelKernel]:
    """`tflm`: kernels for the TFLite Micro dispatcher (their CMSIS-NN entry points included); the
    ops TFLite Micro runs, so not `as_written` (that replaces several ops by one kernel)."""
    if tflm and as_written:
        raise DwgenError("--tflm routes the depthwise ops TFLite Micro runs; --as-written kernels replace "
                         "several ops of the model, which TFLite Micro still runs one by one: use one of them")
    # c_name is unique per model (dwgen.names); ops of two models mixed by an API caller are not.
    check_distinct([op.c_name for op in ops])
    out = []
    for op in ops:
        ql = op.user_qlayer if as_written else op.qlayer
        if rounding:
            ql = ql.with_rounding(rounding)
        origin = f"From {c_comment_text(model_name)}, op {op.index} ({op.pattern}): {op.display_name}"
        opts = EmitOptions(name=op.c_name, weights=weights, target=target,
                           cmsis_nn_api=(cmsis_nn_api or tflm) and not ql.geometry.channels_first, origin=origin,
                           opt=opt)
        out.append(ModelKernel(op, generate(ql, opts), as_written, tflm and not ql.geometry.channels_first))
    return out


def umbrella_header(kernels: Sequence[ModelKernel], model_name: str, target: str = "generic", prefix: str = "") -> str:
    return _umbrella(directory_manifest(kernel_entries(kernels, model_name, target, prefix))["kernels"])


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _model_label(model: str, prefix: str) -> str:
    return c_comment_text(model) + (f" (--prefix {c_comment_text(prefix)})" if prefix else "")


def prefix_header(prefix: str) -> str:
    """The header of every kernel emitted with `--prefix prefix`: `<prefix>dwgen_kernels.h`."""
    return f"{prefix}{UMBRELLA}"


def _umbrella(entries: Sequence[dict], prefix: str | None = None) -> str:
    """dwgen_kernels.h (every entry), or with `prefix` the header of that prefix's kernels."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for e in entries:
        groups.setdefault(_model_key(e), []).append(e)
    if prefix is None:
        name, macro = UMBRELLA, "DWGEN_"
        head = [f" * {name} - every depthwise kernel dwgen {__version__} generated into this directory,",
                f" * for {_plural(len(groups), 'model')}. See manifest.json for op indices and tensor shapes."]
    else:
        name, macro = prefix_header(prefix), f"{prefix.upper()}DWGEN_"
        head = [f" * {name} - every depthwise kernel dwgen {__version__} generated with --prefix {prefix},",
                f" * for {_plural(len(groups), 'model')} ({UMBRELLA} includes those of every model in this directory).",
                " * See manifest.json for op indices and tensor shapes."]
    lines = [
        "/*",
        *head,
        " */",
        f"#ifndef {macro}KERNELS_H",
        f"#define {macro}KERNELS_H",
    ]
    for (model, p), group in groups.items():
        lines += ["", f"/* {_model_label(model, p)}: {_plural(len(group), 'kernel')} */"]
        for e in group:
            lines.append(f'#include "{e["name"]}.h" /* op {e["op_index"]} */')
    lines += ["", f"#define {macro}KERNEL_COUNT {len(entries)}", "", f"#endif /* {macro}KERNELS_H */", ""]
    return "\n".join(lines)


def _model_key(entry: dict) -> tuple[str, str]:
    return entry["model"], entry.get("prefix", "")


def kernel_entries(kernels: Sequence[ModelKernel], model_name: str, target: str, prefix: str = "") -> list[dict]:
    """The manifest's entries for `kernels` of the model file `model_name`."""
    entries = []
    for mk in kernels:
        ql, k = mk.qlayer, mk.kernel
        g = ql.geometry
        entries.append({
            "model": model_name,
            "prefix": prefix,
            "target": target,
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
            "cmsis_nn_wrapper": f"{k.name}_cmsis_nn" if k.options.cmsis_nn_api else None,
            "tflm": tflm_info(ql, k.options.weights) if mk.tflm else None,
        })
    return entries


def manifest(kernels: Sequence[ModelKernel], model_name: str, target: str, prefix: str = "") -> dict:
    """What one emit of `model_name` wrote (`dwgen emit --json`)."""
    entries = kernel_entries(kernels, model_name, target, prefix)
    doc = {"model": model_name, "prefix": prefix, "dwgen_version": __version__, "target": target, "kernels": entries}
    if dispatched(entries):
        doc["tflm_dispatcher"] = _dispatcher_record(entries)
    return doc


def directory_manifest(entries: Sequence[dict]) -> dict:
    """manifest.json: every kernel of every model in the directory, and the models."""
    entries = sorted(entries, key=lambda e: (_model_key(e), e["subgraph"], e["op_index"], e["name"]))
    models: dict[tuple[str, str], list[str]] = {}
    for e in entries:
        models.setdefault(_model_key(e), []).append(e["name"])
    return {
        "dwgen_version": __version__,
        "models": [{"model": m, "prefix": p, "header": prefix_header(p) if p else None, "kernels": names}
                   for (m, p), names in models.items()],
        "kernels": list(entries),
        "tflm_dispatcher": _dispatcher_record(entries) if dispatched(entries) else None,
    }


def _dispatcher_record(entries: Sequence[dict]) -> dict:
    """The manifest's description of dwgen_tflm.c: files, the function, the link flag, and the
    kernels it routes to (in the order it tries them)."""
    return {"files": [TFLM_C, TFLM_H], "function": f"__wrap_{WRAPPED}", "link_flag": LINK_FLAG,
            "kernels": [e["name"] for e in dispatched(entries)]}


def output_files(kernels: Sequence[ModelKernel], model_name: str, target: str, prefix: str = "") -> dict[str, str]:
    files: dict[str, str] = {}
    for mk in kernels:
        files.update(mk.kernel.files)
    files.update(index_files(kernels, model_name, target, prefix=prefix)[0])
    return files


#: A manifest.json larger than this is not one dwgen wrote: it is not merged.
MANIFEST_MAX_BYTES = 8 << 20


def _read_manifest(path: Path) -> list[dict] | None:
    """The kernel entries of the manifest dwgen wrote at `path` (this format, or the one-model
    format of earlier versions, whose top-level "model" and "target" each entry gets), or None
    (missing, unreadable, foreign, malformed)."""
    data = read_head(path, MANIFEST_MAX_BYTES + 1)
    if data is None or len(data) > MANIFEST_MAX_BYTES:
        return None
    try:
        doc = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    if not (isinstance(doc, dict) and isinstance(doc.get("kernels"), list)
            and isinstance(doc.get("dwgen_version"), str)):
        return None
    old_format = "models" not in doc
    if old_format and not all(isinstance(doc.get(k), str) for k in ("model", "target")):
        return None
    entries = []
    for e in doc["kernels"]:
        if not (isinstance(e, dict) and isinstance(e.get("name"), str) and name_problem(e["name"]) is None
                and all(isinstance(e.get(k), int) and not isinstance(e.get(k), bool) for k in ("subgraph", "op_index"))
                and isinstance(e.get("files"), list) and e["files"]
                and all(isinstance(f, str) and Path(f).name == f and f not in ("", ".", "..") for f in e["files"])):
            return None
        if e.get("tflm") is not None and not valid_tflm_info(e["tflm"]):
            return None
        if old_format:
            e = {"model": doc["model"], "prefix": "", "target": doc["target"], **e}
        prefix = e.get("prefix", "")
        if not (isinstance(e.get("model"), str) and isinstance(e.get("target"), str) and isinstance(prefix, str)
                and (prefix == "" or re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,23}", prefix))):
            return None
        entries.append(e)
    return entries


def _is_generated_umbrella(path: Path, name: str = UMBRELLA) -> bool:
    head = f"/*\n * {name} - every depthwise kernel dwgen ".encode()
    return read_head(path, len(head)) == head


def _show_model(model: str, prefix: str) -> str:
    return repr(model) + (f" (--prefix {prefix})" if prefix else "")


def index_files(kernels: Sequence[ModelKernel], model_name: str, target: str,
                directory: Path | None = None, prefix: str = "", tflm: bool = False) -> tuple[dict[str, str], set[str]]:
    """`dwgen_kernels.h` and `manifest.json`, and which of them may replace existing files.

    They index every kernel of every model in `directory`: the entries of the manifest dwgen
    wrote there are kept for kernels still present (all their files there) and not emitted
    again now, whatever model they belong to, so emits of different ops of one model, and
    of different models, into one directory add up (also when they run concurrently: the
    caller computes this under the directory's lock). A kernel name that another model's
    entry holds is refused: replacing it would leave that model's index wrong. A manifest
    dwgen did not write is replaced only with --force (and then forgotten).

    `tflm` (or a dwgen_tflm.c dwgen wrote there): also dwgen_tflm.c / .h, the TFLite Micro
    dispatcher over every --tflm kernel of the directory (dwgen.tflm).
    """
    new = kernel_entries(kernels, model_name, target, prefix)
    regenerated: set[str] = set()
    entries = list(new)
    old = _read_manifest(directory / MANIFEST) if directory is not None else None
    if old is not None:
        names = {e["name"]: e for e in new}
        for e in old:
            mine = names.get(e["name"])
            if mine is not None and _model_key(e) != (model_name, prefix):
                suggestion = re.sub(r"[^a-z0-9]+", "_", Path(model_name).stem.lower()).strip("_")[:16] or "m"
                if suggestion[0].isdigit():
                    suggestion = "m" + suggestion
                raise DwgenError(
                    f"kernel {e['name']!r} of {_show_model(model_name, prefix)} would replace the kernel of that "
                    f"name of {_show_model(*_model_key(e))} in {show(directory)}: emit one of them with another "
                    f"--prefix (e.g. --prefix {suggestion}_) or into another directory; nothing was written")
            if mine is None and all((directory / f).is_file() for f in e["files"]):
                entries.append(e)
        regenerated.add(MANIFEST)
        if _is_generated_umbrella(directory / UMBRELLA):
            regenerated.add(UMBRELLA)
    doc = directory_manifest(entries)
    files = {
        UMBRELLA: _umbrella(doc["kernels"]),
        MANIFEST: json.dumps(doc, indent=2, ensure_ascii=True) + "\n",
    }
    # <prefix>dwgen_kernels.h of every prefix in the directory must not be a kernel's file.
    headers = {prefix_header(p): p for p in {e.get("prefix", "") for e in doc["kernels"]} if p}
    for e in doc["kernels"]:
        for f in e["files"]:
            if f in headers:
                raise DwgenError(
                    f"kernel {e['name']!r} of {_show_model(*_model_key(e))} and the header of the kernels emitted "
                    f"with --prefix {headers[f]} would both be {f}: emit one of the models with another --prefix; "
                    "nothing was written")
    dispatcher_there = directory is not None and is_generated_dispatcher(read_head(directory / TFLM_C, 80), TFLM_C)
    if tflm or dispatcher_there:
        files.update(dispatcher_files(doc["kernels"]))
        for f in (TFLM_C, TFLM_H):
            if directory is not None and is_generated_dispatcher(read_head(directory / f, 80), f):
                regenerated.add(f)
    if prefix:
        header = prefix_header(prefix)
        files[header] = _umbrella([e for e in doc["kernels"] if e.get("prefix", "") == prefix], prefix)
        if directory is not None and _is_generated_umbrella(directory / header, header):
            regenerated.add(header)
    return files, regenerated


__all__ = ["MANIFEST", "UMBRELLA", "ModelKernel", "directory_manifest", "generate_model", "index_files", "prefix_header",
           "kernel_entries", "manifest", "output_files", "parse_only"]
