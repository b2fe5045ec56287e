"""Cross-compiling C for Cortex-M: targets, compiler discovery, freestanding ELF builds.

Compilers, in order of preference:

1. ``arm-none-eabi-gcc`` when it is on PATH (Debian/Ubuntu package ``gcc-arm-none-eabi``,
   or Arm's GNU toolchain). Links with ``-nostdlib ... -lgcc``: no C library, but
   libgcc for the helpers Cortex-M0 needs (``__aeabi_idiv``, ``__aeabi_lmul``, ...).
2. clang from the ``ziglang`` wheel (``zig cc``, the pip dependency), so a pip-only
   install can still cross-compile. Triple ``thumb-freestanding-eabi[hf]``; zig links
   its compiler-rt for the same helpers.

``find_compiler(prefer=None)`` picks one (``prefer="gcc"`` / ``"clang"`` to force it, or
the environment variable ``DWGEN_COMPILER``). ``build_elf`` compiles every source to its
own object, links them with ``firmware/emu/support.c`` (memcpy/memset/``__aeabi_mem*``
and the ``__emu_return`` address the emulator returns to) using ``firmware/emu/emu.ld``:
code and constants in flash at 0x00000000, stack, data, bss and a heap for argument
buffers in RAM at 0x20000000. The result, an :class:`ElfImage`, carries the load
segments, the symbol table, per-object section sizes and the exact compiler, version
and command lines used (for reports).

Design decisions
----------------
* **Not** ``-ffreestanding`` by default. A freestanding compile turns off the builtin
  ``memcpy``/``memset``: ``int32_t v; memcpy(&v, p, 4);`` (CMSIS-NN's and most kernels'
  unaligned-load idiom) becomes a ``bl memcpy`` instead of one ``LDR`` under gcc -O2, and
  zig's clang makes the same call unless ``-fhosted`` is given. Real firmware is built
  hosted (with newlib), so timings are taken hosted. No C library is linked either
  way (``-nostdlib``); ``support.c`` supplies the memory functions the compilers may
  call, and ``firmware/emu/include/string.h`` is a fallback header (``-idirafter``) for
  compilers without libc headers. ``build_elf(..., freestanding=True)`` gives the
  strict freestanding compile.
* **Sizes: one object per source.** Every source is compiled to its own object, and the
  ``.text`` / ``.rodata`` / ``.data`` / ``.bss`` bytes of that object (all allocatable
  sections of each kind, so anonymous constants, literal pools and jump tables count)
  are recorded in ``ElfImage.objects``. A report of "the kernel's flash bytes" is
  ``elf.object_sizes("kernel.c")``: put the kernel in its own source file, the
  harness in another. Symbol-level queries on the linked image are there too:
  ``elf.symbol_size(name)`` and ``elf.sizes(prefix="dw_")`` (sums the sizes of the
  symbols whose names start with a prefix, split by the output section they are in).
* **Link roots.** Links use ``--gc-sections`` with every global symbol defined by the
  user's objects as a root (``-u name``), so nothing a caller may want to call is
  dropped while unused library code (zig's compiler-rt is large) is. ``keep=[...]``
  names the roots instead (for libraries such as CMSIS-NN whose unused functions
  reference files you do not compile).
* ``newlib=True`` (gcc) links the C library's memcpy/memset instead of support.c's
  simple loops; docs/benchmark-layers.md was measured that way, and CMSIS-NN's ``_s8_opt``
  path spends about 7 % of its cycles in them.
* ``-ffunction-sections -fdata-sections -fno-common -fomit-frame-pointer
  -fno-unwind-tables -fno-asynchronous-unwind-tables -fno-stack-protector -g`` on both
  compilers (zig defaults to frame pointers and unwind tables; gcc already omits them
  at -O1 and above). ``-g`` does not change the generated code.
"""

from __future__ import annotations

import functools
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from .errors import BuildError

__all__ = [
    "TARGETS", "OPT_LEVELS", "Target", "Compiler", "ElfImage", "Symbol", "SectionSizes",
    "Segment", "MemoryLayout", "get_target", "find_compiler", "build_elf", "firmware_dir",
]

GCC_NAME = "arm-none-eabi-gcc"
GCC_DEBIAN_PACKAGE = "gcc-arm-none-eabi"
ZIG_PIP_PACKAGE = "ziglang"

OPT_LEVELS = ("O0", "O1", "O2", "O3", "Os", "Oz")

#: Symbol the emulator uses as the return address (defined in firmware/emu/support.c).
RETURN_SYMBOL = "__emu_return"


# --------------------------------------------------------------------------- targets

@dataclass(frozen=True)
class Target:
    """One Cortex-M core: how to compile for it and how to emulate it."""

    name: str
    cpu: str | None            # gcc -mcpu value (None: host compiler)
    arch: str | None           # architecture, for information
    dsp: bool                  # has the DSP extension (SMLAD, SXTB16, SSAT16, ...)
    fpu: str | None            # gcc -mfpu value, None if no FPU
    float_abi: str | None      # "hard" | "soft" (None: host)
    thumb1_only: bool          # ARMv6-M: 16-bit Thumb only, no IT, no CBZ, no DSP
    uc_cpu: str | None         # unicorn CPU model used to emulate it
    mve: bool = False          # Helium (unicorn cannot execute it)
    default_opt: str = "O2"
    note: str = ""
    tune: str | None = None    # gcc -mtune, when the build is another core's instruction set

    def for_emulation(self) -> "Target":
        """The build the emulator runs. A Helium core (Armv8.1-M) is built with the Armv8-M
        Mainline + DSP instruction set it shares with the Cortex-M33 (unicorn's model), tuned for
        itself: the compiler would otherwise add MVE-vectorized C loops, low-overhead loops
        (DLS/LE) and CSEL/CSINC, none of which unicorn executes. dwgen's own asm uses none."""
        if not self.mve:
            return self
        return replace(self, cpu="cortex-m33", arch="armv8-m.main", fpu="fpv5-sp-d16",
                       mve=False, tune=self.cpu)

    @property
    def cross(self) -> bool:
        return self.cpu is not None

    @property
    def zig_cpu(self) -> str | None:
        """zig's -mcpu value: the CPU model plus the DSP extension and the FPU as features.
        zig's Cortex-M models have no FPU (``-mcpu=cortex_m4 -mfloat-abi=hard`` defines no
        ``__ARM_FP`` and calls ``__aeabi_fmul``) and its cortex_m33 has no DSP extension
        (no ``__ARM_FEATURE_DSP``), so both are added explicitly (Helium is not)."""
        if self.cpu is None:
            return None
        return (self.cpu.replace("-", "_") + ("+dsp" if self.dsp else "")
                + _ZIG_FPU_FEATURES.get(self.fpu or "", ""))

    @property
    def has_fpu(self) -> bool:
        return self.fpu is not None


#: zig cpu features of the gcc -mfpu values ("auto" is the M55's: FPv5 with double precision).
_ZIG_FPU_FEATURES = {"fpv4-sp-d16": "+vfp4d16sp", "fpv5-d16": "+fp_armv8d16",
                     "fpv5-sp-d16": "+fp_armv8d16sp", "auto": "+fp_armv8d16"}


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("generic", None, None, False, None, None, False, None,
               note="the host C compiler (portable C); not cross-compiled, not emulated"),
        Target("cortex-m0", "cortex-m0", "armv6-m", False, None, "soft", True, "cortex-m0"),
        Target("cortex-m0plus", "cortex-m0plus", "armv6-m", False, None, "soft", True,
               "cortex-m0", note="emulated with unicorn's Cortex-M0 model"),
        Target("cortex-m3", "cortex-m3", "armv7-m", False, None, "soft", False, "cortex-m3"),
        Target("cortex-m4", "cortex-m4", "armv7e-m", True, "fpv4-sp-d16", "hard", False,
               "cortex-m4"),
        Target("cortex-m4-nofpu", "cortex-m4", "armv7e-m", True, None, "soft", False,
               "cortex-m4",
               note="Cortex-M4 without its FPU (soft-float ABI, __ARM_FP undefined); emulated "
                    "with unicorn's Cortex-M4 model, floating-point instructions trapped"),
        Target("cortex-m7", "cortex-m7", "armv7e-m", True, "fpv5-d16", "hard", False,
               "cortex-m7"),
        Target("cortex-m33", "cortex-m33", "armv8-m.main", True, "fpv5-sp-d16", "hard",
               False, "cortex-m33"),
        Target("cortex-m55", "cortex-m55", "armv8.1-m.main", True, "auto", "hard", False,
               "cortex-m33", mve=True,
               note="emulated as its Armv8-M Mainline + DSP build (gcc: -mcpu=cortex-m33 "
                    "-mtune=cortex-m55) on unicorn's Cortex-M33 model: dwgen's C and asm are the "
                    "same, only what a compiler adds for Armv8.1-M by itself (Helium-vectorized "
                    "loops, DLS/LE, CSEL) is left out"),
    )
}


def get_target(target: str | Target) -> Target:
    """Look a target up by name (``Target`` objects pass through)."""
    if isinstance(target, Target):
        return target
    key = str(target).strip().lower().replace("_", "-")
    key = {"cortex-m0+": "cortex-m0plus", "m0": "cortex-m0", "m0plus": "cortex-m0plus",
           "m0+": "cortex-m0plus", "m3": "cortex-m3", "m4": "cortex-m4", "m4-nofpu": "cortex-m4-nofpu", "m7": "cortex-m7",
           "m33": "cortex-m33", "m55": "cortex-m55"}.get(key, key)
    try:
        return TARGETS[key]
    except KeyError:
        raise BuildError(
            f"unknown target {target!r}; supported: {', '.join(TARGETS)}") from None


# ------------------------------------------------------------------------- compilers

@dataclass(frozen=True)
class Compiler:
    """A cross compiler: ``kind`` is "gcc" (arm-none-eabi-gcc) or "clang" (zig cc)."""

    kind: str
    command: tuple[str, ...]   # argv prefix, e.g. ("/usr/bin/arm-none-eabi-gcc",)
    path: str                  # the executable, for reports
    version: str               # e.g. "arm-none-eabi-gcc 12.2.1" or "clang 22.1.8 (zig 0.14.0)"

    def describe(self) -> str:
        return f"{self.version} ({' '.join(self.command)})"

    def target_flags(self, target: str | Target) -> list[str]:
        """Code-generation flags selecting the core, Thumb and the float ABI."""
        t = _cross_target(target)
        if self.kind == "gcc":
            flags = [f"-mcpu={t.cpu}", "-mthumb", f"-mfloat-abi={t.float_abi}"]
            if t.fpu:
                flags.append(f"-mfpu={t.fpu}")
            if t.tune:
                flags.append(f"-mtune={t.tune}")
            return flags
        abi = "eabihf" if t.float_abi == "hard" else "eabi"
        return ["-target", f"thumb-freestanding-{abi}", f"-mcpu={t.zig_cpu}", "-mthumb",
                f"-mfloat-abi={t.float_abi}"]

    def flags(self, target: str | Target, opt: str | None = None, *,
              freestanding: bool = False) -> list[str]:
        """Every compile flag for ``target`` at optimisation level ``opt`` ("O2", "-Os", ...).

        Include directories, defines and the fallback header directory are added by
        :func:`build_elf`; this is the part that decides the generated code.
        """
        t = _cross_target(target)
        o = _normalize_opt(opt or t.default_opt)
        flags = self.target_flags(t) + [f"-{o}", "-g", "-ffunction-sections", "-fdata-sections",
                                        "-fno-common", "-fomit-frame-pointer",
                                        "-fno-unwind-tables", "-fno-asynchronous-unwind-tables",
                                        "-fno-stack-protector"]
        if self.kind == "clang":
            flags += ["-fno-sanitize=all", "-ffreestanding" if freestanding else "-fhosted"]
        elif freestanding:
            flags.append("-ffreestanding")
        return flags

    def link_flags(self, target: str | Target) -> list[str]:
        """Flags for linking with firmware/emu/emu.ld (the objects and -u roots come after)."""
        t = _cross_target(target)
        ld = firmware_dir() / "emu.ld"
        common = [f"-T{ld}", "-Wl,--gc-sections", f"-Wl,--entry={RETURN_SYMBOL}",
                  f"-Wl,-u,{RETURN_SYMBOL}"]
        if self.kind == "gcc":
            return self.target_flags(t) + ["-nostdlib"] + common
        # no -nostdlib: zig then links its compiler-rt (there is no libc for freestanding)
        return self.target_flags(t) + ["-nostartfiles"] + common

    def link_libs(self) -> list[str]:
        return ["-lgcc"] if self.kind == "gcc" else []

    def support_flags(self) -> list[str]:
        """Extra flags for support.c: keep its copy loops from becoming calls to themselves."""
        extra = ["-fno-builtin"]
        if self.kind == "gcc":
            extra.append("-fno-tree-loop-distribute-patterns")
        return extra


def _normalize_opt(opt: str) -> str:
    o = str(opt).lstrip("-")
    if o not in OPT_LEVELS:
        raise BuildError(f"unknown optimisation level {opt!r}; use one of "
                         f"{', '.join('-' + x for x in OPT_LEVELS)}")
    return o


def _cross_target(target: str | Target) -> Target:
    t = get_target(target)
    if not t.cross:
        raise BuildError(
            f"target {t.name!r} means the host C compiler (portable C built for this "
            "machine); it is not cross-compiled or emulated. Pick a Cortex-M target "
            f"({', '.join(n for n in TARGETS if n != 'generic')}).")
    return t


def _run(argv: Sequence[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, **kw)


def _gcc_compiler(path: str) -> Compiler:
    try:
        v = _run([path, "-dumpfullversion"]).stdout.strip() or \
            _run([path, "-dumpversion"]).stdout.strip()
    except OSError as e:
        raise BuildError(f"cannot run {path}: {e}") from e
    return Compiler("gcc", (path,), path, f"{GCC_NAME} {v}")


def _zig_command() -> tuple[str, ...] | None:
    try:
        import ziglang  # noqa: F401
    except ImportError:
        return None
    base = Path(ziglang.__file__).resolve().parent
    exe = base / ("zig.exe" if os.name == "nt" else "zig")
    if exe.exists():
        return (str(exe), "cc")
    return (sys.executable, "-m", "ziglang", "cc")


def _zig_compiler() -> Compiler | None:
    cmd = _zig_command()
    if cmd is None:
        return None
    try:
        out = _run([*cmd, "--version"])
        zv = _run([*cmd[:-1], "version"]).stdout.strip()
    except OSError:
        return None
    m = re.search(r"clang version (\S+)", out.stdout)
    if out.returncode != 0 or not m:
        return None
    ver = f"clang {m.group(1)} (zig {zv})" if zv else f"clang {m.group(1)} (zig)"
    return Compiler("clang", cmd, cmd[0], ver)


@functools.lru_cache(maxsize=None)
def _find_compiler_cached(prefer: str | None, path_env: str) -> Compiler:
    gcc = shutil.which(GCC_NAME, path=path_env)
    if prefer == "gcc":
        if gcc is None:
            raise BuildError(
                f"{GCC_NAME} was requested but is not on PATH. Install it (Debian/Ubuntu: "
                f"`apt install {GCC_DEBIAN_PACKAGE}`), or use zig's clang "
                f"(`pip install {ZIG_PIP_PACKAGE}`, prefer='clang').")
        return _gcc_compiler(gcc)
    if prefer is None and gcc is not None:
        return _gcc_compiler(gcc)
    zig = _zig_compiler()
    if zig is not None:
        return zig
    if prefer == "clang":
        raise BuildError(
            "zig's clang was requested but the `ziglang` Python package is not installed "
            f"or does not run. Install it with `pip install {ZIG_PIP_PACKAGE}`, or use "
            f"{GCC_NAME} (Debian/Ubuntu: `apt install {GCC_DEBIAN_PACKAGE}`).")
    raise BuildError(
        f"no Cortex-M cross compiler found: {GCC_NAME} is not on PATH and the `ziglang` "
        f"package is not installed. Install one: `apt install {GCC_DEBIAN_PACKAGE}` "
        f"(Debian/Ubuntu) or `pip install {ZIG_PIP_PACKAGE}`.")


def find_compiler(prefer: str | None = None) -> Compiler:
    """Find a Cortex-M cross compiler.

    ``prefer``: None (``arm-none-eabi-gcc`` if on PATH, else zig's clang), "gcc" or
    "clang" (alias "zig"). When ``prefer`` is None the environment variable
    ``DWGEN_COMPILER`` (gcc | clang) is honoured. Raises :class:`BuildError` naming the
    Debian package and the pip package when nothing usable is found. Results are cached
    per (prefer, PATH).
    """
    if prefer is None:
        prefer = os.environ.get("DWGEN_COMPILER") or None
    if prefer is not None:
        p = str(prefer).strip().lower()
        p = {"zig": "clang", "zig-clang": "clang", "arm-none-eabi-gcc": "gcc"}.get(p, p)
        if p not in ("gcc", "clang"):
            raise BuildError(f"unknown compiler {prefer!r}; use 'gcc' or 'clang'")
        prefer = p
    return _find_compiler_cached(prefer, os.environ.get("PATH", os.defpath))


# ------------------------------------------------------------------------ ELF image

@dataclass(frozen=True)
class Symbol:
    name: str
    addr: int            # Thumb bit cleared
    size: int
    kind: str            # "func" | "object" | "notype" | ...
    section: str | None  # output section holding it (".text", ".rodata", ...)
    bind: str = "global"

    @property
    def call_addr(self) -> int:
        """Address to branch to (Thumb bit set for functions)."""
        return self.addr | 1 if self.kind == "func" else self.addr


@dataclass(frozen=True)
class SectionSizes:
    text: int = 0
    rodata: int = 0
    data: int = 0
    bss: int = 0

    @property
    def flash(self) -> int:
        """Bytes in flash: code, constants and the initial values of .data."""
        return self.text + self.rodata + self.data

    @property
    def ram(self) -> int:
        return self.data + self.bss

    def __add__(self, o: "SectionSizes") -> "SectionSizes":
        return SectionSizes(self.text + o.text, self.rodata + o.rodata,
                            self.data + o.data, self.bss + o.bss)


@dataclass(frozen=True)
class Segment:
    addr: int       # run (virtual) address
    data: bytes     # initialised contents
    memsz: int      # total size in memory (>= len(data); the rest is zero)


@dataclass(frozen=True)
class MemoryLayout:
    flash_start: int
    flash_end: int
    ram_start: int
    ram_end: int
    stack_limit: int
    stack_top: int
    heap_start: int


@dataclass
class ElfImage:
    """A linked Cortex-M image ready for :class:`dwgen.emulate.Emulator`."""

    target: Target
    opt: str
    compiler: Compiler
    cflags: tuple[str, ...]            # compile flags shared by every source
    ldflags: tuple[str, ...]
    commands: list[list[str]]          # every command line that was run
    segments: list[Segment]
    sections: dict[str, tuple[int, int]]   # output section -> (addr, size)
    symbols: dict[str, Symbol]
    objects: dict[str, SectionSizes]   # source (as given) -> its object's section sizes
    layout: MemoryLayout
    elf_bytes: bytes = field(repr=False)
    path: Path | None = None           # the ELF file if it was built in a kept workdir
    warnings: str = ""                 # compiler/linker stderr

    # ---- symbols
    def symbol(self, name: str) -> Symbol:
        try:
            return self.symbols[name]
        except KeyError:
            raise KeyError(f"symbol {name!r} is not in the image "
                           f"(was it static, or not defined in any source?)") from None

    def addr(self, name: str) -> int:
        return self.symbol(name).addr

    def symbol_size(self, name: str) -> int:
        return self.symbol(name).size

    def sizes(self, prefix: str | None = None, *, names: Iterable[str] | None = None
              ) -> SectionSizes:
        """Sum symbol sizes (by the output section each symbol is in).

        ``prefix``: every symbol whose name starts with it; ``names``: exactly these.
        Unlike :meth:`object_sizes`, this misses anonymous constants (string literals,
        compiler-generated tables), but literal pools are inside their function's size.
        """
        if names is not None:
            chosen = [self.symbol(n) for n in names]
        elif prefix is not None:
            chosen = [s for s in self.symbols.values() if s.name.startswith(prefix)]
        else:
            raise TypeError("give prefix or names")
        acc = {"text": 0, "rodata": 0, "data": 0, "bss": 0}
        for s in chosen:
            k = _section_kind(s.section)
            if k:
                acc[k] += s.size
        return SectionSizes(**acc)

    def object_sizes(self, source: str | os.PathLike) -> SectionSizes:
        """Section sizes of the object compiled from ``source`` (as passed to build_elf;
        a bare file name also matches)."""
        key = str(source)
        if key in self.objects:
            return self.objects[key]
        hits = [v for k, v in self.objects.items() if Path(k).name == Path(key).name]
        if len(hits) == 1:
            return hits[0]
        raise KeyError(f"no object for {source!r}; have {list(self.objects)}")

    # ---- reporting
    def toolchain_info(self) -> dict:
        """What reports must state: compiler, version, path and every flag."""
        return {
            "target": self.target.name,
            "compiler": self.compiler.kind,
            "compiler_version": self.compiler.version,
            "compiler_path": self.compiler.path,
            "compiler_command": " ".join(self.compiler.command),
            "opt": self.opt,
            "cflags": " ".join(self.cflags),
            "ldflags": " ".join(self.ldflags),
        }

    def save(self, path: str | os.PathLike) -> Path:
        p = Path(path)
        p.write_bytes(self.elf_bytes)
        return p


def _section_kind(name: str | None) -> str | None:
    if not name:
        return None
    if name.startswith(".text"):
        return "text"
    if name.startswith(".rodata"):
        return "rodata"
    if name.startswith(".data"):
        return "data"
    if name.startswith(".bss"):
        return "bss"
    return None


def firmware_dir() -> Path:
    """firmware/emu, in a source checkout or inside the installed wheel."""
    here = Path(__file__).resolve().parent
    for cand in (here / "firmware" / "emu", here.parent / "firmware" / "emu"):
        if (cand / "emu.ld").exists():
            return cand
    raise BuildError("dwgen's firmware/emu directory (emu.ld, support.c) is missing "
                     "from this installation")


# ------------------------------------------------------------------------- building

def _object_info(path: Path) -> tuple[SectionSizes, list[str]]:
    """Section sizes of one relocatable object and the global symbols it defines."""
    from elftools.elf.constants import SH_FLAGS
    from elftools.elf.elffile import ELFFile

    acc = {"text": 0, "rodata": 0, "data": 0, "bss": 0}
    roots: list[str] = []
    with open(path, "rb") as f:
        elf = ELFFile(f)
        for sec in elf.iter_sections():
            fl = sec["sh_flags"]
            if not fl & SH_FLAGS.SHF_ALLOC:
                continue
            if sec.name.startswith((".ARM.exidx", ".ARM.extab")):
                continue
            if fl & SH_FLAGS.SHF_EXECINSTR:
                acc["text"] += sec["sh_size"]
            elif fl & SH_FLAGS.SHF_WRITE:
                acc["bss" if sec["sh_type"] == "SHT_NOBITS" else "data"] += sec["sh_size"]
            else:
                acc["rodata"] += sec["sh_size"]
        symtab = elf.get_section_by_name(".symtab")
        if symtab is not None:
            for s in symtab.iter_symbols():
                if (s["st_info"]["bind"] in ("STB_GLOBAL", "STB_WEAK")
                        and s["st_shndx"] != "SHN_UNDEF" and s.name):
                    roots.append(s.name)
    return SectionSizes(**acc), roots


def _read_image(elf_path: Path):
    from elftools.elf.elffile import ELFFile

    data = elf_path.read_bytes()
    elf = ELFFile(io.BytesIO(data))
    # segments are taken at their run address (p_vaddr): .data goes straight to RAM,
    # as a startup routine would have copied it from its flash image.
    segments = []
    for seg in elf.iter_segments():
        if seg["p_type"] != "PT_LOAD" or seg["p_memsz"] == 0:
            continue
        segments.append(Segment(seg["p_vaddr"], seg.data()[: seg["p_filesz"]], seg["p_memsz"]))
    sections: dict[str, tuple[int, int]] = {}
    bounds = []
    for sec in elf.iter_sections():
        if sec["sh_flags"] & 0x2 and sec["sh_size"]:  # SHF_ALLOC
            sections[sec.name] = (sec["sh_addr"], sec["sh_size"])
            bounds.append((sec["sh_addr"], sec["sh_addr"] + sec["sh_size"], sec.name))
    symbols: dict[str, Symbol] = {}
    symtab = elf.get_section_by_name(".symtab")
    kinds = {"STT_FUNC": "func", "STT_OBJECT": "object", "STT_NOTYPE": "notype",
             "STT_SECTION": "section", "STT_FILE": "file"}
    for s in symtab.iter_symbols() if symtab is not None else ():
        name = s.name
        if not name or name.startswith("$") or s["st_info"]["type"] in ("STT_SECTION",
                                                                          "STT_FILE"):
            continue
        kind = kinds.get(s["st_info"]["type"], s["st_info"]["type"])
        addr = s["st_value"]
        if kind == "func":
            addr &= ~1
        sect = None
        if s["st_shndx"] not in ("SHN_ABS", "SHN_UNDEF", "SHN_COMMON"):
            for lo, hi, nm in bounds:
                if lo <= addr < hi or (addr == lo and s["st_size"] == 0):
                    sect = nm
                    break
        bind = {"STB_GLOBAL": "global", "STB_WEAK": "weak"}.get(s["st_info"]["bind"], "local")
        old = symbols.get(name)
        if old is None or (old.bind == "local" and bind != "local"):
            symbols[name] = Symbol(name, addr, s["st_size"], kind, sect, bind)
    return data, segments, sections, symbols


def build_elf(sources: Sequence[str | os.PathLike], target: str | Target, opt: str = "O2", *,
              include_dirs: Iterable[str | os.PathLike] = (),
              defines: Iterable[str] | Mapping[str, object] = (),
              workdir: str | os.PathLike | None = None,
              compiler: Compiler | str | None = None,
              extra_cflags: Iterable[str] = (),
              extra_ldflags: Iterable[str] = (),
              freestanding: bool = False,
              stack_size: int | None = None,
              keep: Iterable[str] | None = None,
              newlib: bool = False) -> ElfImage:
    """Compile ``sources`` (C, or .s/.S assembly) for ``target`` and link an emulator image.

    ``defines``: "NAME" / "NAME=VALUE" strings or a mapping. ``workdir``: where objects,
    the ELF (``image.elf``) and, with gcc, the map file (``image.map``) go; a temporary directory
    (deleted afterwards; the ELF bytes stay in the returned image) when None.
    ``compiler``: a :class:`Compiler`, "gcc"/"clang", or None for :func:`find_compiler`.
    ``extra_ldflags``: added to the link command (e.g. ``-Wl,--wrap=SYMBOL``).
    ``stack_size``: bytes reserved for the stack (default 64 KiB, see emu.ld).
    ``keep``: the symbols to keep as link roots (with everything they reference); by
    default every global symbol the sources define is kept. Give it when linking a
    library whose unused functions reference code you do not compile.
    ``newlib``: link the C library's memcpy/memset/... (gcc's newlib, ``-lc``) instead
    of support.c's simple ones: the baseline measurements did that, and CMSIS-NN's
    ``_s8_opt`` kernels spend real time in them. gcc only.
    Raises :class:`BuildError` with the compiler's message on failure.
    """
    t = _cross_target(target).for_emulation()
    o = _normalize_opt(opt)
    cc = compiler if isinstance(compiler, Compiler) else find_compiler(compiler)
    if newlib and cc.kind != "gcc":
        raise BuildError("newlib=True needs arm-none-eabi-gcc (zig's clang has no C "
                         "library for Cortex-M)")
    srcs = [Path(s) for s in sources]
    if not srcs:
        raise BuildError("build_elf needs at least one source file")
    for s in srcs:
        if not s.is_file():
            raise BuildError(f"source file not found: {s}")
    fw = firmware_dir()

    cflags = cc.flags(t, o, freestanding=freestanding) + list(extra_cflags)
    if isinstance(defines, Mapping):
        dlist = [k if v is None else f"{k}={v}" for k, v in defines.items()]
    else:
        dlist = list(defines)
    inc = [f"-I{Path(d)}" for d in include_dirs]
    pre = inc + [f"-D{d}" for d in dlist] + ["-idirafter", str(fw / "include")]

    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="dwgen-build-")
        wd = Path(tmp.name)
    else:
        wd = Path(workdir)
        wd.mkdir(parents=True, exist_ok=True)
    try:
        commands: list[list[str]] = []
        warnings: list[str] = []

        def run(argv: list[str], what: str) -> None:
            commands.append(argv)
            try:
                r = _run(argv, cwd=wd)
            except OSError as e:
                raise BuildError(f"cannot run {argv[0]}: {e}") from e
            if r.returncode != 0:
                raise BuildError(f"{what} failed ({cc.version}, target {t.name}, -{o}):\n"
                                 f"$ {' '.join(argv)}\n{(r.stderr or r.stdout).strip()}")
            if r.stderr.strip():
                warnings.append(r.stderr.strip())

        objects: dict[str, SectionSizes] = {}
        objs: list[Path] = []
        roots: list[str] = []
        used_names: set[str] = set()
        for i, src in enumerate(srcs):
            stem = src.stem
            name = stem if stem not in used_names else f"{stem}_{i}"
            used_names.add(name)
            obj = wd / f"{name}.o"
            run([*cc.command, *cflags, *pre, "-c", str(src.resolve()), "-o", str(obj)],
                f"compiling {src}")
            sizes, syms = _object_info(obj)
            objects[str(sources[i])] = sizes
            roots += syms
            objs.append(obj)
        support_obj = wd / "__dwgen_support.o"
        run([*cc.command, *cc.flags(t, o, freestanding=True), *cc.support_flags(),
             *(["-DDWGEN_EMU_LIBC_MEMFUNCS"] if newlib else []),
             "-c", str(fw / "support.c"), "-o", str(support_obj)], "compiling support.c")

        elf_path = wd / "image.elf"
        ldflags = cc.link_flags(t) + list(extra_ldflags)
        if cc.kind == "gcc":  # zig cc rejects -Map
            ldflags.append(f"-Wl,-Map={wd / 'image.map'}")
        if stack_size is not None:
            ldflags.append(f"-Wl,--defsym=__stack_size={int(stack_size)}")
        if keep is not None:
            roots = list(keep)
        uroots = [f"-Wl,-u,{r}" for r in dict.fromkeys(roots)]
        libs = (["-lc"] if newlib else []) + cc.link_libs()
        run([*cc.command, *ldflags, *uroots, *map(str, objs), str(support_obj),
             *libs, "-o", str(elf_path)], "linking")

        data, segments, sections, symbols = _read_image(elf_path)
    finally:
        if tmp is not None:
            tmp.cleanup()

    def sym(n: str) -> int:
        if n not in symbols:
            raise BuildError(f"linker script symbol {n} missing from the image")
        return symbols[n].addr

    layout = MemoryLayout(0x00000000, sym("__flash_end"), 0x20000000, sym("__ram_end"),
                          sym("__stack_limit"), sym("__stack_top"), sym("__heap_start"))
    if RETURN_SYMBOL not in symbols:
        raise BuildError(f"{RETURN_SYMBOL} missing from the image (support.c not linked?)")
    return ElfImage(
        target=t, opt=o, compiler=cc, cflags=tuple(cflags + pre), ldflags=tuple(ldflags),
        commands=commands, segments=segments, sections=sections, symbols=symbols,
        objects=objects, layout=layout, elf_bytes=data,
        path=None if tmp is not None else elf_path, warnings="\n".join(warnings))
