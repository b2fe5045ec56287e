"""Building firmware with dwgen's Make fragment and CMake functions (issue 11 item 4): a
second `make` after an edit relinks the image (dwgen.mk no longer lets the compiler's
dependency files pick the default goal), and the kernels of two models emitted into one
directory compile and link into one image.

Needs make and arm-none-eabi-gcc with newlib (and cmake for the CMake test); without them
the tests skip, naming what is missing (under CI they fail instead).
"""

from __future__ import annotations

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
