"""Generated kernels in real Cortex-M firmware images, run under QEMU (firmware/).

`dwgen emit --test-vectors` writes the kernels of a set of layers (layer files covering
strides, depth multipliers, channels_first, dilation, 1-D, extern weights, single
rounding, the CMSIS-NN entry point, --opt size; plus every depthwise layer of two fixture models)
into one directory per code path (portable C and the Cortex-M4 DSP kernels); the Cortex-M4
directory also gets the kernels of the layers aimed at each DSP tile class
(tests/tile_classes.py), so the images run every class of the asm tiles under QEMU. Each
directory is built into one image per board with firmware/Makefile and with
firmware/CMakeLists.txt, and each image runs on QEMU's mps2-an386 (Cortex-M4),
mps2-an500 (Cortex-M7) and mps2-an505 (Cortex-M33). The tests assert the image's own
verdict: one PASS line per kernel and exit status 0, or a FAIL line and a non-zero exit
status for a corrupted expected output. The tile-class layers and the KWS model are also
generated for cortex-m7 and run on mps2-an500, so the M7-scheduled tile bodies run on QEMU too.

Needs arm-none-eabi-gcc with newlib (Debian gcc-arm-none-eabi, libnewlib-arm-none-eabi),
qemu-system-arm, make and cmake. Without them the tests skip, naming what is missing;
under CI (CI or DWGEN_REQUIRE_TOOLS set) they fail instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import dwgen
from dwgen import layerfile, testvectors
from dwgen.cli import main
from dwgen.codegen import EmitOptions, GeneratedKernel, generate
from dwgen.names import sanitize_c_name
from dwgen.outdir import write_files

from helpers import tool_missing
from tile_classes import REQUIRED, class_layers, kernel_classes, size_class_layers

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
BOARDS = ("mps2-an386", "mps2-an500", "mps2-an505")
TARGETS = ("generic", "cortex-m4")
#: The kernel set that also holds the tile-class layers, and the boards that must run every
#: class (the M33 board runs them too, as it runs every kernel of the directory).
TILE_TARGET = "cortex-m4"
TILE_BOARDS = ("mps2-an386", "mps2-an500")
QEMU_TIMEOUT = 60


def _missing(*tools: str) -> list[str]:
    missing = [t for t in tools if shutil.which(t) is None]
    if "arm-none-eabi-gcc" in tools and "arm-none-eabi-gcc" not in missing:
        libc = subprocess.run(
            ["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16",
             "-print-file-name=libc.a"], capture_output=True, text=True).stdout.strip()
        if not os.path.isabs(libc):
            missing.append("newlib for arm-none-eabi (Debian: libnewlib-arm-none-eabi)")
    return missing


def _require(*tools: str) -> None:
    missing = _missing(*tools)
    if not missing:
        return
    why = "firmware tests need " + ", ".join(missing) + " (Debian: apt install gcc-arm-none-eabi " \
          "libnewlib-arm-none-eabi qemu-system-arm make cmake)"
    tool_missing(why)


# --------------------------------------------------------------------------- the kernels

def _qlayer(rng, layer, shape, *, in_zp=-5, out_zp=3, rounding="double", per_channel=True, bias=True):
    g = layer.geometry(shape)
    oc = g.out_c
    ws = rng.uniform(0.002, 0.05, oc if per_channel else 1)
    q = dwgen.Quantization.from_scales(0.03, in_zp, ws, 0.03 * float(ws.mean()) * 40, out_zp, oc,
                                       rounding=rounding)
    w = rng.integers(-127, 128, (g.kernel_h, g.kernel_w, g.in_c, g.depth_multiplier))
    b = rng.integers(-30000, 30000, oc) if bias else None
    return dwgen.QuantizedLayer.create(layer, shape, q, w, b)


def _layer_files(d: Path) -> list[tuple[Path, list[str]]]:
    """LAYER.json files and the extra `dwgen emit` options each is emitted with."""
    rng = np.random.default_rng(2024)
    layers = [
        ("s2m2", _qlayer(rng, dwgen.DepthwiseConv2D(5, strides=2, padding="same", depth_multiplier=2,
                                                    activation="relu6"),
                         (1, 13, 11, 6), rounding="single", per_channel=False),
         ["--weights", "extern"]),
        ("nchw_dil", _qlayer(rng, dwgen.DepthwiseConv2D(3, padding="valid", data_format="channels_first",
                                                        dilation_rate=2),
                             (1, 7, 12, 10), bias=False), ["--opt", "size"]),
        ("conv1d", _qlayer(rng, dwgen.DepthwiseConv1D(5, padding="same", activation="relu"), (1, 49, 16),
                           in_zp=-128), ["--cmsis-nn-api"]),
        ("wide_m3", _qlayer(rng, dwgen.DepthwiseConv2D((3, 2), strides=(1, 2), padding="same",
                                                       depth_multiplier=3),
                            (1, 9, 8, 5), in_zp=17, out_zp=-100), ["--weights", "extern"]),
    ]
    out = []
    for name, ql, extra in layers:
        out.append((layerfile.dump(ql, d / f"{name}.json"), ["--name", name, *extra]))
    out.append((ROOT / "examples" / "kws_dw.json", []))
    return out


@pytest.fixture(scope="module")
def tile_kernels() -> list[tuple[GeneratedKernel, dwgen.QuantizedLayer]]:
    """The TILE_TARGET kernel of every layer of tile_classes.class_layers(), with its layer.
    Numbered names: "tile_block" and "tile_block_stride" would collide (TILE_BLOCK_STRIDE_H is
    the include guard of one and a macro of the other)."""
    out = []
    for i, (label, ql) in enumerate(class_layers()):
        name = sanitize_c_name(f"tile{i:02d} {label}")
        out.append((generate(ql, EmitOptions(name=name, target=TILE_TARGET)), ql))
    for i, (label, ql) in enumerate(size_class_layers()):  # --opt size: one tile body
        name = sanitize_c_name(f"tsz{i:02d} {label[len('size: '):]}")
        out.append((generate(ql, EmitOptions(name=name, target=TILE_TARGET, opt="size")), ql))
    return out


def _write_with_vectors(out: Path, kernels: list[tuple[GeneratedKernel, dwgen.QuantizedLayer]]) -> None:
    """Write kernels and their test vectors into `out` as `dwgen emit --test-vectors` does; the
    emits that follow list them in dwgen_test_main.c too. Through the API, not as layer files:
    a layer file holds a Keras layer, and Keras has no relu_n1_to_1 activation."""
    files = {}
    for k, _ in kernels:
        files.update(k.files)
    files.update(testvectors.vector_files([testvectors.make_vectors(k, ql) for k, ql in kernels]))
    write_files(out, files)


def _emit(argv: list[str]) -> None:
    assert main(argv) == 0, argv


@pytest.fixture(scope="module")
def emitted(tmp_path_factory, tile_kernels) -> dict[str, tuple[Path, list[str]]]:
    """target -> (directory of dwgen emit output with test vectors, kernel names)."""
    base = tmp_path_factory.mktemp("firmware")
    layers = _layer_files(base)
    result = {}
    for target in TARGETS:
        out = base / target
        # Portable C kernels have no tiles: the class layers would only add build time there.
        if target == TILE_TARGET:
            _write_with_vectors(out, tile_kernels)
        for path, extra in layers:
            _emit(["emit", str(path), "-o", str(out), "--target", target, "--test-vectors", *extra])
        _emit(["emit", str(FIXTURES / "kws_dscnn.tflite"), "-o", str(out), "--target", target,
               "--test-vectors"])
        # A second model into the same directory: its dwgen_kernels.h / manifest.json replace
        # the first one's (--force); every kernel stays in dwgen_test_main.c.
        _emit(["emit", str(FIXTURES / "mobilenet_tiny.tflite"), "-o", str(out), "--target", target,
               "--test-vectors", "--weights", "extern", "--force"])
        names = testvectors.existing_vector_names(out)
        result[target] = (out, names)
    return result


def test_every_kernel_has_vectors_and_is_in_the_main(emitted):
    out, names = emitted["cortex-m4"]
    kernels = sorted(p.stem for p in out.glob("*.c") if p.name != testvectors.MAIN_FILE)
    assert names == kernels
    assert len(kernels) == 5 + 4 + 5 + len(class_layers()) + len(size_class_layers())  # layer files, kws_dscnn, mobilenet_tiny, tiles
    assert {"dw1_1", "dw2_1", "dw3_1", "dw4_1"} <= set(names)
    text = (out / testvectors.MAIN_FILE).read_text()
    for n in names:
        assert f'#include "{n}_vectors.h"' in text
        assert f'dwgen_test_check("{n}"' in text
    # The DSP code path really is in the Cortex-M4 images.
    assert any("smlad" in (out / f"{n}.c").read_text().lower() for n in names)
    assert "_test_weights" in (out / "s2m2_vectors.h").read_text()


def _qemu(image: Path, board: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["qemu-system-arm", "-machine", board, "-nographic", "-monitor", "none", "-serial", "none",
         "-chardev", "stdio,id=sh0", "-semihosting-config", "enable=on,target=native,chardev=sh0",
         "-kernel", str(image)],
        capture_output=True, text=True, timeout=QEMU_TIMEOUT, stdin=subprocess.DEVNULL)


def _verdicts(stdout: str) -> dict[str, str]:
    return {m.group(2): m.group(1) for m in re.finditer(r"^(PASS|FAIL) (\w+): ", stdout, re.M)}


def _assert_all_pass(run: subprocess.CompletedProcess, names: list[str], what: str) -> None:
    assert run.returncode == 0, f"{what}: exit {run.returncode}\n{run.stdout}{run.stderr}"
    assert _verdicts(run.stdout) == {n: "PASS" for n in names}, f"{what}:\n{run.stdout}"
    assert f"dwgen: all {len(names)} kernels passed" in run.stdout, run.stdout


def _make(kernels: Path, board: str, build: Path) -> Path:
    r = subprocess.run(
        ["make", "-f", str(FIRMWARE / "Makefile"), f"DIR={kernels}", f"BOARD={board}", f"BUILD={build}",
         "EXTRA_CFLAGS=-Werror", "-j2"],
        capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return build / "dwgen_test.elf"


@pytest.fixture(scope="module")
def made(emitted, tmp_path_factory):
    """(target, board) -> (image, its QEMU run): the firmware/Makefile image of the target's
    kernels, built and run once for the board test and the tile-class test."""
    cache: dict[tuple[str, str], tuple[Path, subprocess.CompletedProcess]] = {}

    def get(target: str, board: str) -> tuple[Path, subprocess.CompletedProcess]:
        _require("arm-none-eabi-gcc", "qemu-system-arm", "make")
        if (target, board) not in cache:
            image = _make(emitted[target][0], board, tmp_path_factory.mktemp(f"make-{target}-{board}"))
            cache[target, board] = image, _qemu(image, board)
        return cache[target, board]

    return get


@pytest.mark.parametrize("target", TARGETS)
def test_makefile_images_pass_on_every_board(emitted, made, target):
    _, names = emitted[target]
    for board in BOARDS:
        _, run = made(target, board)
        _assert_all_pass(run, names, f"make, {target} kernels, {board}")


def _symbols(image: Path) -> set[str]:
    from elftools.elf.elffile import ELFFile

    with open(image, "rb") as f:
        return {s.name for s in ELFFile(f).get_section_by_name(".symtab").iter_symbols()}


def test_images_run_every_tile_class(emitted, made, tile_kernels):
    """The Cortex-M4 kernels in the images cover every tile class, and the M4 and M7 images
    run each: the union of the classes of the tile-class kernels must cover REQUIRED; in each
    image every tile body of every one of them must be linked (the asm, not the C twin:
    --gc-sections drops a body nothing calls, and the twin defines no such symbol), and each
    kernel must print PASS."""
    _, names = emitted[TILE_TARGET]
    kernels = [k for k, _ in tile_kernels]
    seen = set().union(*(kernel_classes(k) for k in kernels))
    assert REQUIRED <= seen, f"tile classes no firmware kernel exercises: {sorted(REQUIRED - seen)}"
    assert {k.name for k in kernels} <= set(names), "a tile-class kernel has no test vectors in the image"
    bodies = {k.name: {b.symbol for b in k.dsp.tile.bodies} for k in kernels if k.dsp.tile is not None}
    for board in TILE_BOARDS:
        image, run = made(TILE_TARGET, board)
        symbols = _symbols(image)
        missing = {n: sorted(b - symbols) for n, b in bodies.items() if not b <= symbols}
        assert not missing, f"{board}: tile bodies not in the image: {missing}"
        verdicts = _verdicts(run.stdout)
        assert {k.name: verdicts.get(k.name) for k in kernels} == {k.name: "PASS" for k in kernels}, \
            f"{board}:\n{run.stdout}"


@pytest.fixture(scope="module")
def m7_emitted(tmp_path_factory, tile_kernels):
    """The tile-class layers and the KWS fixture model generated for cortex-m7 (their tiles in
    the M7 schedule), with test vectors: (directory, kernel names, the tile-class kernels)."""
    out = tmp_path_factory.mktemp("firmware-m7")
    kernels = []
    for (k4, ql) in tile_kernels:
        kernels.append((generate(ql, EmitOptions(name=k4.name, target="cortex-m7", opt=k4.options.opt)), ql))
    _write_with_vectors(out, kernels)
    _emit(["emit", str(FIXTURES / "kws_dscnn.tflite"), "-o", str(out), "--target", "cortex-m7", "--test-vectors"])
    return out, testvectors.existing_vector_names(out), [k for k, _ in kernels]


def test_m7_scheduled_tiles_run_on_the_m7_board(m7_emitted, tile_kernels, tmp_path):
    """The kernels generated for cortex-m7 cover every tile class with bodies in the M7 schedule
    (reordered from the M4 emission), every body is linked into the mps2-an500 image, and every
    kernel prints PASS there."""
    _require("arm-none-eabi-gcc", "qemu-system-arm", "make")
    out, names, kernels = m7_emitted
    assert REQUIRED <= set().union(*(kernel_classes(k) for k in kernels))
    tiled = [k for k in kernels if k.dsp.tile is not None]
    assert tiled and all(k.dsp.tile.plan.core == "m7" for k in tiled)
    m4 = {k.name: k for k, _ in tile_kernels}
    reordered = [k for k in tiled if m4[k.name].dsp.tile is None
                 or k.dsp.tile.bodies[0].asm_fpu != m4[k.name].dsp.tile.bodies[0].asm_fpu]
    assert len(reordered) >= 0.9 * len(tiled)
    image = _make(out, "mps2-an500", tmp_path / "build")
    symbols = _symbols(image)
    missing = {k.name: sorted({b.symbol for b in k.dsp.tile.bodies} - symbols) for k in tiled}
    assert not any(missing.values()), missing
    _assert_all_pass(_qemu(image, "mps2-an500"), names, "make, cortex-m7 kernels, mps2-an500")


@pytest.mark.parametrize("target", TARGETS)
def test_cmake_images_pass_on_every_board(emitted, target, tmp_path):
    _require("arm-none-eabi-gcc", "qemu-system-arm", "cmake")
    kernels, names = emitted[target]
    build = tmp_path / "build"
    r = subprocess.run(
        ["cmake", "-S", str(FIRMWARE), "-B", str(build), f"-DDWGEN_DIR={kernels}",
         f"-DDWGEN_BOARDS={';'.join(BOARDS)}", "-DCMAKE_C_FLAGS=-Werror"],
        capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(["cmake", "--build", str(build), "-j2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    for board in BOARDS:
        _assert_all_pass(_qemu(build / f"dwgen_test_{board}.elf", board), names,
                         f"cmake, {target} kernels, {board}")
    # The same images as CTest tests (dwgen_mps2_board registers one per image).
    r = subprocess.run(["ctest", "--test-dir", str(build), "--output-on-failure"], capture_output=True,
                       text=True, timeout=3 * QEMU_TIMEOUT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"100% tests passed, 0 tests failed out of {len(BOARDS)}" in r.stdout


def _corrupt_expected(vectors: Path, name: str) -> None:
    text = vectors.read_text()
    m = re.search(rf"{name}_test_expected\[\d+\] DWGEN_TEST_ALIGN = \{{\n( *)(-?\d+),", text)
    assert m, "expected-output array not found"
    old = int(m.group(2))
    new = old + 1 if old < 127 else old - 1
    vectors.write_text(text[:m.start(2)] + str(new) + text[m.end(2):])


def test_corrupted_expected_output_fails_the_image(emitted, tmp_path):
    _require("arm-none-eabi-gcc", "qemu-system-arm", "make")
    src, names = emitted["cortex-m4"]
    kernels = tmp_path / "kernels"
    shutil.copytree(src, kernels)
    _corrupt_expected(kernels / "dw2_1_vectors.h", "dw2_1")
    for board in ("mps2-an386", "mps2-an500"):
        run = _qemu(_make(kernels, board, tmp_path / board), board)
        assert run.returncode == 1, run.stdout + run.stderr
        verdicts = _verdicts(run.stdout)
        assert verdicts.pop("dw2_1") == "FAIL"
        assert verdicts == {n: "PASS" for n in names if n != "dw2_1"}
        assert re.search(r"^FAIL dw2_1: 1 of 8000 bytes differ, first at byte 0: got -?\d+, want -?\d+$",
                         run.stdout, re.M), run.stdout
        assert f"dwgen: 1 of {len(names)} kernels FAILED" in run.stdout


def test_a_fault_exits_non_zero(tmp_path):
    """The harness reports a fault (here an undefined instruction) with a non-zero status."""
    _require("arm-none-eabi-gcc", "qemu-system-arm")
    src = tmp_path / "fault.c"
    src.write_text("int main(void) { __asm__ volatile(\"udf #1\"); return 0; }\n")
    image = tmp_path / "fault.elf"
    r = subprocess.run(
        ["arm-none-eabi-gcc", "-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16", "-O2",
         f"-I{FIRMWARE / 'include'}", str(FIRMWARE / "src" / "startup.c"), str(FIRMWARE / "src" / "semihost.c"),
         str(src), "-nostartfiles", f"-L{FIRMWARE / 'ld'}", f"-T{FIRMWARE / 'ld' / 'mps2-an500.ld'}",
         "-o", str(image)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    run = _qemu(image, "mps2-an500")
    assert run.returncode == 3, run.stdout + run.stderr
    assert "dwgen: fault: UsageFault" in run.stdout or "dwgen: fault: HardFault" in run.stdout, run.stdout


def test_test_main_is_portable_c_and_passes_on_the_host(emitted, tmp_path):
    """The generated main and vectors are strict C99 and pass with the portable kernels on the host."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        tool_missing("no host C compiler")
    kernels, names = emitted["generic"]
    puts = tmp_path / "puts.c"
    puts.write_text("#include <stdio.h>\nvoid dwgen_test_puts(const char *s) { fputs(s, stdout); }\n")
    exe = tmp_path / "host_test"
    srcs = [str(p) for p in sorted(kernels.glob("*.c"))]
    r = subprocess.run([cc, "-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-O1",
                        "-DDWGEN_CMSIS_NN_TYPES", f"-I{kernels}", *srcs, str(puts), "-o", str(exe)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    _assert_all_pass(run, names, "host")


def test_vectors_are_deterministic_and_main_is_regenerated(emitted, tmp_path):
    out = tmp_path / "out"
    _emit(["emit", str(FIXTURES / "kws_dscnn.tflite"), "-o", str(out), "--test-vectors", "--only", "3"])
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(first) == ["dw2_1.c", "dw2_1.h", "dw2_1_vectors.h", "dwgen_kernels.h",
                             "dwgen_test_main.c", "manifest.json"]
    again = tmp_path / "again"
    _emit(["emit", str(FIXTURES / "kws_dscnn.tflite"), "-o", str(again), "--test-vectors", "--only", "3"])
    assert {p.name: p.read_bytes() for p in again.iterdir()} == first
    # Another layer into the same directory: no --force needed for dwgen_test_main.c, which
    # now runs both kernels ...
    _emit(["emit", str(ROOT / "examples" / "kws_dw.json"), "-o", str(out), "--test-vectors"])
    main_c = (out / testvectors.MAIN_FILE).read_text()
    assert '#include "dw2_1_vectors.h"' in main_c and '#include "kws_dw1_vectors.h"' in main_c
    # ... but any other existing file still needs --force, and nothing is written without it.
    assert main(["emit", str(ROOT / "examples" / "kws_dw.json"), "-o", str(out), "--test-vectors"]) == 2
    assert (out / testvectors.MAIN_FILE).read_text() == main_c
    # A dwgen_test_main.c that dwgen did not write is never replaced without --force.
    other = tmp_path / "other"
    other.mkdir()
    (other / testvectors.MAIN_FILE).write_text("int main(void) { return 0; }\n")
    assert main(["emit", str(ROOT / "examples" / "kws_dw.json"), "-o", str(other), "--test-vectors"]) == 2
    assert not (other / "kws_dw1.c").exists()


def test_vectors_match_the_reference_model(emitted):
    out, _ = emitted["generic"]
    ql = layerfile.load(ROOT / "examples" / "kws_dw.json")
    text = (out / "kws_dw1_vectors.h").read_text()

    def array(name):
        body = re.search(rf"{name}\[\d+\] DWGEN_TEST_ALIGN = \{{(.*?)\}};", text, re.S).group(1)
        return np.array([int(v) for v in body.replace(",", " ").split()], dtype=np.int8)

    x = array("kws_dw1_test_input").reshape(ql.geometry.input_shape)
    assert np.array_equal(x, ql.random_input(testvectors.seed_for("kws_dw1")))
    assert np.array_equal(array("kws_dw1_test_expected"), dwgen.reference(ql, x).reshape(-1))


def test_example_project_runs_as_documented(tmp_path):
    """examples/firmware: the README's three commands (kernels and build in tmp_path), then CMake."""
    _require("arm-none-eabi-gcc", "qemu-system-arm", "make", "cmake")
    example = ROOT / "examples" / "firmware"
    kernels = tmp_path / "kernels"
    _emit(["emit", str(FIXTURES / "kws_dscnn.tflite"), "-o", str(kernels), "--target", "cortex-m4",
           "--test-vectors"])
    names = ["dw1_1", "dw2_1", "dw3_1", "dw4_1"]
    r = subprocess.run(["make", "-C", str(example), f"KERNELS={kernels}", f"BUILD={tmp_path / 'make'}", "-j2"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    # The README's qemu command: the semihosting console goes to stderr without a chardev.
    run = subprocess.run(
        ["qemu-system-arm", "-machine", "mps2-an386", "-nographic", "-monitor", "none", "-serial", "none",
         "-semihosting-config", "enable=on,target=native", "-kernel", str(tmp_path / "make" / "app.elf")],
        capture_output=True, text=True, timeout=QEMU_TIMEOUT, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stderr.startswith("example firmware: checking the dwgen kernels\n"), run.stderr
    assert _verdicts(run.stderr) == {n: "PASS" for n in names}
    build = tmp_path / "cmake"
    r = subprocess.run(["cmake", "-S", str(example), "-B", str(build), f"-DDWGEN_KERNELS={kernels}",
                        "-DBOARD=mps2-an500"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(["cmake", "--build", str(build), "-j2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    _assert_all_pass(_qemu(build / "app.elf", "mps2-an500"), names, "example, cmake, mps2-an500")
