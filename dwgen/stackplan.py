"""The stack a generated kernel may use, as planned: what its header promises firmware.

dwgen's kernels allocate nothing but their own locals: the DSP kernels' band of gathered
pixel pairs and the weight words and records the compact store rebuilds per channel group
(both sized exactly here), and what any C function needs (saved registers, the asm tile's
frame, the compiler's locals and spills), which depends on the compiler and is bounded by an
allowance. The allowances are measured maxima with headroom, over every tile class, the
benchmark layers and random layers, with gcc and clang, on every target;
tests/test_stackplan.py repeats that measurement and fails when a kernel needs more than
its header says.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Saved registers, the tile frame and locals of a DSP kernel (measured at most 276 B, cortex-m4-nofpu with gcc).
DSP_ALLOWANCE = 288
#: A portable kernel on a Thumb-2 core (M3, and the generic kernel built for one): measured
#: at most 324 B.
THUMB2_ALLOWANCE = 448
#: A portable kernel on an M0/M0+ (8 low registers): the base, plus per weight the kernel
#: keeps in locals, which Thumb-1 spills (measured 924 B for 5x5 taps in locals), or per tap
#: when they stay in the table (684 B for 7x7 taps).
THUMB1_ALLOWANCE = 512
THUMB1_PER_LOCAL_WEIGHT = 24
THUMB1_PER_TAP = 8


@dataclass(frozen=True)
class StackPlan:
    """Named stack arrays (bytes) and the allowance for everything else."""

    arrays: tuple[tuple[str, int], ...]
    allowance: int

    @property
    def bound(self) -> int:
        return sum(n for _, n in self.arrays) + self.allowance

    def describe(self) -> str:
        parts = [f"{what} {n} B" for what, n in self.arrays]
        parts.append(f"up to {self.allowance} B of saved registers, frame and locals")
        return " + ".join(parts)


def stack_plan(plan, dsp, target: str, *, weights_in_locals: bool) -> StackPlan:
    """The stack plan of a kernel: its portable `plan`, the DSP plan `dsp` it was emitted
    with (None: the portable kernel), its target, and whether the portable kernel keeps a
    channel's weights in locals."""
    if dsp is not None:
        arrays = []
        if dsp.taps is None:
            arrays.append(("band", dsp.band_bytes))
            store = dsp.store
            if store is not None and not store.head:  # the int8 head rebuilds words only on the host
                arrays.append(("weights rebuilt per group", store.buffer_bytes))
        return StackPlan(tuple(arrays), DSP_ALLOWANCE)
    if target in ("cortex-m0", "cortex-m0plus"):
        g = plan.ql.geometry
        taps = g.kernel_h * g.kernel_w
        per = THUMB1_PER_LOCAL_WEIGHT * taps * g.depth_multiplier if weights_in_locals else THUMB1_PER_TAP * taps
        return StackPlan((), THUMB1_ALLOWANCE + per)
    return StackPlan((), THUMB2_ALLOWANCE)


__all__ = ["DSP_ALLOWANCE", "StackPlan", "THUMB1_ALLOWANCE", "THUMB1_PER_LOCAL_WEIGHT", "THUMB1_PER_TAP",
           "THUMB2_ALLOWANCE", "stack_plan"]
