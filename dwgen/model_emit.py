"""Kernels for every depthwise layer of a .tflite model, plus what a firmware build needs.

For each selected op: `<c_name>.c` / `<c_name>.h`. Then `dwgen_kernels.h`, an umbrella
header including them all, and `manifest.json`, which maps each op index to its files,
entry point and tensor shapes. Names in code come only from `DepthwiseOp.c_name` (a
sanitized identifier); raw tensor names appear only JSON-escaped in the manifest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Sequence

from . import __version__
from .codegen import EmitOptions, GeneratedKernel, generate
from .errors import DwgenError
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
        if not part.isdigit():
            raise DwgenError(f"--only {text!r}: give op indices separated by commas, e.g. --only 3,7")
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
    lines = [
        "/*",
        f" * {UMBRELLA} - every depthwise kernel dwgen {__version__} generated for",
        f" * {c_comment_text(model_name)}. See manifest.json for op indices and tensor shapes.",
        " */",
        "#ifndef DWGEN_KERNELS_H",
        "#define DWGEN_KERNELS_H",
        "",
    ]
    for mk in kernels:
        lines.append(f'#include "{mk.kernel.name}.h" /* op {mk.op.index} */')
    lines += ["", f"#define DWGEN_KERNEL_COUNT {len(kernels)}", "", "#endif /* DWGEN_KERNELS_H */", ""]
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
    files[UMBRELLA] = umbrella_header(kernels, model_name)
    files[MANIFEST] = json.dumps(manifest(kernels, model_name, target), indent=2, ensure_ascii=True) + "\n"
    return files


__all__ = ["MANIFEST", "UMBRELLA", "ModelKernel", "generate_model", "manifest", "output_files", "parse_only"]
