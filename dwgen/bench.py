"""`dwgen bench`: measure generated kernels on emulated Cortex-M cores.

For each layer and target, the specialized kernel and dwgen's baseline (TFLite's
reference loop in C, `refkernel.py`) are cross-compiled with the same compiler and
flags, run in unicorn on the same random input, checked byte for byte against the
reference model, and costed with the cycle model of `dwgen.cycles` (Cortex-M4 TRM
table; a rough dual-issue model for M7). With `--cmsis-nn DIR` the user's CMSIS-NN
runs the same layers the same way. Cycles are estimates, not silicon measurements.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .codegen import EmitOptions, generate
from .names import MAX_NAME_LENGTH, check_distinct, sanitize_c_name, unique_names
from .errors import DwgenError
from .qlayer import QuantizedLayer
from .reference import depthwise_conv


@dataclass(frozen=True)
class BenchCase:
    name: str
    ql: QuantizedLayer
    published_cmsis_cpm: float | None = None  # CMSIS-NN M4 cycles/MAC from docs/benchmark-layers.md


@dataclass
class Measured:
    cycles_m4: int
    cycles_m7: int
    instructions: int
    stack_bytes: int
    scratch_bytes: int
    text_bytes: int | None
    rodata_bytes: int | None
    exact: bool

    def as_dict(self, macs: int) -> dict:
        return {
            "instructions": self.instructions, "cycles_m4": self.cycles_m4, "cycles_m7": self.cycles_m7,
            "cycles_per_mac_m4": round(self.cycles_m4 / macs, 3), "cycles_per_mac_m7": round(self.cycles_m7 / macs, 3),
            "stack_bytes": self.stack_bytes, "scratch_bytes": self.scratch_bytes,
            "text_bytes": self.text_bytes, "rodata_bytes": self.rodata_bytes, "bit_exact": self.exact,
        }


@dataclass
class BenchResult:
    case: BenchCase
    target: str
    data_flow: str
    dwgen: Measured
    baseline: Measured
    cmsis: Measured | None = None
    data_flow_detail: str = ""  # the DSP plan: band, step, group and tile (dsp_plan.DspPlan.flow)

    @property
    def macs(self) -> int:
        return self.case.ql.geometry.macs

    def cpm(self, m: Measured | None) -> float | None:
        return None if m is None else m.cycles_m4 / self.macs

    @property
    def exact(self) -> bool:
        return all(m.exact for m in (self.dwgen, self.baseline, self.cmsis) if m is not None)

    def as_dict(self) -> dict:
        d = {
            "layer": self.case.name, "target": self.target, "macs": self.macs, "data_flow": self.data_flow,
            "data_flow_detail": self.data_flow_detail,
            "dwgen": self.dwgen.as_dict(self.macs), "baseline_reference_loop": self.baseline.as_dict(self.macs),
            "speedup_vs_baseline": round(self.baseline.cycles_m4 / self.dwgen.cycles_m4, 3),
        }
        if self.case.published_cmsis_cpm is not None:
            d["cmsis_nn_published_cycles_per_mac_m4"] = self.case.published_cmsis_cpm
        if self.cmsis is not None:
            d["cmsis_nn"] = self.cmsis.as_dict(self.macs)
            d["speedup_vs_cmsis_nn"] = round(self.cmsis.cycles_m4 / self.dwgen.cycles_m4, 3)
        return d


@dataclass
class BenchReport:
    results: list[BenchResult] = field(default_factory=list)
    toolchain: dict = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # target -> why it could not be measured
    clock_mhz: float = 100.0  # for the totals' milliseconds

    def geomean_speedup(self, target: str, vs: str = "cmsis") -> float | None:
        ratios = []
        for r in self.results:
            if r.target != target:
                continue
            if vs == "baseline":
                ratios.append(r.baseline.cycles_m4 / r.dwgen.cycles_m4)
            elif r.cmsis is not None:
                ratios.append(r.cmsis.cycles_m4 / r.dwgen.cycles_m4)
            elif r.case.published_cmsis_cpm is not None and _published_applies(target):
                ratios.append(r.case.published_cmsis_cpm / r.cpm(r.dwgen))
        return math.exp(sum(map(math.log, ratios)) / len(ratios)) if ratios else None

    def totals(self, target: str) -> dict:
        """Sums over the layers measured on `target` (a model's depthwise total): cycles, the
        speed-up of the total and of the slowest layer against CMSIS-NN (when it was measured for
        every layer), and flash: the kernels' .text and .rodata against the layers' own weight
        data (int8 weights and int32 bias, as the model stores them)."""
        rs = [r for r in self.results if r.target == target]
        macs = sum(r.macs for r in rs)
        cycles = sum(r.dwgen.cycles_m4 for r in rs)
        text = sum(r.dwgen.text_bytes or 0 for r in rs)
        rodata = sum(r.dwgen.rodata_bytes or 0 for r in rs)
        weights = sum(r.case.ql.weights.size + (4 * r.case.ql.bias.size if r.case.ql.layer.use_bias else 0)
                      for r in rs)
        out = {"layers": len(rs), "macs": macs, "dwgen_cycles_m4": cycles,
               "dwgen_cycles_per_mac_m4": round(cycles / macs, 3) if macs else None,
               "clock_mhz": self.clock_mhz, "dwgen_ms_m4": round(cycles / (self.clock_mhz * 1e3), 3),
               "text_bytes": text, "rodata_bytes": rodata, "flash_bytes": text + rodata,
               "weight_bytes": weights, "rodata_per_weight_byte": round(rodata / weights, 3) if weights else None,
               "peak_stack_bytes": max((r.dwgen.stack_bytes for r in rs), default=0), "scratch_bytes": 0}
        if rs and all(r.cmsis is not None for r in rs):
            theirs = sum(r.cmsis.cycles_m4 for r in rs)
            out.update(cmsis_nn_cycles_m4=theirs, cmsis_nn_ms_m4=round(theirs / (self.clock_mhz * 1e3), 3),
                       cmsis_nn_peak_stack_bytes=max(r.cmsis.stack_bytes for r in rs),
                       cmsis_nn_peak_scratch_bytes=max(r.cmsis.scratch_bytes for r in rs),
                       speedup_vs_cmsis_nn=round(theirs / cycles, 3),
                       slowest_layer_speedup_vs_cmsis_nn=round(min(r.cmsis.cycles_m4 / r.dwgen.cycles_m4 for r in rs), 3))
        return out

    @property
    def exact(self) -> bool:
        return all(r.exact for r in self.results)

    def as_dict(self) -> dict:
        targets = sorted({r.target for r in self.results})
        return {
            "cycle_model": "Cortex-M4 TRM timing table (estimates; see dwgen.cycles), M7 rough dual-issue model",
            "toolchain": self.toolchain,
            "results": [r.as_dict() for r in self.results],
            "geomean_speedup_vs_baseline": {t: self.geomean_speedup(t, "baseline") for t in targets},
            "geomean_speedup_vs_cmsis_nn": {t: self.geomean_speedup(t) for t in targets},
            "totals": {t: self.totals(t) for t in targets},
            "failed_targets": dict(self.failures),
            "bit_exact": self.exact,
        }


def suite_cases(suite: str) -> list[BenchCase]:
    from .suite import SUITES, quantized

    if suite not in SUITES:
        raise DwgenError(f"--suite {suite!r} is not known: use one of {', '.join(SUITES)}")
    return [BenchCase(s.name, quantized(s), s.cmsis_m4_cycles_per_mac) for s in SUITES[suite]]


def layerfile_cases(path: Path, allow_outside_weights: bool = False) -> list[BenchCase]:
    from . import layerfile

    doc = layerfile.read(path, allow_outside_weights)
    return [BenchCase(sanitize_c_name(doc.name), doc.qlayer)]


def model_cases(path: Path, model) -> list[BenchCase]:
    return [BenchCase(op.c_name, op.qlayer) for op in model.depthwise]


def _measure(run, ql: QuantizedLayer, want: np.ndarray, scratch: int = 0) -> Measured:
    return Measured(
        cycles_m4=run.cycles_m4, cycles_m7=run.cycles_m7, instructions=run.instructions,
        stack_bytes=run.stack_bytes, scratch_bytes=scratch,
        text_bytes=getattr(run, "text_bytes", None), rodata_bytes=getattr(run, "rodata_bytes", None),
        exact=bool(np.array_equal(run.output, want)),
    )


def run_bench(
    cases: Sequence[BenchCase],
    targets: Sequence[str],
    opt: str = "O2",
    compiler: str | None = None,
    cmsis_dir: Path | None = None,
    kernel_opt: str = "speed",
    progress: Callable[[int, int, str], None] | None = None,
    clock_mhz: float = 100.0,
) -> BenchReport:
    # Kernels and baselines are linked into one image: their symbols must not collide.
    check_distinct([c.name for c in cases])
    ref_names = unique_names([f"{c.name[:MAX_NAME_LENGTH - 4].rstrip('_')}_ref" for c in cases],
                             taken=[c.name for c in cases])
    report = BenchReport(clock_mhz=clock_mhz)
    total = len(cases) * len(targets)
    done = 0
    for target in targets:
        # A target that cannot be built or run is reported; the others are still measured.
        try:
            results = _bench_target(cases, target, ref_names, opt, compiler, cmsis_dir, kernel_opt,
                                    report, progress, done, total)
        except DwgenError as exc:
            report.failures[target] = str(exc)
            results = []
        report.results.extend(results)
        done += len(cases)
    if progress:
        progress(total, total, "")
    return report


def _bench_target(cases, target, ref_names, opt, compiler, cmsis_dir, kernel_opt, report, progress,
                  done, total) -> list[BenchResult]:
    from .refkernel import generate_reference
    from .targetrun import TargetBuild

    kernels = [generate(c.ql, EmitOptions(name=c.name, target=target, opt=kernel_opt)) for c in cases]
    baselines = [generate_reference(c.ql, n) for c, n in zip(cases, ref_names)]
    build = TargetBuild([*kernels, *baselines], target, opt, compiler=compiler)
    toolchain = dict(build.toolchain)
    cmsis = None
    if cmsis_dir is not None:
        from .cmsisnn import CmsisBuild

        cmsis = CmsisBuild(cmsis_dir, target, opt, compiler=compiler)
        toolchain["cmsis_nn_sources"] = [s.name for s in cmsis.sources]
    results = []
    for i, (case, k, b) in enumerate(zip(cases, kernels, baselines)):
        if progress:
            progress(done + i, total, f"{case.name} on {target}")
        x = case.ql.random_input(1000 + i)
        want = depthwise_conv(case.ql, x)
        mine = _measure(build.run(k.name, x), case.ql, want)
        base = _measure(build.run(b.name, x), case.ql, want)
        theirs = None
        if cmsis is not None and not case.ql.geometry.channels_first:
            run = cmsis.run(case.ql, x)
            theirs = _measure(run, case.ql, want, scratch=run.scratch_bytes)
        results.append(BenchResult(case, target, k.data_flow, mine, base, theirs, k.data_flow_detail))
    report.toolchain[target] = toolchain
    return results


def table(report: BenchReport) -> str:
    from .report import table as fmt

    lines = []
    for target in dict.fromkeys(r.target for r in report.results):
        rows = []
        has_cmsis = any(r.cmsis is not None for r in report.results if r.target == target)
        has_pub = _published_applies(target) and any(r.case.published_cmsis_cpm is not None
                                                      for r in report.results if r.target == target)
        for r in (r for r in report.results if r.target == target):
            row = [r.case.name, f"{r.macs:,}", _flow_cell(r), f"{r.cpm(r.dwgen):.2f}", f"{r.cpm(r.baseline):.2f}",
                   f"{r.baseline.cycles_m4 / r.dwgen.cycles_m4:.1f}x"]
            if has_cmsis:
                row += [f"{r.cpm(r.cmsis):.2f}" if r.cmsis else "-",
                        f"{r.cmsis.cycles_m4 / r.dwgen.cycles_m4:.2f}x" if r.cmsis else "-"]
            elif has_pub:
                pub = r.case.published_cmsis_cpm
                row += [f"{pub:.2f}" if pub else "-", f"{pub / r.cpm(r.dwgen):.2f}x" if pub else "-"]
            row += [f"{r.dwgen.cycles_m7 / r.macs:.2f}", r.dwgen.stack_bytes,
                    r.dwgen.text_bytes, r.dwgen.rodata_bytes, "yes" if r.exact else "NO"]
            rows.append(row)
        headers = ["layer", "MACs", "data flow", "dwgen M4 c/MAC", "ref loop M4 c/MAC", "vs ref"]
        if has_cmsis:
            headers += ["CMSIS-NN M4 c/MAC", "vs CMSIS-NN"]
        elif has_pub:
            headers += ["CMSIS-NN M4 c/MAC (published)", "vs CMSIS-NN"]
        headers += ["dwgen M7 c/MAC", "stack B", ".text B", ".rodata B", "bit-exact"]
        tc = report.toolchain.get(target, {})
        lines.append(f"target {target}: {tc.get('compiler', '?')} {tc.get('compiler_version', '')} -{tc.get('opt', '')} "
                     f"{tc.get('cflags', '')}")
        lines.extend(_target_notes(target))
        lines.append(fmt(headers, rows, right=tuple(range(1, len(headers)))))
        gm_ref = report.geomean_speedup(target, "baseline")
        gm = report.geomean_speedup(target)
        summary = f"geometric-mean speed-up: {gm_ref:.1f}x vs the reference loop"
        if gm is not None:
            summary += f", {gm:.2f}x vs CMSIS-NN" + ("" if has_cmsis else " (published figures)")
        lines.append(summary)
        t = report.totals(target)
        total = (f"total over {t['layers']} layer(s): {t['macs']:,} MACs, {t['dwgen_cycles_m4']:,} M4 cycles "
                 f"({t['dwgen_cycles_per_mac_m4']:.2f} c/MAC, {t['dwgen_ms_m4']:.2f} ms at {t['clock_mhz']:g} MHz)")
        if "speedup_vs_cmsis_nn" in t:
            total += (f", {t['speedup_vs_cmsis_nn']:.2f}x CMSIS-NN's {t['cmsis_nn_cycles_m4']:,} "
                      f"({t['cmsis_nn_ms_m4']:.2f} ms; slowest layer {t['slowest_layer_speedup_vs_cmsis_nn']:.2f}x)")
        lines.append(total)
        memory = f"memory: peak stack {t['peak_stack_bytes']:,} B, scratch 0 B"
        if "speedup_vs_cmsis_nn" in t:
            memory += (f" (CMSIS-NN: peak stack {t['cmsis_nn_peak_stack_bytes']:,} B, "
                       f"scratch up to {t['cmsis_nn_peak_scratch_bytes']:,} B)")
        lines.append(memory)
        lines.append(f"flash: .text {t['text_bytes']:,} B + .rodata {t['rodata_bytes']:,} B; the layers' weights and "
                     f"bias (int8, int32) are {t['weight_bytes']:,} B, .rodata is {t['rodata_per_weight_byte']:.2f}x that")
        lines.append("")
    for target, message in report.failures.items():
        lines += [f"target {target}: not measured: {message}", ""]
    lines.append("M4 c/MAC: estimated Cortex-M4 cycles per multiply-accumulate (TRM timing table, see README); "
                 "M7: rough dual-issue estimate. Scratch: 0 bytes for every dwgen kernel.")
    return "\n".join(lines)


def _target_notes(target: str) -> list[str]:
    """What the figures of a target's table are: how it was emulated, and which core's timing
    the cycle columns use (only the M4 and the M7 have a model)."""
    from .toolchain import get_target

    t = get_target(target)
    notes = [f"emulation: {t.note}"] if t.note else []
    if t.cpu == "cortex-m7":
        notes.append(f"cycles: the M4 columns apply the Cortex-M4 timing table to this {target} build; "
                     "the M7 column is the rough dual-issue model")
    elif t.cpu != "cortex-m4":
        notes.append(f"cycles: the Cortex-M4 timing table applied to this {target} build (dwgen has no "
                     f"timing model of the {t.cpu})")
    return notes


def _published_applies(target: str) -> bool:
    """CMSIS-NN's published cycles per MAC were measured on a Cortex-M4: compare only there."""
    from .toolchain import get_target

    return get_target(target).cpu == "cortex-m4"


def _flow_cell(r: BenchResult) -> str:
    """The table's data flow: the kernel kind, and for DSP kernels the tile's loop, width and
    weight placement (the full plan is `data_flow_detail` in --json)."""
    detail = r.data_flow_detail
    if detail.startswith("taps/"):
        return "dsp taps"
    if "/tile:" not in detail:
        return r.data_flow
    loop, width, weights = detail.split("/tile:")[1].split("/")[:3]
    return f"dsp {loop}/{width}/{weights}"


def require_matplotlib():
    """matplotlib's pyplot, or the error that says how to install it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise DwgenError("--plot needs matplotlib: pip install 'dwgen-mcu[plot]' (or pip install matplotlib)") from None
    return plt


def plot(report: BenchReport, path: Path) -> None:
    plt = require_matplotlib()
    targets = list(dict.fromkeys(r.target for r in report.results))
    fig, axes = plt.subplots(len(targets), 1, figsize=(max(8, 0.6 * len(report.results) / len(targets) + 3),
                                                       4 * len(targets)), squeeze=False)
    for ax, target in zip(axes[:, 0], targets):
        rs = [r for r in report.results if r.target == target]
        names = [r.case.name for r in rs]
        xs = np.arange(len(rs))
        series = [("dwgen", [r.cpm(r.dwgen) for r in rs]), ("reference loop", [r.cpm(r.baseline) for r in rs])]
        if any(r.cmsis for r in rs):
            series.append(("CMSIS-NN", [r.cpm(r.cmsis) or 0 for r in rs]))
        elif _published_applies(target) and any(r.case.published_cmsis_cpm for r in rs):
            series.append(("CMSIS-NN (published)", [r.case.published_cmsis_cpm or 0 for r in rs]))
        width = 0.8 / len(series)
        for j, (label, vals) in enumerate(series):
            ax.bar(xs + j * width, vals, width, label=label)
        ax.set_xticks(xs + width * (len(series) - 1) / 2)
        ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
        ax.set_ylabel("est. M4 cycles / MAC")
        ax.set_yscale("log")
        ax.set_title(f"{target}: cycles per MAC (lower is better)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=100)
    except OSError as exc:
        raise DwgenError(f"--plot {path}: cannot write it ({exc.strerror})") from None
    finally:
        plt.close(fig)


__all__ = ["BenchCase", "BenchReport", "BenchResult", "layerfile_cases", "model_cases", "plot", "run_bench",
           "suite_cases", "table"]
