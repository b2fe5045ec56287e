"""Building firmware with dwgen's Make fragment and CMake functions (issue 11 item 4): a
second `make` after an edit relinks the image (dwgen.mk no longer lets the compiler's
dependency files pick the default goal), and the kernels of two models emitted into one
directory compile and link into one image.

Needs make and arm-none-eabi-gcc with newlib (and cmake for the CMake test); without them
the tests skip, naming what is missing (under CI they fail instead).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from dwgen.cli import main
from helpers import tool_missing

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
EXAMPLE = ROOT / "examples" / "kws_dw.json"
CC = "arm-none-eabi-gcc"


def _require(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        tool_missing(f"needs {', '.join(missing)} (Debian: apt install make cmake gcc-arm-none-eabi "
                     "libnewlib-arm-none-eabi)")


def _make(d: Path, *args: str) -> str:
    run = subprocess.run(["make", "--no-print-directory", "-C", str(d), *args], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


LINK = "\t$(CC) $(CFLAGS) --specs=nosys.specs -nostartfiles -Wl,-e,main $^ -o $@\n"
MAIN_O = "main.o: main.c\n\t$(CC) $(CFLAGS) $(DWGEN_CPPFLAGS) -c $< -o $@\n"
HEAD = f"DWGEN_DIR := kernels\nCC := {CC}\nCFLAGS := -mcpu=cortex-m4 -mthumb -O2\n"
INCLUDE = f"include {FIRMWARE}/dwgen.mk\n"
MAKEFILES = {
    # dwgen.mk before the firmware's first rule, as the example project does: the case that
    # went wrong (the first object of the first .d file became the default goal)
    "included-first": HEAD + INCLUDE + "app.elf: main.o $(DWGEN_OBJS)\n" + LINK + MAIN_O,
    "included-after-the-first-rule": HEAD + "all: app.elf\n" + INCLUDE + "app.elf: main.o $(DWGEN_OBJS)\n" + LINK
                                     + MAIN_O,
    "default-goal-set": HEAD + ".DEFAULT_GOAL := app.elf\n" + INCLUDE + MAIN_O
                        + "app.elf: main.o $(DWGEN_OBJS)\n" + LINK,
}
MAIN = """#include "kws_dw1.h"
static int8_t in[KWS_DW1_INPUT_SIZE], out[KWS_DW1_OUTPUT_SIZE];
int main(void) { kws_dw1(in, out); return out[0] + %d; }
"""


@pytest.mark.parametrize("variant", sorted(MAKEFILES))
def test_make_relinks_after_an_edit(tmp_path, variant):
    _require("make", CC)
    assert main(["emit", str(EXAMPLE), "-o", str(tmp_path / "kernels"), "--target", "cortex-m4"]) == 0
    (tmp_path / "Makefile").write_text(MAKEFILES[variant])
    (tmp_path / "main.c").write_text(MAIN % 1)
    first = _make(tmp_path)
    assert first.splitlines()[-1].endswith(" -o app.elf")
    image = (tmp_path / "app.elf").read_bytes()
    # nothing changed: the goal is still the image, and it is up to date
    goal = "all" if variant == "included-after-the-first-rule" else "app.elf"
    assert _make(tmp_path) == (f"make: Nothing to be done for '{goal}'.\n" if goal == "all"
                               else "make: 'app.elf' is up to date.\n")
    (tmp_path / "main.c").write_text(MAIN % 2)
    again = _make(tmp_path).splitlines()
    assert [line.split(" -o ")[-1] for line in again] == ["main.o", "app.elf"]
    assert (tmp_path / "app.elf").read_bytes() != image


# -- several models in one directory -----------------------------------------------------------
FIXTURES = ROOT / "tests" / "fixtures"
KWS = FIXTURES / "kws_dscnn.tflite"
MOBILENET = FIXTURES / "mobilenet_tiny.tflite"
KWS_KERNELS = ["dw1_1", "dw2_1", "dw3_1", "dw4_1"]
MN_KERNELS = [f"conv_dw_{i}_1" for i in range(1, 6)]


def _three_models(tmp_path: Path, capsys) -> Path:
    """kws_dscnn, mobilenet_tiny and kws_dscnn again under another name with --prefix copy_."""
    out = tmp_path / "kernels"
    copy = tmp_path / "kws_copy.tflite"
    shutil.copy(KWS, copy)
    assert main(["emit", str(KWS), "-o", str(out), "--target", "cortex-m4"]) == 0
    assert main(["emit", str(MOBILENET), "-o", str(out), "--target", "generic"]) == 0
    assert main(["emit", str(copy), "-o", str(out), "--target", "cortex-m4", "--prefix", "copy_", "--only", "1,3"]) == 0
    capsys.readouterr()
    return out


def test_models_share_a_directory(tmp_path, capsys):
    out = _three_models(tmp_path, capsys)
    copies = ["copy_dw1_1", "copy_dw2_1"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{k}.{x}" for k in KWS_KERNELS + MN_KERNELS + copies for x in "ch"]
        + ["copy_dwgen_kernels.h", "dwgen_kernels.h", "manifest.json"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["models"] == [
        {"model": "kws_copy.tflite", "prefix": "copy_", "header": "copy_dwgen_kernels.h", "kernels": copies},
        {"model": "kws_dscnn.tflite", "prefix": "", "header": None, "kernels": KWS_KERNELS},
        {"model": "mobilenet_tiny.tflite", "prefix": "", "header": None, "kernels": MN_KERNELS},
    ]
    assert [(k["model"], k["target"], k["name"]) for k in manifest["kernels"]] == (
        [("kws_copy.tflite", "cortex-m4", k) for k in copies]
        + [("kws_dscnn.tflite", "cortex-m4", k) for k in KWS_KERNELS]
        + [("mobilenet_tiny.tflite", "generic", k) for k in MN_KERNELS])
    import dwgen

    assert (out / "dwgen_kernels.h").read_text() == f"""\
/*
 * dwgen_kernels.h - every depthwise kernel dwgen {dwgen.__version__} generated into this directory,
 * for 3 models. See manifest.json for op indices and tensor shapes.
 */
#ifndef DWGEN_KERNELS_H
#define DWGEN_KERNELS_H

/* kws_copy.tflite (--prefix copy_): 2 kernels */
#include "copy_dw1_1.h" /* op 1 */
#include "copy_dw2_1.h" /* op 3 */

/* kws_dscnn.tflite: 4 kernels */
#include "dw1_1.h" /* op 1 */
#include "dw2_1.h" /* op 3 */
#include "dw3_1.h" /* op 5 */
#include "dw4_1.h" /* op 7 */

/* mobilenet_tiny.tflite: 5 kernels */
#include "conv_dw_1_1.h" /* op 1 */
#include "conv_dw_2_1.h" /* op 3 */
#include "conv_dw_3_1.h" /* op 5 */
#include "conv_dw_4_1.h" /* op 7 */
#include "conv_dw_5_1.h" /* op 9 */

#define DWGEN_KERNEL_COUNT 11

#endif /* DWGEN_KERNELS_H */
"""
    # The prefix's own header: its kernels only, and regenerated without --force.
    assert main(["emit", str(tmp_path / "kws_copy.tflite"), "-o", str(out), "--prefix", "copy_", "--only", "5"]) == 0
    assert (out / "copy_dwgen_kernels.h").read_text() == f"""\
/*
 * copy_dwgen_kernels.h - every depthwise kernel dwgen {dwgen.__version__} generated with --prefix copy_,
 * for 1 model (dwgen_kernels.h includes those of every model in this directory).
 * See manifest.json for op indices and tensor shapes.
 */
#ifndef COPY_DWGEN_KERNELS_H
#define COPY_DWGEN_KERNELS_H

/* kws_copy.tflite (--prefix copy_): 3 kernels */
#include "copy_dw1_1.h" /* op 1 */
#include "copy_dw2_1.h" /* op 3 */
#include "copy_dw3_1.h" /* op 5 */

#define COPY_DWGEN_KERNEL_COUNT 3

#endif /* COPY_DWGEN_KERNELS_H */
"""


def test_re_emitting_a_model_replaces_only_its_files(tmp_path, capsys):
    out = _three_models(tmp_path, capsys)
    others = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.iterdir() if p.name.startswith("conv_dw")}
    kws_before = (out / "dw1_1.c").read_text()
    assert main(["emit", str(KWS), "-o", str(out), "--target", "generic", "--force"]) == 0
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.iterdir()
            if p.name.startswith("conv_dw")} == others
    assert (out / "dw1_1.c").read_text() != kws_before  # now the portable kernel
    manifest = json.loads((out / "manifest.json").read_text())
    assert [(m["model"], len(m["kernels"])) for m in manifest["models"]] == [
        ("kws_copy.tflite", 2), ("kws_dscnn.tflite", 4), ("mobilenet_tiny.tflite", 5)]
    assert {k["target"] for k in manifest["kernels"] if k["model"] == "kws_dscnn.tflite"} == {"generic"}


def test_a_name_clash_between_models_is_refused(tmp_path, capsys):
    out = _three_models(tmp_path, capsys)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    copy = tmp_path / "kws_copy.tflite"
    for argv in ([], ["--force"]):  # --force replaces a model's own files only
        assert main(["emit", str(copy), "-o", str(out), *argv]) == 2
        assert capsys.readouterr().err == (
            f"dwgen: error: kernel 'dw1_1' of 'kws_copy.tflite' would replace the kernel of that name of "
            f"'kws_dscnn.tflite' in {out}: emit one of them with another --prefix (e.g. --prefix kws_copy_) "
            "or into another directory; nothing was written\n")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # Symbols colliding across models are refused as between any two kernels of a directory:
    # a layer conv_dw_1_1_input's include guard is conv_dw_1_1's input-height macro.
    from test_model_names import chain

    hostile = tmp_path / "hostile.tflite"
    hostile.write_bytes(chain(["model/conv_dw_1_1_input/depthwise"]))
    assert main(["emit", str(hostile), "-o", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"dwgen: error: kernel 'conv_dw_1_1_input' collides with kernel 'conv_dw_1_1' already in {out}: "
        "CONV_DW_1_1_INPUT_H would be both the include guard of conv_dw_1_1_input.h and conv_dw_1_1's "
        "input-height macro; give this model's kernels a --prefix or emit it into another directory\n")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert main(["emit", str(hostile), "-o", str(out), "--prefix", "h_"]) == 0
    # A layer whose kernel would be a prefix's header (copy_dwgen_kernels.h), in either order.
    capsys.readouterr()
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    clash = tmp_path / "clash.tflite"
    clash.write_bytes(chain(["model/copy_dwgen_kernels/depthwise", "model/new_dwgen_kernels/depthwise"]))
    message = ("kernel 'copy_dwgen_kernels' of 'clash.tflite' and the header of the kernels emitted with --prefix "
               "copy_ would both be copy_dwgen_kernels.h: emit one of the models with another --prefix; nothing was "
               "written")
    assert main(["emit", str(clash), "-o", str(out), "--only", "0"]) == 2
    assert capsys.readouterr().err == f"dwgen: error: {message}\n"
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert main(["emit", str(clash), "-o", str(out), "--only", "1"]) == 0
    assert main(["emit", str(copy), "-o", str(out), "--prefix", "new_", "--only", "1"]) == 2
    assert capsys.readouterr().err == (
        "dwgen: error: kernel 'new_dwgen_kernels' of 'clash.tflite' and the header of the kernels emitted with "
        "--prefix new_ would both be new_dwgen_kernels.h: emit one of the models with another --prefix; nothing "
        "was written\n")


MULTI_MAIN = """#include "dwgen_kernels.h"
static int8_t a[DW1_1_INPUT_SIZE], b[DW1_1_OUTPUT_SIZE];
static int8_t c[CONV_DW_1_1_INPUT_SIZE], d[CONV_DW_1_1_OUTPUT_SIZE];
int main(void)
{
    dw1_1(a, b);
    copy_dw1_1(a, b);
    conv_dw_1_1(c, d);
    return b[0] + d[0] + DWGEN_KERNEL_COUNT;
}
"""


def test_models_in_one_directory_link_together_with_make(tmp_path, capsys):
    _require("make", CC)
    out = _three_models(tmp_path, capsys)
    (tmp_path / "Makefile").write_text(HEAD + INCLUDE + "app.elf: main.o $(DWGEN_OBJS)\n" + LINK + MAIN_O)
    (tmp_path / "main.c").write_text(MULTI_MAIN)
    log = _make(tmp_path)
    compiled = sorted(line.split(" -o ")[-1] for line in log.splitlines() if " -c " in line)
    assert compiled == sorted(["main.o"] + [f"build/dwgen/{k}.o" for k in
                                            KWS_KERNELS + MN_KERNELS + ["copy_dw1_1", "copy_dw2_1"]])
    nm = subprocess.run(["arm-none-eabi-nm", str(tmp_path / "app.elf")], capture_output=True, text=True).stdout
    assert {"dw1_1", "copy_dw1_1", "conv_dw_1_1"} <= {line.split()[-1] for line in nm.splitlines()}


CMAKE = f"""cmake_minimum_required(VERSION 3.16)
set(CMAKE_TOOLCHAIN_FILE "{FIRMWARE}/cmake/arm-none-eabi.cmake")
project(multi LANGUAGES C)
include("{FIRMWARE}/cmake/dwgen.cmake")
add_executable(app main.c)
target_compile_options(app PRIVATE -mcpu=cortex-m4 -mthumb -O2)
target_link_options(app PRIVATE -mcpu=cortex-m4 -mthumb --specs=nosys.specs -nostartfiles -Wl,-e,main)
dwgen_add_kernels(app "${{CMAKE_CURRENT_SOURCE_DIR}}/kernels")
"""


def test_models_in_one_directory_link_together_with_cmake(tmp_path, capsys):
    _require("cmake", "make", CC)
    _three_models(tmp_path, capsys)
    (tmp_path / "CMakeLists.txt").write_text(CMAKE)
    (tmp_path / "main.c").write_text(MULTI_MAIN)
    for argv in (["cmake", "-S", str(tmp_path), "-B", str(tmp_path / "build")],
                 ["cmake", "--build", str(tmp_path / "build")]):
        run = subprocess.run(argv, capture_output=True, text=True)
        assert run.returncode == 0, run.stdout + run.stderr
    nm = subprocess.run(["arm-none-eabi-nm", str(tmp_path / "build" / "app")], capture_output=True, text=True)
    assert {"dw1_1", "copy_dw1_1", "conv_dw_1_1"} <= {line.split()[-1] for line in nm.stdout.splitlines()}
