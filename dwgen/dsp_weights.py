"""How a tiled DSP kernel stores its weights and requantization constants in flash.

The tiles read each channel's weights as int16 pairs scaled by 2^(1 + left shift) (the
`DspPlan.wtable` words) and a 16-byte record {bias, multiplier, kq, right shift} per output
channel. Baked as they are, that is about 3x the layer's own weight bytes (VWW: 40 bytes of
flash per channel for 9 int8 weights and an int32 bias). The *compact* store keeps

* the int8 weights in TFLite's layout ``[kh][kw][OC]`` (3 bytes of padding at the end, so
  the last group's 4-channel reads stay inside the array),
* the scaled bias and the multiplier as int32, the right shift as int8;

and the kernel rebuilds the pairs and records of one channel group on the stack when it starts
the group (`NAME_unpack`): two 4-channel loads, two SXTAB16 per load and one PKHBT/PKHTB per
channel give the pairs of 4 channels, a SADD16 per scaling step doubles them; kq is a
function of the right shift (`dsp_plan`). That costs a few tens of cycles per channel, once
per group and batch, so `choose` takes it only where it is small against the channel's
work; the tiny-plane layers, where it is not, keep the baked pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .dsp_plan import DspPlan

#: Estimated M4 cycles per output channel to rebuild one weight word (its share of the loads,
#: extends, packs and the store, plus a SADD16 per scaling step) and its rq record (measured on
#: the M4 model: about 56 cycles for the 6 words of a 3x3 channel).
WORD_CYCLES = 6
RECORD_CYCLES = 14
#: Compact only where the rebuild costs at most this share of the channel's estimated cycles:
#: the baked pairs stay where the flash they take buys speed.
MAX_SHARE = 0.02
#: Estimated bytes of code the rebuild adds to a kernel (M4, gcc -O2: about 60 per weight word
#: plus the record loop); compact only where it saves more read-only data than that.
CODE_BYTES_PER_WORD = 60
CODE_BYTES = 160
#: The band, the rebuilt group and the rest of the kernel's frame must stay within the kernel
#: stack bound (1.5 KB); the rest measured at up to about 150 bytes.
STACK_FOR_BUFFERS = 1536 - 160


@dataclass(frozen=True)
class CompactStore:
    """Template facts of the compact store of plan `d`."""

    scale_steps: int  # SADD16 doublings: 1 + the (uniform) left shift
    group_oc: int  # output channels the stack buffers hold (the group's, rounded up to 4)
    kq_base: int  # kq = kq_base * 2^n + (2^(n-1) if n > 0)
    words: tuple[tuple[int, int, int | None, int | None], ...]  # (word index, ky, lo kx, hi kx)
    #: The tile's channel head reads the int8 taps itself (`dsp_tile.W8Taps`) and the rq records
    #: stay baked: `NAME_unpack` then rebuilds only the weight words, for the C twin (host).
    head: bool = False

    @property
    def buffer_bytes(self) -> int:
        return self.group_oc * 4 * 4 + self.group_oc * 4 * len(self.words)


def compact_store(d: DspPlan, records: bool = True) -> CompactStore | None:
    """The compact store of `d`, or None when the plan cannot use one: no tile, the C
    requantization, left shifts that differ between channels, or buffers beyond the stack bound
    (the rebuilt weight words, and with `records` the rebuilt rq records)."""
    if d.tile is None or not d.fast_rq:
        return None
    ql = d.ql
    g = ql.geometry
    shifts = np.asarray(ql.quant.shifts, dtype=np.int64)
    ls = np.maximum(shifts, 0)
    if int(ls.min()) != int(ls.max()):
        return None
    group_oc = -(-d.group * g.depth_multiplier // 4) * 4
    nw = len(d.row_words)
    words = tuple((ky * nw + j, ky, lo, hi) for ky in range(g.kernel_h) for j, (lo, hi) in enumerate(d.row_words))
    q = ql.quant
    store = CompactStore(1 + int(ls[0]), group_oc, q.output_zero_point - (ql.act_min + 128), words)
    if d.band_bytes + (store.buffer_bytes if records else store.group_oc * 4 * len(words)) > STACK_FOR_BUFFERS:
        return None
    if not np.array_equal(unpacked_table(d, store), d.wtable):
        raise AssertionError("compact weight store does not rebuild the baked pairs")  # a dwgen bug
    return store


def head_store(d: DspPlan, only_words: bool = False) -> CompactStore | None:
    """The store of a plan whose tile reads its int8 weights in the channel head: the int8
    table in TFLite's layout, the baked rq records; None when the rebuilt words would differ
    from the baked ones (a dwgen bug) or the C twin's buffer does not fit. The C twin rebuilds
    only the weight words; `--opt speed` still asks for room for the records as well (as it
    always has, so its choices stay as they were), `only_words` (`--opt size`) does not."""
    store = compact_store(d, records=not only_words)
    return None if store is None else replace(store, head=True)


def head_flash_saved(d: DspPlan, record_words: int) -> int:
    """Estimated bytes of flash the int8 channel head saves: the baked words and 16-byte records
    less the int8 taps, the shift byte and the shorter records (`record_words`), less the head's
    code (about 4 bytes per instruction, one LDRSB per tap and two per word)."""
    g = d.ql.geometry
    per_channel = (4 * d.words_per_channel + 16) - (g.kernel_h * g.kernel_w + 1 + 4 * record_words)
    code = 4 * (g.kernel_h * g.kernel_w + 2 * d.words_per_channel)
    return g.out_c * per_channel - 3 - code


def rebuild_cycles(d: DspPlan, store: CompactStore) -> float:
    """Estimated M4 cycles per output channel to rebuild its pairs and record."""
    return len(store.words) * (WORD_CYCLES + store.scale_steps) + RECORD_CYCLES


def flash_saved(d: DspPlan, store: CompactStore) -> int:
    """Estimated bytes of flash (read-only data saved minus code added) the compact store saves."""
    g = d.ql.geometry
    per_channel = (4 * d.words_per_channel + 16) - (g.kernel_h * g.kernel_w + 9)
    code = CODE_BYTES + CODE_BYTES_PER_WORD * len(store.words)
    return g.out_c * per_channel - 3 - code


def choose(d: DspPlan, channel_cycles: float) -> CompactStore | None:
    """The compact store when it applies, saves flash and costs at most MAX_SHARE of
    `channel_cycles` (the planner's estimate of one output channel's cycles), else None."""
    store = compact_store(d)
    if store is None or flash_saved(d, store) <= 0 or rebuild_cycles(d, store) > MAX_SHARE * channel_cycles:
        return None
    return store


def unpacked_table(d: DspPlan, store: CompactStore) -> np.ndarray:
    """What `NAME_unpack` rebuilds, for every channel: the uint32 pair words of `d.wtable`."""
    w = d.ql.weights.astype(np.int64)  # [kh, kw, OC]
    oc = d.ql.geometry.out_c
    table = np.zeros((oc, len(store.words)), dtype=np.uint32)
    scale = 2 ** store.scale_steps
    for idx, ky, lo, hi in store.words:
        vlo = w[ky, lo, :] * scale if lo is not None else np.zeros(oc, dtype=np.int64)
        vhi = w[ky, hi, :] * scale if hi is not None else np.zeros(oc, dtype=np.int64)
        table[:, idx] = ((vlo & 0xFFFF) | ((vhi & 0xFFFF) << 16)).astype(np.uint32)
    return table


def tables(d: DspPlan) -> dict:
    """The compact tables as int lists: int8 weights (TFLite layout, 3 bytes of padding), the
    scaled bias, the multipliers and the right shifts."""
    w8 = [int(v) for v in d.ql.weights.astype(np.int64).reshape(-1)]
    if d.store is not None and d.store.head:
        w8 += [int(v) for v in d.rshift]  # the tile's head reads each channel's shift here
    return {
        "w8": w8 + [0, 0, 0],
        "bias": [int(v) for v in d.bias],
        "mult": [int(v) for v in np.asarray(d.ql.quant.multipliers, dtype=np.int64)],
        "rshift": [int(v) for v in d.rshift],
    }


__all__ = ["CompactStore", "choose", "compact_store", "flash_saved", "head_flash_saved", "head_store", "rebuild_cycles", "tables", "unpacked_table"]
