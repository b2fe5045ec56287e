"""Plain-text tables for the CLI (inspect, check, bench)."""

from __future__ import annotations

from typing import Sequence


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], right: Sequence[int] = ()) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def fmt(row: list[str]) -> str:
        parts = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        return "  ".join(parts).rstrip()

    lines = [fmt(cells[0]), "  ".join("-" * w for w in widths)]
    lines += [fmt(r) for r in cells[1:]]
    return "\n".join(lines)


def _pair(p: tuple[int, int]) -> str:
    return f"{p[0]}x{p[1]}"


def _shape(s) -> str:
    return "x".join(str(d) for d in s)


def model_totals(model) -> dict:
    """What the model's depthwise layers add up to, before any kernel is generated."""
    ops = model.depthwise
    return {"layers": len(ops), "macs": sum(op.qlayer.geometry.macs for op in ops),
            "weight_bytes": sum(int(op.qlayer.weights.size + 4 * op.qlayer.bias.size) for op in ops)}


def inspect_table(model, model_name: str) -> str:
    rows = []
    for op in model.depthwise:
        ql = op.qlayer
        g, q, layer = ql.geometry, ql.quant, ql.layer
        user = op.user_layer
        written = {"conv2d": "DepthwiseConv2D", "conv1d": "DepthwiseConv1D",
                   "channels_first": "DepthwiseConv2D(channels_first)", "dilated": "DepthwiseConv2D(dilated)"}
        rows.append([
            op.index,
            op.c_name,
            f"{_shape(g.input_shape)} -> {_shape(g.output_shape)}",
            _pair(layer.kernel_size),
            _pair(layer.strides),
            _pair(user.dilation_rate if op.pattern == "dilated" else layer.dilation_rate),
            f"{layer.padding} {g.pad_top},{g.pad_left},{g.pad_bottom},{g.pad_right}",
            g.depth_multiplier,
            layer.activation,
            f"{'per-ch' if q.per_channel else 'per-tensor'} zp {q.input_zero_point}/{q.output_zero_point}",
            f"{g.macs:,}",
            f"{ql.weights.size + 4 * ql.bias.size:,}",
            written.get(op.pattern, op.pattern),
        ])
    headers = ["op", "kernel", "input -> output (NHWC)", "ksize", "stride", "dilation",
               "padding t,l,b,r", "M", "activation", "quantization in/out", "MACs", "weight B", "as written"]
    out = [f"{model_name}: {len(model.depthwise)} depthwise layer(s) dwgen can generate"]
    if rows:
        out.append(table(headers, rows, right=(0, 7, 10, 11)))
        t = model_totals(model)
        out.append(f"total: {t['layers']} layer(s), {t['macs']:,} MACs, {t['weight_bytes']:,} B of weights and bias "
                   "(int8, int32); cycles, milliseconds, flash and stack per kernel: dwgen bench MODEL")
    if model.unsupported:
        out.append("")
        out.append(f"{len(model.unsupported)} depthwise op(s) dwgen cannot generate:")
        out.append(table(["op", "reason"], [[u.index, u.reason] for u in model.unsupported], right=(0,)))
    return "\n".join(out)


def check_table(report) -> str:
    rows = []
    for lc in report.layers:
        if lc.ok:
            result = "bit-exact"
        else:
            fm = lc.first_mismatch
            result = f"MISMATCH {lc.mismatches} bytes, first at {fm['index']}: got {fm['got']}, want {fm['want']}"
        row = [lc.op.index, lc.name, f"{_shape(lc.input_shape)} -> {_shape(lc.output_shape)}", result, lc.tflm]
        if report.target != "host":
            row.append(f"{lc.cycles_per_mac:.2f}" if lc.cycles_per_mac is not None else "-")
        rows.append(row)
    headers = ["op", "kernel", "input -> output", "result", "TFLite Micro"]
    if report.target != "host":
        headers.append("M4 cycles/MAC")
    passed = sum(lc.ok for lc in report.layers)
    lines = [
        f"{report.model}: {passed}/{len(report.layers)} depthwise layers bit-exact with {report.interpreter} "
        f"(BUILTIN_REF) on {report.target}",
        table(headers, rows, right=(0,)),
    ]
    if report.unsupported:
        lines.append(f"not checked ({len(report.unsupported)} op(s) dwgen cannot generate): "
                     + "; ".join(f"op {u['op']}: {u['reason']}" for u in report.unsupported))
    lines.append("PASS" if report.ok else "FAIL")
    return "\n".join(lines)


__all__ = ["check_table", "inspect_table", "table"]
