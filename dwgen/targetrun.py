"""Generated kernels cross-compiled for a Cortex-M target and run in the emulator.

One ELF holds any number of kernels (one object each, so each kernel's `.text` and
`.rodata` are measured from its own object); every call runs on real data and returns
the output bytes with the emulator's measurements.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .codegen import GeneratedKernel
from .errors import DwgenError


@dataclass
class TargetRun:
    output: np.ndarray
    instructions: int
    cycles_m4: int
    cycles_m7: int
    stack_bytes: int
    text_bytes: int
    rodata_bytes: int
    macs: int

    @property
    def cycles_per_mac(self) -> float:
        return self.cycles_m4 / self.macs if self.macs else 0.0


class TargetBuild:
    """Cross-compile kernels for `target` (cortex-m0 ... cortex-m55) and run them emulated."""

    def __init__(self, kernels: Sequence[GeneratedKernel], target: str, opt: str = "O2",
                 compiler: str | None = None, extra_sources: Sequence[Path] = ()):
        from .emulate import Emulator
        from .toolchain import build_elf

        if target in ("generic", "host"):
            raise DwgenError(f"target {target!r} runs on the host: use dwgen.hostbuild instead")
        self.kernels = {k.name: k for k in kernels}
        self.target = target
        with tempfile.TemporaryDirectory(prefix="dwgen-target-") as tmp:
            d = Path(tmp)
            sources = []
            for k in kernels:
                k.write(d)
                sources.append(d / f"{k.name}.c")
            self.elf = build_elf([*sources, *extra_sources], target, opt, workdir=d, compiler=compiler)
        self._emu_class = Emulator
        self.emulator = Emulator(self.elf)

    @property
    def toolchain(self) -> dict:
        return self.elf.toolchain_info()

    def sizes(self, name: str):
        return self.elf.object_sizes(f"{name}.c")

    def run(self, name: str, x: Any, weights: Any = None, bias: Any = None) -> TargetRun:
        k = self.kernels[name]
        ql = k.plan.ql
        g = ql.geometry
        x = np.ascontiguousarray(ql.check_input(x))
        emu = self.emulator
        emu.reset_heap()
        args = [emu.alloc_bytes(x.tobytes(), name="input"), emu.alloc(g.output_size, name="output")]
        if k.options.weights == "extern":
            w = np.ascontiguousarray(ql.weights if weights is None else weights, dtype=np.int8)
            args.append(emu.alloc_bytes(w.tobytes(), name="weights"))
            if ql.layer.use_bias:
                b = np.ascontiguousarray(ql.bias if bias is None else bias, dtype="<i4")
                args.append(emu.alloc_bytes(b.tobytes(), name="bias"))
        st = emu.call(name, *args)
        out = emu.read_array(args[1], g.output_size).reshape(g.output_shape)
        est = st.cycles()
        size = self.sizes(name)
        return TargetRun(
            output=out, instructions=st.instructions, cycles_m4=est.m4_cycles, cycles_m7=est.m7_cycles,
            stack_bytes=st.stack_bytes, text_bytes=size.text, rodata_bytes=size.rodata, macs=g.macs,
        )


__all__ = ["TargetBuild", "TargetRun"]
