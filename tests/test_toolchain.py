"""Cross-compilation: targets, compiler discovery (gcc and zig's clang), freestanding ELF builds."""

from __future__ import annotations

import shutil

import pytest

from dwgen import toolchain
from dwgen.errors import BuildError
from dwgen.toolchain import (TARGETS, Compiler, build_elf, find_compiler, firmware_dir,
                             get_target)

from helpers import needs

HAVE_GCC = shutil.which(toolchain.GCC_NAME) is not None
try:
    HAVE_ZIG = toolchain._zig_compiler() is not None
except Exception:  # noqa: BLE001
    HAVE_ZIG = False

needs_gcc = needs(HAVE_GCC, "arm-none-eabi-gcc is not on PATH (Debian package gcc-arm-none-eabi)")
needs_zig = needs(HAVE_ZIG, "the ziglang wheel is not installed")

COMPILERS = [pytest.param("gcc", marks=needs_gcc), pytest.param("clang", marks=needs_zig)]

TINY_C = r"""
#include <stdint.h>
#include <string.h>
const int8_t dw_table[7] = {1, 2, 3, 4, 5, 6, 7};
int32_t dw_state = 3;
static int32_t helper(int32_t v) { return v * 3 + dw_state; }
int32_t dw_sum(const int8_t *p, int n) {
    int32_t s = 0;
    for (int i = 0; i < n; i++) s += p[i] * dw_table[i % 7];
    return helper(s);
}
int32_t dw_div(int32_t a, int32_t b) { return a / b; }          /* __aeabi_idiv on M0 */
int64_t dw_mul64(int32_t a, int32_t b) { return (int64_t)a * b; }
int32_t rd_unaligned(const int8_t *p) { int32_t v; memcpy(&v, p, 4); return v; }
"""


@pytest.fixture(scope="module")
def tiny_c(tmp_path_factory):
    p = tmp_path_factory.mktemp("src") / "tiny.c"
    p.write_text(TINY_C)
    return p


# ------------------------------------------------------------------ targets and flags

def test_targets_table():
    assert set(TARGETS) == {"generic", "cortex-m0", "cortex-m0plus", "cortex-m3", "cortex-m4",
                            "cortex-m4-nofpu", "cortex-m7", "cortex-m33", "cortex-m55"}
    m4 = TARGETS["cortex-m4"]
    assert (m4.cpu, m4.dsp, m4.fpu, m4.float_abi, m4.uc_cpu, m4.thumb1_only) == \
        ("cortex-m4", True, "fpv4-sp-d16", "hard", "cortex-m4", False)
    for name in ("cortex-m0", "cortex-m0plus"):
        t = TARGETS[name]
        assert t.thumb1_only and not t.dsp and t.fpu is None and t.uc_cpu == "cortex-m0"
    assert not TARGETS["cortex-m3"].dsp and TARGETS["cortex-m3"].uc_cpu == "cortex-m3"
    nofpu = TARGETS["cortex-m4-nofpu"]
    assert (nofpu.cpu, nofpu.dsp, nofpu.fpu, nofpu.float_abi, nofpu.uc_cpu, nofpu.thumb1_only) == \
        ("cortex-m4", True, None, "soft", "cortex-m4", False)
    assert not nofpu.has_fpu and m4.has_fpu and nofpu.zig_cpu == "cortex_m4+dsp"
    assert get_target("m4-nofpu") is nofpu and get_target("cortex_m4_nofpu") is nofpu
    assert TARGETS["cortex-m7"].uc_cpu == "cortex-m7" and TARGETS["cortex-m7"].fpu == "fpv5-d16"
    assert TARGETS["cortex-m55"].mve and TARGETS["cortex-m55"].uc_cpu == "cortex-m33"
    assert not TARGETS["generic"].cross
    assert get_target("M4") is m4 and get_target("cortex_m4") is m4
    assert get_target("cortex-m0+") is TARGETS["cortex-m0plus"]
    with pytest.raises(BuildError, match="unknown target"):
        get_target("cortex-a53")


def test_gcc_flags_per_target():
    gcc = Compiler("gcc", ("arm-none-eabi-gcc",), "arm-none-eabi-gcc", "arm-none-eabi-gcc 12")
    f = gcc.flags("cortex-m4", "O2")
    assert f[:4] == ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
    assert "-O2" in f and "-ffunction-sections" in f and "-ffreestanding" not in f
    assert gcc.flags("cortex-m0", "Os")[:3] == ["-mcpu=cortex-m0", "-mthumb", "-mfloat-abi=soft"]
    assert "-Os" in gcc.flags("cortex-m0", "-Os")
    assert "-mfpu=fpv5-d16" in gcc.flags("cortex-m7")
    assert "-mfpu=fpv5-sp-d16" in gcc.flags("cortex-m33")
    assert "-mfloat-abi=soft" in gcc.flags("cortex-m3") and not any(
        x.startswith("-mfpu") for x in gcc.flags("cortex-m3"))
    nofpu = gcc.flags("cortex-m4-nofpu")
    assert nofpu[:3] == ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=soft"]
    assert not any(x.startswith("-mfpu") for x in nofpu)
    assert "-ffreestanding" in gcc.flags("cortex-m4", freestanding=True)
    assert "-nostdlib" in gcc.link_flags("cortex-m4") and gcc.link_libs() == ["-lgcc"]
    with pytest.raises(BuildError, match="optimisation level"):
        gcc.flags("cortex-m4", "O9")
    with pytest.raises(BuildError, match="host C compiler"):
        gcc.flags("generic")


def test_clang_flags_per_target():
    clang = Compiler("clang", ("zig", "cc"), "zig", "clang 18 (zig 0.13)")
    f = clang.flags("cortex-m4", "O3")
    assert f[:4] == ["-target", "thumb-freestanding-eabihf", "-mcpu=cortex_m4+dsp+vfp4d16sp", "-mthumb"]
    assert "-mcpu=cortex_m7+dsp+fp_armv8d16" in clang.flags("cortex-m7")
    assert "-mcpu=cortex_m33+dsp+fp_armv8d16sp" in clang.flags("cortex-m33")
    assert "-O3" in f and "-fhosted" in f and "-fomit-frame-pointer" in f
    assert "-fno-sanitize=all" in f
    assert clang.flags("cortex-m0")[:3] == ["-target", "thumb-freestanding-eabi",
                                            "-mcpu=cortex_m0"]
    assert "-mcpu=cortex_m0plus" in clang.flags("cortex-m0plus")
    assert clang.flags("cortex-m4-nofpu")[:5] == ["-target", "thumb-freestanding-eabi", "-mcpu=cortex_m4+dsp",
                                                  "-mthumb", "-mfloat-abi=soft"]
    assert "-ffreestanding" in clang.flags("cortex-m4", freestanding=True)
    assert "-nostdlib" not in clang.link_flags("cortex-m4")   # compiler-rt is needed


def test_firmware_files_present():
    fw = firmware_dir()
    assert (fw / "emu.ld").is_file() and (fw / "support.c").is_file()
    assert (fw / "include" / "string.h").is_file()


# ---------------------------------------------------------------- compiler discovery

def test_find_compiler_default_and_forced(monkeypatch):
    monkeypatch.delenv("DWGEN_COMPILER", raising=False)
    if HAVE_GCC:
        assert find_compiler().kind == "gcc"
        g = find_compiler("gcc")
        assert g.version.startswith("arm-none-eabi-gcc ") and g.path.endswith("arm-none-eabi-gcc")
    if HAVE_ZIG:
        c = find_compiler("clang")
        assert c.kind == "clang" and c.version.startswith("clang ") and "zig" in c.version
        assert find_compiler("zig") == c
        monkeypatch.setenv("DWGEN_COMPILER", "clang")
        assert find_compiler().kind == "clang"
    with pytest.raises(BuildError, match="unknown compiler"):
        find_compiler("icc")


def test_missing_gcc_gives_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))        # nothing on PATH
    toolchain._find_compiler_cached.cache_clear()
    with pytest.raises(BuildError) as e:
        find_compiler("gcc")
    msg = str(e.value)
    assert "gcc-arm-none-eabi" in msg and "ziglang" in msg and "not on PATH" in msg
    if HAVE_ZIG:   # without gcc on PATH the default falls back to zig's clang
        monkeypatch.delenv("DWGEN_COMPILER", raising=False)
        assert find_compiler().kind == "clang"


def test_no_compiler_at_all(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("DWGEN_COMPILER", raising=False)
    monkeypatch.setattr(toolchain, "_zig_command", lambda: None)
    toolchain._find_compiler_cached.cache_clear()
    try:
        with pytest.raises(BuildError) as e:
            find_compiler()
        assert "apt install gcc-arm-none-eabi" in str(e.value)
        assert "pip install ziglang" in str(e.value)
        with pytest.raises(BuildError, match="pip install ziglang"):
            find_compiler("clang")
    finally:
        toolchain._find_compiler_cached.cache_clear()


# ---------------------------------------------------------------------------- builds

@pytest.mark.parametrize("cc", COMPILERS)
@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m0"])
def test_build_tiny_function(cc, target, tiny_c):
    e = build_elf([tiny_c], target, "O2", compiler=cc)
    assert e.target.name == target and e.compiler.kind == cc and e.opt == "O2"
    f = e.symbol("dw_sum")
    assert f.kind == "func" and f.size > 0 and f.section == ".text" and f.addr % 2 == 0
    assert f.call_addr == f.addr | 1
    assert e.symbol("dw_table").section == ".rodata" and e.symbol_size("dw_table") == 7
    assert e.symbol("dw_state").section == ".data"
    assert e.addr("dw_sum") < 0x01000000 <= 0x20000000 <= e.addr("dw_state")
    # everything the C needs is linked: the division and 64-bit multiply helpers on M0
    assert "__emu_return" in e.symbols
    if target == "cortex-m0":
        assert "__aeabi_idiv" in e.symbols and "__aeabi_lmul" in e.symbols
    # per-object sizes: the kernel object's sections, literal pools and tables included
    sz = e.object_sizes(tiny_c)
    assert sz == e.object_sizes("tiny.c")
    assert sz.text >= e.sizes(prefix="dw_").text > 0
    assert sz.rodata >= 7 and sz.data == 4 and sz.bss == 0 and sz.flash == sz.text + sz.rodata + 4
    assert e.sizes(names=["dw_table"]).rodata == 7
    # what reports need
    info = e.toolchain_info()
    assert info["compiler"] == cc and info["compiler_version"] == e.compiler.version
    assert info["target"] == target and "-O2" in info["cflags"]
    cpu = "-mcpu=" + (target if cc == "gcc" else target.replace("-", "_"))
    assert cpu in info["cflags"] and cpu in info["ldflags"]
    lay = e.layout
    assert lay.flash_start == 0 and lay.ram_start == 0x20000000
    assert lay.stack_limit == 0x20000000 < lay.stack_top <= lay.heap_start < lay.ram_end
    assert e.elf_bytes[:4] == b"\x7fELF" and e.path is None


@needs_gcc
@pytest.mark.parametrize("cc", COMPILERS)
def test_predefined_fpu_and_dsp_macros_match_the_target(cc, tmp_path):
    """Code chooses its FPU / no-FPU variant by __ARM_FP (the DSP kernel's tiles do): both
    compilers must define it exactly for the targets with an FPU."""
    src = tmp_path / "probe.c"
    src.write_text("#if defined(__ARM_FP) != WANT_FP\n#error __ARM_FP does not match the target\n#endif\n"
                   "#if defined(__ARM_FEATURE_DSP) != WANT_DSP\n#error __ARM_FEATURE_DSP does not match\n#endif\n"
                   "int probe(void) { return 1; }\n")
    for name in ("cortex-m3", "cortex-m4", "cortex-m4-nofpu", "cortex-m7", "cortex-m33", "cortex-m55"):
        t = TARGETS[name]
        build_elf([src], name, compiler=cc, defines={"WANT_FP": int(t.has_fpu), "WANT_DSP": int(t.dsp)},
                  workdir=tmp_path / name)


def test_hosted_build_inlines_memcpy_freestanding_does_not(tiny_c):
    hosted = build_elf([tiny_c], "cortex-m4", compiler="gcc")
    free = build_elf([tiny_c], "cortex-m4", compiler="gcc", freestanding=True)
    assert "memcpy" not in hosted.symbols          # memcpy(&v, p, 4) became one LDR
    assert "memcpy" in free.symbols                 # a real call under -ffreestanding
    assert hosted.symbol_size("rd_unaligned") < free.symbol_size("rd_unaligned")


@needs_gcc
def test_newlib_and_keep(tiny_c, tmp_path):
    # keep: only the named roots (and what they use) are linked
    e = build_elf([tiny_c], "cortex-m4", compiler="gcc", keep=["dw_sum"])
    assert "dw_sum" in e.symbols and "dw_div" not in e.symbols
    # newlib: the C library's memcpy instead of support.c's
    free = build_elf([tiny_c], "cortex-m4", compiler="gcc", freestanding=True, newlib=True)
    assert "memcpy" in free.symbols
    assert free.object_sizes(tiny_c) == build_elf([tiny_c], "cortex-m4", compiler="gcc",
                                                  freestanding=True).object_sizes(tiny_c)
    if HAVE_ZIG:
        with pytest.raises(BuildError, match="newlib"):
            build_elf([tiny_c], "cortex-m4", compiler="clang", newlib=True)


@needs_gcc
def test_workdir_defines_includes_and_stack_size(tmp_path):
    inc = tmp_path / "inc"
    inc.mkdir()
    (inc / "cfg.h").write_text("#define SCALE 5\n")
    src = tmp_path / "k.c"
    src.write_text('#include "cfg.h"\nint k(int x){ return x * SCALE + OFFSET; }\n')
    wd = tmp_path / "build"
    e = build_elf([src], "m4", "Os", include_dirs=[inc], defines={"OFFSET": 7}, workdir=wd,
                  stack_size=4096)
    assert e.path == wd / "image.elf" and e.path.is_file() and (wd / "image.map").is_file()
    assert e.layout.stack_top - e.layout.stack_limit == 4096
    assert any("-DOFFSET=7" in c for c in e.cflags) and "-Os" in e.cflags
    assert len(e.commands) == 3                      # k.c, support.c, link


@pytest.mark.parametrize("cc", COMPILERS)
def test_compile_error_is_build_error(cc, tmp_path):
    src = tmp_path / "bad.c"
    src.write_text("int f(void) { return undefined_thing; }\n")
    with pytest.raises(BuildError) as e:
        build_elf([src], "cortex-m4", compiler=cc)
    assert "undefined_thing" in str(e.value) and "compiling" in str(e.value)


def test_generic_and_bad_inputs_refused(tmp_path):
    src = tmp_path / "a.c"
    src.write_text("int a;\n")
    with pytest.raises(BuildError, match="host C compiler"):
        build_elf([src], "generic")
    with pytest.raises(BuildError, match="not found"):
        build_elf([tmp_path / "missing.c"], "cortex-m4")
    with pytest.raises(BuildError, match="at least one"):
        build_elf([], "cortex-m4")
