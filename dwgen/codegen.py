"""Code generation: render a plan into a self-contained `<name>.c` + `<name>.h`.

The templates live in `templates/` (shipped inside the wheel as `dwgen/templates`).
Everything that varies per layer is computed here or in the planner; the templates only
lay it out. Output is deterministic: the same layer gives the same bytes.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import jinja2

from . import __version__
from .errors import DwgenError
from .layer import CHANNELS_FIRST, CHANNELS_LAST, DepthwiseLayer
# Kernel names are decided in names.py; check_c_name / sanitize_c_name stay importable from here.
from .names import MAX_NAME_LENGTH, check_c_name, sanitize_c_name
from .dsp_plan import DSP_TARGETS, dsp_context
from .dsp_taps import taps_context, taps_plan
from .dsp_tile import choose_plan, columns_as_rows, size_fallback_reason
from .plan import MAX_UNROLLED_STATEMENTS, Plan, make_plan
from .qlayer import QuantizedLayer
from .stackplan import stack_plan
from .toolchain import get_target

WEIGHT_MODES = ("baked", "extern")
OPT_MODES = ("speed", "size")
TARGETS = ("generic", "cortex-m0", "cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m4-nofpu", "cortex-m7",
           "cortex-m33", "cortex-m55")
LAYOUTS = {"nhwc": CHANNELS_LAST, "nchw": CHANNELS_FIRST}


@lru_cache(maxsize=1)
def template_dir() -> Path:
    packaged = Path(__file__).resolve().parent / "templates"
    if packaged.is_dir():  # installed wheel
        return packaged
    source = Path(__file__).resolve().parent.parent / "templates"
    if source.is_dir():  # editable install / source checkout
        return source
    raise DwgenError("dwgen's C templates are missing from this installation: reinstall dwgen")


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )
    env.filters["asm_string"] = lambda line: line.replace("\\", "\\\\").replace('"', '\\"')
    env.filters["asm_chunks"] = _asm_chunks
    return env


def template_environment() -> jinja2.Environment:
    """The Jinja2 environment every dwgen template is rendered in (one set of whitespace rules)."""
    return _environment()


#: C99 (5.2.4.1) guarantees string literals of 4095 characters; `-pedantic` warns beyond.
MAX_STRING_LITERAL = 4095


def _asm_chunks(lines) -> list[list[str]]:
    """Consecutive runs of asm lines whose string literal (each line plus a newline) stays
    within MAX_STRING_LITERAL: one top-level __asm__ statement each, assembled in order."""
    chunks: list[list[str]] = [[]]
    size = 0
    for line in lines:
        n = len(line) + 1
        if chunks[-1] and size + n > MAX_STRING_LITERAL:
            chunks.append([])
            size = 0
        chunks[-1].append(line)
        size += n
    return chunks


@dataclass(frozen=True)
class EmitOptions:
    name: str = "dw_layer"
    weights: str = "baked"  # or "extern": weights/bias passed at run time in TFLite layout
    cmsis_nn_api: bool = False
    target: str = "generic"  # DSP targets get the DSP kernel when its data flow applies
    origin: str = ""  # where the layer came from (a model and op), for the comment block
    opt: str = "speed"  # "size": one loop body for border and interior, taps checked at run time

    def validated(self) -> "EmitOptions":
        check_c_name(self.name)
        if self.target not in TARGETS:
            raise DwgenError(f"target={self.target!r} is not allowed: use one of {', '.join(TARGETS)}")
        if self.opt not in OPT_MODES:
            raise DwgenError(f"opt={self.opt!r} is not allowed: use 'speed' or 'size'")
        if self.weights not in WEIGHT_MODES:
            raise DwgenError(f"weights={self.weights!r} is not allowed: use 'baked' or 'extern'")
        return self


@dataclass(frozen=True)
class GeneratedKernel:
    name: str
    c_source: str
    h_source: str
    plan: Plan
    options: EmitOptions
    dsp: object | None = None  # the DspPlan when the DSP kernel was emitted
    fallback: str = ""  # --opt size on a DSP target without a one-body tile: why the kernel is looped

    @property
    def data_flow_detail(self) -> str:
        """The DSP plan (`DspPlan.flow`), else the data flow, with the reason of a `--opt size`
        fallback to the looped portable kernel."""
        if self.dsp is not None:
            return self.dsp.flow
        return f"{self.data_flow}: {self.fallback}" if self.fallback else self.data_flow

    @property
    def data_flow(self) -> str:
        """"dsp", "portable" (regions unrolled) or "looped" (one loop body: `--opt size`, or an
        unrolled kernel over MAX_UNROLLED_STATEMENTS)."""
        if self.dsp is not None:
            return "dsp"
        return "looped" if self.options.opt == "size" or self.plan.looped else "portable"

    @property
    def files(self) -> dict[str, str]:
        return {f"{self.name}.c": self.c_source, f"{self.name}.h": self.h_source}

    @property
    def signature(self) -> str:
        return _signature(self.plan.ql, self.options)

    @property
    def cdef(self) -> str:
        """Declarations for cffi."""
        decl = f"void {self.name}({self.signature});\n"
        if self.options.cmsis_nn_api:
            decl += (
                f"arm_cmsis_nn_status {self.name}_cmsis_nn(const cmsis_nn_context *, "
                "const cmsis_nn_dw_conv_params *, const cmsis_nn_per_channel_quant_params *, "
                "const cmsis_nn_dims *, const int8_t *, const cmsis_nn_dims *, const int8_t *, "
                "const cmsis_nn_dims *, const int32_t *, const cmsis_nn_dims *, int8_t *);\n"
            )
        return decl

    def write(self, directory: Path) -> list[Path]:
        paths = []
        for fname, text in self.files.items():
            p = Path(directory) / fname
            p.write_text(text, encoding="ascii", newline="\n")
            paths.append(p)
        return paths


def with_layout(ql: QuantizedLayer, layout: str) -> QuantizedLayer:
    """The same layer computed on the other memory layout (weights and numbers unchanged)."""
    if layout not in LAYOUTS:
        raise DwgenError(f"layout={layout!r} is not allowed: use 'nhwc' or 'nchw'")
    fmt = LAYOUTS[layout]
    if ql.layer.data_format == fmt:
        return ql
    layer = DepthwiseLayer(
        kernel_size=ql.layer.kernel_size, strides=ql.layer.strides, padding=ql.layer.padding,
        depth_multiplier=ql.layer.depth_multiplier, data_format=fmt,
        dilation_rate=ql.layer.dilation_rate, activation=ql.layer.activation,
        use_bias=ql.layer.use_bias, rank=ql.layer.rank,
    )
    g = ql.geometry
    shape = (g.batch, g.in_w, g.in_c) if g.rank == 1 else (g.batch, g.in_h, g.in_w, g.in_c)
    if fmt == CHANNELS_FIRST:
        shape = (g.batch, g.in_c, g.in_w) if g.rank == 1 else (g.batch, g.in_c, g.in_h, g.in_w)
    return dataclasses.replace(ql, layer=layer, geometry=layer.geometry(shape))


def _signature(ql: QuantizedLayer, opts: EmitOptions, restrict: str = "") -> str:
    """The kernel's parameters; `restrict` is the qualifier of the C declarations (cffi's
    declarations go without)."""
    sig = f"const int8_t *{restrict}input, int8_t *{restrict}output"
    if opts.weights == "extern":
        sig += ", const int8_t *weights"
        if ql.layer.use_bias:
            sig += ", const int32_t *bias_data"
    return sig


def _requirements(ql: QuantizedLayer, opts: EmitOptions, dsp) -> tuple[str, list[str]]:
    """What firmware must know to call the kernel: (alignment, further requirements)."""
    align = "input and output may have any alignment"
    if dsp is not None:
        align += (" (4-byte input loads are unaligned LDRs, which Cortex-M3 and later allow unless "
                  "CCR.UNALIGN_TRP is set)")
    if opts.weights == "extern" and ql.layer.use_bias:
        align += "; bias_data is int32, 4-byte aligned"
    lines = []
    if dsp is not None:
        lines.append(f"core: one with the DSP extension (generated for {opts.target}; a Cortex-M4, M7, M33 or "
                     f"M55 runs it), compiled by gcc or clang; compiled for an Arm core without it, "
                     f"{opts.name}.c stops with #error")
        lines.append("FPU: not needed; with one (__ARM_FP) the tile keeps constants in S0-S15, which are "
                     "caller-saved, so interrupt handlers that use the FPU stay correct")
    elif opts.target in ("cortex-m0", "cortex-m0plus", "cortex-m3"):
        lines.append(f"core: any Cortex-M ({opts.target}: portable C, no DSP instructions, no FPU)")
    else:
        lines.append("core: any (portable C, no DSP instructions, no FPU)")
    return align, lines


def _rows(values: Iterable[int], per_row: int, width: int) -> list[str]:
    vals = [f"{int(v):>{width}}," for v in values]
    return [" ".join(vals[i : i + per_row]) for i in range(0, len(vals), per_row)]


def _weight_rows(plan: Plan) -> list[str]:
    """One line (or a few, for big windows) per output channel, labelled."""
    rows = []
    for oc, window in enumerate(plan.packed_weights):
        chunks = _rows(window, 16, 4)
        chunks[-1] += f" /* oc {oc} */"
        rows.extend(chunks)
    return rows


def _strides(ql: QuantizedLayer) -> dict[str, int]:
    g = ql.geometry
    if g.channels_first:
        return {
            "in_col": 1, "in_row": g.in_w, "in_ch": g.in_h * g.in_w, "in_batch": g.in_c * g.in_h * g.in_w,
            "out_col": 1, "out_row": g.out_w, "out_ch": g.out_h * g.out_w,
            "out_batch": g.out_c * g.out_h * g.out_w,
        }
    return {
        "in_col": g.in_c, "in_row": g.in_w * g.in_c, "in_ch": 1, "in_batch": g.in_h * g.in_w * g.in_c,
        "out_col": g.out_c, "out_row": g.out_w * g.out_c, "out_ch": 1,
        "out_batch": g.out_h * g.out_w * g.out_c,
    }


def describe(ql: QuantizedLayer, opts: EmitOptions) -> list[str]:
    """The comment block recording what the kernel computes and how it was made."""
    g, q, layer = ql.geometry, ql.quant, ql.layer
    cfg = layer.describe()
    lines = [
        f"Layer: {layer.keras_class}, {json.dumps({k: v for k, v in cfg.items() if k != 'class_name'})}",
        f"Input {list(g.input_shape)} -> output {list(g.output_shape)} ({g.data_format}), "
        f"{g.macs} MACs",
        f"Padding: top {g.pad_top}, left {g.pad_left}, bottom {g.pad_bottom}, right {g.pad_right}",
        f"Input zero point {q.input_zero_point}"
        + (f", scale {q.input_scale!r}" if q.input_scale is not None else ""),
        f"Output zero point {q.output_zero_point}"
        + (f", scale {q.output_scale!r}" if q.output_scale is not None else "")
        + f"; activation {layer.activation} -> clamp [{ql.act_min}, {ql.act_max}]",
        "Weights: int8 symmetric, "
        + ("per-channel" if q.per_channel else "per-tensor")
        + f"; bias int32; requantization: TFLite {q.rounding} rounding",
        f"Weights {'passed at run time (TFLite layout)' if opts.weights == 'extern' else 'baked into flash'}; "
        "no scratch buffer",
    ]
    if opts.origin:
        lines.insert(0, opts.origin)
    # Keep comment text inert: no sequence inside may end or nest the comment.
    return [line.replace("*/", "* /").replace("/*", "/ *") for line in lines]


def generate(ql: QuantizedLayer, options: EmitOptions | None = None, *,
             described_as: QuantizedLayer | None = None) -> GeneratedKernel:
    """Render `ql` into C. `described_as`: the layer the comment block describes, when `ql` is
    an equivalent rewrite of it (see `dsp_tile.columns_as_rows`)."""
    opts = (options or EmitOptions()).validated()
    g = ql.geometry
    if opts.cmsis_nn_api and g.channels_first:
        raise DwgenError(
            "--cmsis-nn-api needs an NHWC (channels_last) kernel: CMSIS-NN has no NCHW depthwise"
        )
    plan = make_plan(ql)
    strides = _strides(ql)
    taps = plan.taps
    tap_offsets = [
        (ky * g.dilation_h) * strides["in_row"] + (kx * g.dilation_w) * strides["in_col"]
        for ky in range(g.kernel_h)
        for kx in range(g.kernel_w)
    ]
    extern = opts.weights == "extern"
    # The looped body also bounds the code size of layers whose unrolled form is over budget.
    size_mode = opts.opt == "size" or plan.looped
    wrap = plan.acc_may_overflow or extern
    zp = ql.quant.input_zero_point
    used = set()
    for r in plan.regions:
        used.update(r.live)
        if zp != 0:
            used.update(r.dead)
    if extern and zp != 0:
        used.update(range(taps))
    # Read only what is read: with every window in the padding, the input (and, when the
    # zero point is 0, the weights) never is, and an unused local would fail -Werror.
    reads_input = size_mode or any(r.live for r in plan.regions)
    reads_weights = reads_input or zp != 0
    name = opts.name
    if g.rank == 1:
        dims = ("N", "C", "W") if g.channels_first else ("N", "W", "C")
    else:
        dims = ("N", "C", "H", "W") if g.channels_first else ("N", "H", "W", "C")
    dsp = None
    # The DSP kernel is held to the same budget by make_dsp_plan, so it is kept when the
    # unrolled portable kernel would be over it.
    swapped_c = None
    fallback = ""  # why a DSP target got the looped portable kernel under --opt size
    if opts.target in DSP_TARGETS and not extern:
        size = opts.opt == "size"
        dsp = None if opts.cmsis_nn_api or size else taps_plan(ql)
        swapped = None if opts.cmsis_nn_api or dsp is not None else columns_as_rows(ql)
        inner = generate(swapped, opts, described_as=ql) if swapped is not None else None
        if inner is not None and inner.dsp is not None:
            dsp, swapped_c = inner.dsp, inner.c_source
        elif dsp is None:
            dsp = choose_plan(ql, opts.name, size=size, target=opts.target)
            if size and (dsp is None or dsp.tile is None):
                fallback = size_fallback_reason(ql, dsp)
                dsp = None
    description = describe(described_as or ql, opts)
    if fallback:
        description.append(fallback)
    if described_as is not None:
        description.append(f"Computed as the equivalent {g.in_h}x{g.in_w} layer: W is 1, so rows and columns "
                           "swap without changing a single address")
    if plan.looped and dsp is None and opts.opt != "size":
        description.append(
            f"Looped form: the unrolled kernel would be about {plan.unrolled_statements} statements, "
            f"over dwgen's budget of {MAX_UNROLLED_STATEMENTS}"
        )
    alignment, requirements = _requirements(ql, opts, dsp)
    ctx = dict(
        name=name,
        NAME=name.upper(),
        version=__version__,
        description=description,
        g=g,
        q=ql.quant,
        taps=taps,
        tap_offsets=tap_offsets,
        strides=strides,
        layout_name=("NCW" if g.rank == 1 else "NCHW") if g.channels_first else ("NWC" if g.rank == 1 else "NHWC"),
        input_dims=list(zip(dims, g.input_shape)),
        output_dims=list(zip(dims, g.output_shape)),
        activation=ql.layer.activation,
        act_min=ql.act_min,
        act_max=ql.act_max,
        regions=plan.regions,
        weight_rows=_weight_rows(plan),
        bias_rows=_rows(ql.bias if size_mode else plan.folded_bias, 8, 11),
        multiplier_rows=_rows(ql.quant.multipliers, 6, 11),
        shift_rows=_rows(ql.quant.shifts, 16, 3),
        needs_left=plan.needs_left_shift,
        needs_right=plan.needs_right_shift,
        wrap_acc=wrap,
        acc_t="uint32_t" if wrap else "int32_t",
        weights_in_locals=plan.weights_in_locals and not size_mode,
        used_taps=[] if size_mode else sorted(used),
        size_mode=size_mode,
        reads_input=reads_input,
        reads_weights=reads_weights,
        extern_weights=extern,
        use_bias=ql.layer.use_bias,
        cmsis_nn_api=opts.cmsis_nn_api,
        signature=_signature(ql, opts),
        signature_c=_signature(ql, opts, "DWGEN_RESTRICT "),
        stack=stack_plan(plan, dsp, opts.target, weights_in_locals=plan.weights_in_locals and not size_mode),
        alignment=alignment,
        requirements=requirements,
        target=opts.target,
        target_cpu=get_target(opts.target).cpu if opts.target != "generic" else None,
    )
    env = _environment()
    if swapped_c is not None:
        c_src = swapped_c
    elif dsp is not None and dsp.taps is not None:
        c_src = env.get_template("kernel_dsp_taps.c.j2").render(**{**ctx, **taps_context(dsp, opts.target)})
    elif dsp is not None:
        c_src = env.get_template("kernel_dsp.c.j2").render(**{**ctx, **dsp_context(dsp, opts.target)})
    else:
        c_src = env.get_template("kernel.c.j2").render(**ctx)
    h_src = env.get_template("kernel.h.j2").render(**ctx)
    return GeneratedKernel(name=name, c_source=c_src, h_source=h_src, plan=plan, options=opts, dsp=dsp,
                           fallback=fallback)


__all__ = ["MAX_NAME_LENGTH", "EmitOptions", "GeneratedKernel", "check_c_name", "generate", "sanitize_c_name", "with_layout"]
