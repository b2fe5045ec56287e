"""Fuzz the .tflite reader with mutated fixtures: it succeeds or raises ModelError.

Seeded, a few thousand cases (DWGEN_FUZZ_CASES overrides the count, DWGEN_FUZZ_SEED the
seed). Each case runs under a timer, so a hang fails the test instead of stalling CI.
Mutations favour the flatbuffer's structure (tables, vtables, offsets, shapes) over the
weight bytes, where a flip only changes numbers.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from dwgen.errors import ModelError
from dwgen.tflite_model import Model, is_c_identifier, read_model

FIXTURES = Path(__file__).parent / "fixtures"
CASES = int(os.environ.get("DWGEN_FUZZ_CASES", "5000"))
SEED = int(os.environ.get("DWGEN_FUZZ_SEED", "20240611"))
PER_CASE_SECONDS = 2.0


class Hang(BaseException):
    """Raised by the timer; a BaseException so the reader's handlers cannot swallow it."""


def _structure_mask(data: bytes) -> np.ndarray:
    """True for bytes outside the constant-data buffers."""
    m = read_model(data, require_depthwise=False)
    mask = np.ones(len(data), dtype=bool)
    for span in m._buffers:
        if span is not None:
            start, n = span
            mask[start:start + n] = False
    return mask


def _hand_built() -> list[tuple[str, bytes]]:
    """The one-op model of test_tflite_model.py, inline and with external buffers."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_dwgen_tflite_writer", Path(__file__).with_name("test_tflite_model.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return [("hand_built", mod.build(mod.dw_spec())), ("hand_built_external", mod.build(mod.dw_spec(), external=True))]


@pytest.fixture(scope="module")
def corpus():
    out = []
    files = [(p.name, p.read_bytes()) for p in sorted(FIXTURES.glob("*.tflite"))] + _hand_built()
    for name, data in files:
        out.append((name, data, np.flatnonzero(_structure_mask(data))))
    return out


_SPECIAL_U32 = [0, 1, 2, 3, 4, 7, 8, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
                0xFFFFFFFE, 1 << 20, 1 << 30]


def mutate(rng: np.random.Generator, data: bytes, structure: np.ndarray) -> tuple[str, bytes]:
    b = bytearray(data)
    n = len(b)

    def pos() -> int:  # mostly inside the structure, sometimes anywhere
        if len(structure) and rng.random() < 0.85:
            return int(structure[rng.integers(len(structure))])
        return int(rng.integers(n))

    kind = int(rng.integers(8))
    if kind == 0:
        for _ in range(int(rng.integers(1, 9))):
            b[pos()] = int(rng.integers(256))
        return "bytes", bytes(b)
    if kind == 1:
        for _ in range(int(rng.integers(1, 5))):
            b[pos()] ^= 1 << int(rng.integers(8))
        return "bits", bytes(b)
    if kind == 2:
        p = min(pos() & ~3, n - 4)
        v = _SPECIAL_U32[rng.integers(len(_SPECIAL_U32))] if rng.random() < 0.6 else int(rng.integers(n + 64))
        struct.pack_into("<I", b, p, v)
        return "u32", bytes(b)
    if kind == 3:
        p = min(pos() & ~1, n - 2)
        struct.pack_into("<H", b, p, int(rng.choice([0, 2, 4, 6, 0xFFFE, 0xFFFF, int(rng.integers(65536))])))
        return "u16", bytes(b)
    if kind == 4:
        return "truncate", bytes(b[: int(rng.integers(n))])
    if kind == 5:
        p = pos()
        return "insert", bytes(b[:p] + rng.bytes(int(rng.integers(1, 17))) + b[p:])
    if kind == 6:
        p = pos()
        return "delete", bytes(b[:p] + b[p + int(rng.integers(1, 17)):])
    src, dst, k = pos(), pos(), int(rng.integers(4, 65))
    b[dst:dst + k] = data[src:src + k]
    return "copy", bytes(b[:n])


def check_model(m: Model) -> None:
    names = [op.c_name for op in m.depthwise]
    assert len(set(names)) == len(names), names
    for op in m.depthwise:
        assert is_c_identifier(op.c_name), op.c_name
        g = op.qlayer.geometry
        assert op.qlayer.weights.shape == (g.kernel_h, g.kernel_w, g.out_c)
        assert op.qlayer.bias.shape == (g.out_c,)
        assert op.user_qlayer.geometry.output_size == g.output_size or op.pattern == "dilated"
        assert op.pattern in ("conv2d", "conv1d", "channels_first", "dilated")
    json.dumps([op.describe() for op in m.depthwise] + [u.describe() for u in m.unsupported])


def _on_alarm(signum, frame):
    raise Hang()


def test_fuzz_mutated_fixtures(corpus):
    rng = np.random.default_rng(SEED)
    # small files get more cases: they are fast and every byte of them is structure
    weights = np.array([1.0 / max(len(d), 2000) for _, d, _ in corpus])
    weights /= weights.sum()
    use_timer = hasattr(signal, "setitimer")
    old = signal.signal(signal.SIGALRM, _on_alarm) if use_timer else None
    counts = {"ok": 0, "error": 0}
    slowest = 0.0
    t_all = time.perf_counter()
    try:
        for case in range(CASES):
            name, data, structure = corpus[int(rng.choice(len(corpus), p=weights))]
            kind, mutated = mutate(rng, data, structure)
            where = f"case {case} ({kind} of {name}, seed {SEED})"
            t0 = time.perf_counter()
            if use_timer:
                signal.setitimer(signal.ITIMER_REAL, PER_CASE_SECONDS)
            try:
                m = read_model(mutated)
            except ModelError as e:
                msg = str(e)
                assert msg and "\n" not in msg and len(msg) <= 400, f"{where}: {msg!r}"
                counts["error"] += 1
            except Hang:
                pytest.fail(f"{where}: read_model ran longer than {PER_CASE_SECONDS}s")
            except Exception as e:  # noqa: BLE001 - exactly what this test forbids
                pytest.fail(f"{where}: {type(e).__name__}: {e}")
            else:
                check_model(m)
                counts["ok"] += 1
            finally:
                if use_timer:
                    signal.setitimer(signal.ITIMER_REAL, 0)
            slowest = max(slowest, time.perf_counter() - t0)
    finally:
        if use_timer:
            signal.signal(signal.SIGALRM, old)
    total = time.perf_counter() - t_all
    print(f"fuzz: {CASES} cases in {total:.1f}s ({counts}, slowest {slowest * 1000:.0f} ms)")
    # both outcomes must be exercised, or the mutations are not reaching the reader
    assert counts["ok"] > CASES // 20 and counts["error"] > CASES // 5, counts
