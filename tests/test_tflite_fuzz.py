"""Fuzz the .tflite reader with mutated fixtures: it succeeds or raises ModelError.

Seeded, a few thousand cases (DWGEN_FUZZ_CASES overrides the count, DWGEN_FUZZ_SEED the
seed). Each case runs under a timer, so a hang fails the test instead of stalling CI.
Mutations favour the flatbuffer's structure (tables, vtables, offsets, shapes) over the
weight bytes, where a flip only changes numbers.

Then the cases random mutation rarely finds: amplification (one table shared by thousands
of parents, vectors overlapping each other), each run as `dwgen inspect` in a child
process under an address-space limit and a time limit, and sizes (vector lengths past the
end of the file, truncated files).
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import tflite_writer

from dwgen.errors import ModelError
from dwgen.tflite_model import MAX_DEPTHWISE_OPS, WORK_BASE, WORK_PER_BYTE, Model, is_c_identifier, read_model

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
    mod = tflite_writer()
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


# -- amplification: shared and overlapping tables -------------------------------------------
def _shared(size: int, what: str) -> bytes:
    """About `size` bytes: one table with a long vector, listed by ~size/8 parents."""
    w = tflite_writer()
    s = w.dw_spec()
    t0 = s["tensors"][0]
    n = size // 8
    if what == "shape":  # every tensor of the subgraph is one table with a long shape
        t0["shape"] = [1] * n
        return w.write_tflite(s["tensors"], s["ops"], s["inputs"], s["outputs"], tensor_refs=[0] * n)
    if what == "scales":  # ... with long quantization vectors (per axis, as TFLite loads them)
        t0.update(shape=[n // 3], scale=[0.05] * (n // 3), zero_point=[0] * (n // 3), qdim=0)
        return w.write_tflite(s["tensors"], s["ops"], s["inputs"], s["outputs"], tensor_refs=[0] * n)
    if what == "name":  # ... with a long name
        t0["name"] = "x" * (size // 2)
        return w.write_tflite(s["tensors"], s["ops"], s["inputs"], s["outputs"], tensor_refs=[0] * n)
    if what == "op inputs":  # every op is one table with a long inputs vector
        s["ops"][0]["inputs"] = [0] * n
        return w.write_tflite(s["tensors"], s["ops"], s["inputs"], s["outputs"], op_refs=[0] * n)
    if what == "subgraphs":  # every subgraph is one subgraph table holding a long name
        t0["name"] = "x" * (size // 2)
        return w.write_tflite(s["tensors"], s["ops"], s["inputs"], s["outputs"], subgraph_refs=n)
    if what == "weights":  # 1000 depthwise ops that are one op table with an 18 KB filter
        s = w.dw_spec(c=8, m=256, h=2, w=2)
        return w.write_tflite(s["tensors"], s["ops"], s["inputs"], s["outputs"], op_refs=[0] * 1000)
    raise AssertionError(what)


def _overlapping(size: int) -> bytes:
    """Tensors whose shape vectors start 4 bytes apart inside one long vector: every offset
    is distinct (memoizing by offset cannot help), yet each one decodes thousands of values."""
    import tflite

    w = tflite_writer()
    m = size // 8  # elements of the long vector
    n = size // 100  # tensors pointing into it
    k = m - n  # every element, so every overlapping vector's length
    tensors = [w._tensor("long", [k] * m, "int8", quant=False)] + [
        w._tensor("", [1], "int8", quant=False) for _ in range(n)
    ]
    data = bytearray(w.write_tflite(tensors, [], [0], [0]))
    sg = tflite.Model.GetRootAsModel(bytes(data), 0).Subgraphs(0)
    first = sg.Tensors(0)._tab
    prefix0 = first.Vector(first.Offset(4)) - 4  # the long vector's length prefix
    for j in range(1, n + 1):
        tab = sg.Tensors(j)._tab
        field_pos = tab.Pos + tab.Offset(4)
        struct.pack_into("<I", data, field_pos, prefix0 + 4 * j - field_pos)
    return bytes(data)


# Each child gets this much address space: dwgen inspect on a fixture peaks near 130 MB;
# before the decoding budget the 80 KB shared-shape model alone took 827 MB.
CHILD_MEMORY = 512 << 20
CHILD_SECONDS = 10.0  # before the budget: 9.7 s for 80 KB, 179 s for 480 KB
_CHILD = (
    "import resource, sys\n"
    "resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[1]), int(sys.argv[1])))\n"
    "from dwgen.cli import main\n"
    "sys.exit(main(sys.argv[2:]))\n"
)


def _inspect_in_child(path: Path) -> tuple[int, str, str, float]:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    t0 = time.perf_counter()
    try:
        p = subprocess.run([sys.executable, "-c", _CHILD, str(CHILD_MEMORY), "inspect", str(path)],
                           capture_output=True, text=True, timeout=6 * CHILD_SECONDS, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail(f"dwgen inspect {path.name} ran longer than {6 * CHILD_SECONDS:.0f}s")
    return p.returncode, p.stdout, p.stderr, time.perf_counter() - t0


def _budget_error(path: Path, data: bytes, what: str) -> str:
    limit = WORK_PER_BYTE * len(data) + WORK_BASE
    return (
        f"dwgen: error: {re.escape(str(path))}: malformed TFLite file: {what} takes the model past "
        f"{limit} values \\({WORK_PER_BYTE} per byte of the {len(data)}-byte file, plus {WORK_BASE}\\): "
        "its tables are shared or overlap far beyond what a converter writes\n"
    )


@pytest.mark.parametrize("what, size, where", [
    ("shape", 80_000, r"decoding tensor \d+ shape"),
    ("shape", 480_000, r"decoding tensor \d+ shape"),
    ("scales", 480_000, r"decoding tensor \d+ scales"),
    ("name", 480_000, r"decoding tensor \d+ name"),
    ("op inputs", 480_000, r"decoding op \d+ inputs"),
    ("subgraphs", 480_000, r"decoding subgraph \d+ tensor \d+ name"),
    ("weights", 0, r"op \d+ \(DEPTHWISE_CONV_2D\): decoding its weights and bias"),
    ("overlap", 480_000, r"decoding tensor \d+ shape"),
])
def test_amplification_is_bounded(tmp_path, what, size, where):
    """A table shared by every parent, or vectors overlapping each other, cost time and
    memory in proportion to the file, and end in one line naming what overflowed."""
    data = _overlapping(size) if what == "overlap" else _shared(size, what)
    assert not size or 0.9 * size < len(data) < 1.2 * size, len(data)
    path = tmp_path / "hostile.tflite"
    path.write_bytes(data)
    code, out, err, seconds = _inspect_in_child(path)
    assert (code, out) == (2, ""), err
    assert re.fullmatch(_budget_error(path, data, where), err), err
    assert seconds < CHILD_SECONDS, f"{what}: {seconds:.1f}s"


def test_sharing_within_the_budget_is_read():
    """Sharing itself is not refused: a few ops that are one table read fine, each op once."""
    w = tflite_writer()
    s = w.dw_spec()
    m = read_model(w.write_tflite(s["tensors"], s["ops"], s["inputs"], s["outputs"], op_refs=[0] * 5))
    assert [op.index for op in m.depthwise] == [0, 1, 2, 3, 4]
    assert len({op.c_name for op in m.depthwise}) == 5
    # the shared tables are decoded once: every op holds the same tuples and strings
    ops = m.operators
    assert all(op.inputs is ops[0].inputs for op in ops)
    m = read_model(w.write_tflite(s["tensors"], s["ops"], s["inputs"], s["outputs"], tensor_refs=[0, 1, 2, 3, 0, 0]))
    t = m.subgraphs[0].tensors
    assert t[4].shape is t[0].shape and t[5].name is t[0].name


def test_fixtures_decode_within_one_value_per_byte(monkeypatch):
    """The budget's margin: every committed model decodes at one value per byte (4 allowed)."""
    import dwgen.tflite_model as tm

    monkeypatch.setattr(tm, "WORK_PER_BYTE", 1)
    monkeypatch.setattr(tm, "WORK_BASE", 0)
    for p in sorted(FIXTURES.glob("*.tflite")):
        read_model(p, require_depthwise=False)


def test_depthwise_op_count_is_capped():
    w = tflite_writer()
    s = w.dw_spec()
    data = w.write_tflite(s["tensors"], s["ops"], s["inputs"], s["outputs"], op_refs=[0] * (MAX_DEPTHWISE_OPS + 1))
    with pytest.raises(ModelError) as e:
        read_model(data)
    assert str(e.value) == f"the model has {MAX_DEPTHWISE_OPS + 1} DEPTHWISE_CONV_2D ops: dwgen reads models with up to {MAX_DEPTHWISE_OPS}"
    # At the cap, in a file large enough (an unused 64 KB constant) for the budget to allow
    # the analysis of every op, reading stays fast.
    s["tensors"].append(w._tensor("pad", [1 << 16], "int8", data=np.zeros(1 << 16), quant=False))
    data = w.write_tflite(s["tensors"], s["ops"], s["inputs"], s["outputs"], op_refs=[0] * MAX_DEPTHWISE_OPS)
    t0 = time.perf_counter()
    m = read_model(data)
    assert len(m.depthwise) == MAX_DEPTHWISE_OPS
    assert time.perf_counter() - t0 < CHILD_SECONDS


# -- sizes: lengths past the end, truncated files --------------------------------------------
_HUGE = [0xFFFFFFFF, 0x80000000, 0x7FFFFFFF, 0x40000000, 1 << 24]


def _vector_prefixes(data: bytes):
    """(what, byte offset of the length prefix) of every tensor's shape and name vector,
    found with the `tflite` package's generated classes (not dwgen's reader)."""
    import tflite

    sg = tflite.Model.GetRootAsModel(data, 0).Subgraphs(0)
    for j in range(sg.TensorsLength()):
        tab = sg.Tensors(j)._tab
        for fid, what in ((0, "shape"), (3, "name")):
            o = tab.Offset(4 + 2 * fid)
            if o:
                yield f"tensor {j} {what}", tab.Vector(o) - 4


@pytest.mark.parametrize("name", ["kws_dscnn.tflite", "mobilenet_tiny.tflite", "dw1d.tflite"])
def test_huge_claimed_vector_lengths(name):
    """A vector claiming up to 2^32 - 1 elements is refused before anything is allocated."""
    data = (FIXTURES / name).read_bytes()
    seen = 0
    for what, pos in _vector_prefixes(data):
        for n in _HUGE:
            b = bytearray(data)
            struct.pack_into("<I", b, pos, n)
            with pytest.raises(ModelError) as e:
                read_model(bytes(b))
            assert str(e.value) == (
                f"malformed TFLite file: {what} at byte {pos} claims {n} elements, which runs past "
                f"the end of the file ({len(data)} bytes)"
            )
            seen += 1
    assert seen > 50


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.tflite")))
def test_truncated_fixtures(name):
    """Every prefix of a fixture (96 cut points) is a one-line error about the file's end."""
    data = (FIXTURES / name).read_bytes()
    for n in sorted(set(np.linspace(0, len(data) - 1, 96).astype(int).tolist())):
        with pytest.raises(ModelError) as e:
            read_model(data[:n])
        msg = str(e.value)
        if n < 8:
            assert msg == f"not a TFLite model: {n} bytes is too short for a flatbuffer header"
        else:
            assert msg.startswith("malformed TFLite file: ") and "\n" not in msg, (n, msg)
            assert msg.endswith(f"({n} bytes)"), (n, msg)
