"""C names: the one place that decides what a kernel may be called.

A kernel name `n` becomes a C function, a family of macros (`N_INPUT_H`, `N_OC`, ...), include
guards (`N_H`, `N_VECTORS_H`), static arrays and files (`n.c`, `n.h`, `n_vectors.h`), and all of
them end up side by side: `dwgen_kernels.h` includes every header of a model, `dwgen_test_main.c`
every vectors header of a directory, and `dwgen check` compiles all kernels as one translation
unit. So a name is only good when none of those symbols collides with C, C++, the C library,
dwgen's own files, CMSIS, or the symbols of another kernel beside it.

* :func:`check_c_name` is for names a user typed (`--name`): a bad one is refused with the reason.
* :func:`sanitize_c_name` is for names taken from a model or a layer file: it always returns an
  acceptable name, renamed the same way every time (`printf` -> `printf_dw`).
* :func:`kernel_symbols` lists every symbol and file a kernel name derives.
* :func:`unique_names` renames names whose symbols collide (`conv_input` next to `conv`, whose
  `CONV_INPUT_H` is conv_input's include guard, becomes `conv_input_2`), deterministically.
* :func:`check_distinct` / :func:`check_directory` refuse collisions within one emit and with
  the kernels already in an output directory.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from .errors import DwgenError

#: Longest kernel name accepted; derived symbols add at most 15 characters.
MAX_NAME_LENGTH = 48

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

# -- what a name must not be ----------------------------------------------------------------------
C_KEYWORDS = frozenset(
    # C89, C99, C11, C23, and `asm`, which gcc and clang reserve in their default modes.
    "auto break case char const continue default do double else enum extern float for goto if int "
    "long register return short signed sizeof static struct switch typedef union unsigned void "
    "volatile while inline restrict _Bool _Complex _Imaginary _Alignas _Alignof _Atomic _Generic "
    "_Noreturn _Static_assert _Thread_local alignas alignof bool constexpr false nullptr "
    "static_assert thread_local true typeof typeof_unqual _BitInt _Decimal32 _Decimal64 "
    "_Decimal128 asm".split()
)

#: The headers carry `extern "C"` for C++ callers, so C++ keywords break them too.
CXX_KEYWORDS = frozenset(
    "and and_eq bitand bitor catch char8_t char16_t char32_t class compl concept consteval "
    "constinit const_cast co_await co_return co_yield decltype delete dynamic_cast explicit export "
    "friend mutable namespace new noexcept not not_eq operator or or_eq private protected public "
    "reinterpret_cast requires static_cast template this throw try typeid typename using virtual "
    "wchar_t xor xor_eq".split()
) - C_KEYWORDS


def _library_names() -> dict[str, str]:
    """A curated list of what the C library (and dwgen's firmware) defines, with where."""
    names: dict[str, str] = {}

    def add(where: str, words: str) -> None:
        for w in words.split():
            names.setdefault(w, where)

    add("a type of <stddef.h>", "ptrdiff_t size_t wchar_t max_align_t nullptr_t")
    add("a macro of <stddef.h>", "NULL offsetof unreachable")
    for bits in (8, 16, 32, 64):
        for sign in ("", "u"):
            add("a type of <stdint.h>", f"{sign}int{bits}_t {sign}int_least{bits}_t {sign}int_fast{bits}_t")
            S = sign.upper()
            add("a macro of <stdint.h>", f"{S}INT{bits}_MAX {S}INT_LEAST{bits}_MAX {S}INT_FAST{bits}_MAX {S}INT{bits}_C")
            if not sign:
                add("a macro of <stdint.h>", f"INT{bits}_MIN INT_LEAST{bits}_MIN INT_FAST{bits}_MIN")
    add("a type of <stdint.h>", "intptr_t uintptr_t intmax_t uintmax_t")
    add("a macro of <stdint.h>", "INTPTR_MIN INTPTR_MAX UINTPTR_MAX INTMAX_MIN INTMAX_MAX UINTMAX_MAX "
        "INTMAX_C UINTMAX_C PTRDIFF_MIN PTRDIFF_MAX SIZE_MAX SIG_ATOMIC_MIN SIG_ATOMIC_MAX WCHAR_MIN "
        "WCHAR_MAX WINT_MIN WINT_MAX")
    add("a macro of <limits.h>", "CHAR_BIT SCHAR_MIN SCHAR_MAX UCHAR_MAX CHAR_MIN CHAR_MAX SHRT_MIN "
        "SHRT_MAX USHRT_MAX INT_MIN INT_MAX UINT_MAX LONG_MIN LONG_MAX ULONG_MAX LLONG_MIN LLONG_MAX "
        "ULLONG_MAX MB_LEN_MAX")
    add("declared by <stdio.h>", "printf fprintf sprintf snprintf vprintf vfprintf vsprintf vsnprintf "
        "scanf fscanf sscanf puts fputs putchar fputc putc getchar fgetc getc gets fgets fopen fclose "
        "fflush fread fwrite fseek ftell rewind perror remove rename tmpfile setvbuf")
    add("a macro or object of <stdio.h>", "FILE EOF BUFSIZ stdin stdout stderr")
    add("declared by <stdlib.h>", "abs labs llabs div ldiv lldiv malloc calloc realloc free "
        "aligned_alloc exit _Exit abort atexit quick_exit at_quick_exit atoi atol atoll atof strtol "
        "strtoll strtoul strtoull strtod strtof qsort bsearch rand srand getenv system")
    add("a macro of <stdlib.h>", "EXIT_SUCCESS EXIT_FAILURE RAND_MAX MB_CUR_MAX")
    add("declared by <string.h>", "memcpy memmove memset memcmp memchr strlen strcpy strncpy strcat "
        "strncat strcmp strncmp strcoll strxfrm strchr strrchr strstr strspn strcspn strpbrk strtok "
        "strerror strdup strndup")
    add("declared by <math.h>", "sin cos tan asin acos atan atan2 sinh cosh tanh exp exp2 expm1 log "
        "log2 log10 log1p pow sqrt cbrt hypot floor ceil round lround llround trunc rint lrint "
        "nearbyint fabs fmod remainder fmin fmax fma frexp ldexp modf")
    add("a macro of <math.h>", "NAN INFINITY HUGE_VAL isnan isinf isfinite signbit fpclassify")
    add("a macro of <assert.h>", "assert static_assert")
    add("a macro of <errno.h>", "errno EDOM ERANGE EILSEQ")
    add("declared by <setjmp.h>", "setjmp longjmp jmp_buf")
    add("declared by <signal.h>", "signal raise sig_atomic_t")
    add("a macro of <stdarg.h>", "va_list va_start va_end va_arg va_copy")
    add("declared by <time.h>", "time clock difftime mktime clock_t time_t")
    add("declared by <ctype.h>", "isalnum isalpha isblank iscntrl isdigit isgraph islower isprint "
        "ispunct isspace isupper isxdigit tolower toupper")
    add("the program's entry point", "main")
    add("defined by dwgen's firmware harness (firmware/)", "Reset_Handler NMI_Handler HardFault_Handler "
        "MemManage_Handler BusFault_Handler UsageFault_Handler SecureFault_Handler SVC_Handler "
        "DebugMon_Handler PendSV_Handler SysTick_Handler SystemInit")
    return names


LIBRARY_NAMES: Mapping[str, str] = _library_names()


def _firmware_names() -> dict[str, str]:
    names: dict[str, str] = {}
    for where, words in (
        ("the model array of TensorFlow Lite Micro's examples and of `xxd -i model.tflite`",
         "model g_model model_data g_model_data model_tflite model_tflite_len g_model_len model_len"),
        ("a usual name of a model's input or output buffer", "input output g_input g_output in out "
         "input_data output_data"),
        ("a usual global of TensorFlow Lite Micro applications", "interpreter g_interpreter tensor_arena "
         "g_tensor_arena kTensorArenaSize op_resolver resolver micro_op_resolver error_reporter"),
    ):
        for w in words.split():
            names.setdefault(w, where)
    return names


#: Globals firmware usually defines next to the kernels: a kernel `model` would clash with
#: the model array (`'const void* model' redeclared as different kind of entity`).
FIRMWARE_NAMES: Mapping[str, str] = _firmware_names()

#: C standard headers: a kernel `string` would write string.h, and `#include <string.h>` in
#: code built with `-I OUTDIR` would find it before the C library's.
C_HEADERS = frozenset(
    "assert complex ctype errno fenv float inttypes iso646 limits locale math setjmp signal "
    "stdalign stdarg stdatomic stdbit stdbool stdckdint stddef stdint stdio stdlib stdnoreturn "
    "string tgmath threads time uchar wchar wctype".split()
)

#: Files Windows cannot create, whatever the extension.
WINDOWS_DEVICES = frozenset(
    ["con", "prn", "aux", "nul"] + [f"com{i}" for i in range(1, 10)] + [f"lpt{i}" for i in range(1, 10)]
)

#: dwgen's own files in an output directory (besides the kernels).
DWGEN_FILES = ("dwgen_kernels.h", "dwgen_test_main.c", "dwgen_tflm.c", "dwgen_tflm.h", "manifest.json")

_CMSIS = "that prefix belongs to CMSIS (arm_*, cmsis_*), which dwgen's kernels are built with"
_PREFIXES = (
    ("dwgen_", "dwgen's own files and symbols use that prefix (dwgen_kernels.h, dwgen_test_main.c, DWGEN_*)"),
    ("arm_", _CMSIS),
    ("cmsis_", _CMSIS),
)


@dataclass(frozen=True)
class Problem:
    """Why a name is refused, and how `sanitize_c_name` renames it."""

    reason: str
    rename: str  # "suffix" (printf -> printf_dw), "prefix" (arm_x -> dw_arm_x) or "none"


def name_problem(name: str) -> Problem | None:
    """The first reason `name` cannot be a kernel name, or None when it can."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        return Problem("is not a C identifier: use letters, digits and '_', not starting with a digit", "none")
    if len(name) > MAX_NAME_LENGTH:
        return Problem(f"is too long: at most {MAX_NAME_LENGTH} characters", "none")
    if name in C_KEYWORDS:
        return Problem("is reserved in C: it is a C keyword", "suffix")
    if name in CXX_KEYWORDS:
        return Problem("is reserved in C++: it is a C++ keyword, and dwgen's headers are C++-compatible", "suffix")
    if name.startswith("_"):
        return Problem("is reserved in C: names starting with '_' belong to the compiler and the C library; "
                       "start it with a letter", "none")
    if "__" in name:
        return Problem("is reserved in C++: names containing '__' belong to the compiler; use single "
                       "underscores", "none")
    lower = name.lower()
    if lower == "dwgen":
        return Problem("is dwgen's own prefix (dwgen_kernels.h, dwgen_test_main.c, DWGEN_*)", "prefix")
    for prefix, why in _PREFIXES:
        if lower.startswith(prefix):
            return Problem(f"starts with '{prefix}': {why}", "prefix")
    if name in LIBRARY_NAMES:
        return Problem(f"is taken by the C library: {name} is {LIBRARY_NAMES[name]}", "suffix")
    if name in FIRMWARE_NAMES:
        return Problem(f"is a usual global of firmware: {name} is {FIRMWARE_NAMES[name]}", "suffix")
    if lower in C_HEADERS:
        return Problem(f"would write {name}.h, which hides the C library's <{lower}.h> from code built "
                       "with -I OUTDIR", "suffix")
    if lower in WINDOWS_DEVICES:
        return Problem(f"is a reserved device name on Windows ({name}.c cannot be created there)", "suffix")
    if lower == "manifest":
        return Problem("is taken by dwgen's manifest.json", "suffix")
    for sym, what in kernel_symbols(name).items():
        if sym in LIBRARY_NAMES:
            return Problem(f"derives {sym} ({what.role}), which is {LIBRARY_NAMES[sym]}", "suffix")
    return None


def check_c_name(name: str) -> str:
    """A user-given kernel name, refused (never rewritten) when it cannot be one."""
    p = name_problem(name)
    if p is None:
        return name
    if p.rename == "none":
        raise DwgenError(f"name {name!r} {p.reason}")
    raise DwgenError(f"name {name!r} {p.reason}; choose another kernel name, e.g. {avoid_reserved(name)}")


def sanitize_c_name(raw: str, fallback: str = "dw", limit: int = MAX_NAME_LENGTH - 8,
                    lowercase: bool = True) -> str:
    """An acceptable kernel name made from an arbitrary string (a Keras layer name, a tensor
    name): non-identifier characters become '_', a leading digit gets `fallback_`, and a name
    `check_c_name` would refuse is renamed deterministically: `printf` -> `printf_dw`,
    `arm_conv` -> `dw_arm_conv`. The result always passes `check_c_name`."""
    s = unicodedata.normalize("NFKD", str(raw)).encode("ascii", "ignore").decode("ascii")
    s = re.sub(r"[^A-Za-z0-9]+", "_", s)
    if lowercase:
        s = s.lower()
    s = s.strip("_")[:limit].strip("_")
    if not s:
        s = fallback
    if s[0].isdigit():
        s = f"{fallback}_{s}"[:limit].rstrip("_")
    return avoid_reserved(s, limit)


def avoid_reserved(name: str, limit: int = MAX_NAME_LENGTH) -> str:
    """`name` (already a bounded identifier) renamed until `name_problem` has nothing to say."""
    for _ in range(8):
        p = name_problem(name)
        if p is None:
            return name
        if p.rename == "prefix":
            name = f"dw_{name}"[:limit].rstrip("_")
        elif p.rename == "suffix":
            name = f"{name[: limit - 3].rstrip('_')}_dw"
        else:  # '_' rules (a keyword like _Generic renamed _Generic_dw) or not an identifier
            name = re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9_]", "_", str(name))).strip("_")[:limit].strip("_")
            if not name or name[0].isdigit():
                name = f"dw_{name}"[:limit].rstrip("_")
    raise AssertionError(f"cannot find a name for {name!r}")  # every rename step removes its problem


#: Longest --prefix: the layer's part of a name keeps at least 24 characters.
MAX_PREFIX_LENGTH = 24


def check_prefix(prefix: str) -> str:
    """A user-given name prefix (--prefix), refused with the reason when it cannot start a C name."""
    shown = prefix if len(prefix) <= 40 else prefix[:37] + "..."
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", prefix):
        raise DwgenError(f"--prefix {shown!r}: give the start of a C identifier: a letter, then letters, "
                         "digits and '_' (e.g. --prefix kws_)")
    if len(prefix) > MAX_PREFIX_LENGTH:
        raise DwgenError(f"--prefix {shown!r} is too long: at most {MAX_PREFIX_LENGTH} characters")
    if "__" in prefix:
        raise DwgenError(f"--prefix {shown!r}: names containing '__' are reserved in C++; use single underscores")
    for start, why in _PREFIXES:
        if prefix.lower().startswith(start):
            raise DwgenError(f"--prefix {shown!r} starts with {start!r}: {why}")
    return prefix


# -- what a name derives --------------------------------------------------------------------------
@dataclass(frozen=True)
class Symbol:
    role: str  # what the symbol is, for messages: "the include guard of conv_input.h"
    kind: str  # "file", "header" (seen by every file including the kernel), "source" (its .c)


_AXES = {"N": "batch", "C": "channels", "H": "height", "W": "width"}
_HEADER_MACROS = {
    "INPUT_SIZE": "input size", "OUTPUT_SIZE": "output size", "MACS": "MAC count",
    "SCRATCH_SIZE": "scratch size", "STACK_SIZE": "stack bound", "WEIGHTS_SIZE": "weights size", "BIAS_SIZE": "bias size",
    "TEST_RUN": "test-vector call",
}
# Everything the kernel templates (portable, DSP, CMSIS-NN entry, reference) define in a .c
# file. `dwgen check` compiles every kernel of a model as one translation unit, so these
# collide across kernels just like the header's symbols.
_SOURCE_MACROS = (
    "ACT_MAX ACT_MIN BAND_W BATCH BLOCK_ROWS CH_WORDS CLAMP_HI CLAMP_LO DEPTH_MULT DILATION_H "
    "DILATION_W EFF_H GROUP GROUPS GROUP_OC INPUT_OFFSET INPUT_ZP IN_BATCH IN_C IN_CH IN_COL IN_H IN_ROW IN_W "
    "KH KW OC OUTPUT_ZP OUT_BATCH OUT_CH OUT_COL OUT_H OUT_ROW OUT_W PAD_LEFT PAD_TOP RSHIFT0 SLOTS STRIDE_H "
    "STRIDE_W TAPS TILE_ASM WORDS_PER_OC".split()
)
_SOURCE_OBJECTS = tuple("bias filter kq load_row mult multiplier out output requantize rq rsh rshift scale shift ssat_rsh tile unpack w8 weights wpk wq".split())
# One asm tile body per distinct right shift: SSAT takes an immediate shift of 0..31.
_TILE_BODIES = tuple(f"tile_rsh{n}" for n in range(32))


def kernel_symbols(name: str) -> dict[str, Symbol]:
    """Every symbol and file the kernel `name` can produce (with any emit option), with its role."""
    n, N = name, name.upper()
    out: dict[str, Symbol] = {}

    def put(sym: str, role: str, kind: str) -> None:
        out.setdefault(sym, Symbol(role, kind))

    put(f"{n}.c", f"a file of kernel {n}", "file")
    put(f"{n}.h", f"a file of kernel {n}", "file")
    put(f"{n}_vectors.h", f"a file of kernel {n}", "file")
    put(n, f"the kernel function {n}()", "header")
    put(f"{n}_cmsis_nn", f"{n}'s CMSIS-NN entry point", "header")
    put(f"{n}_cmsis_nn_check", f"{n}'s CMSIS-NN parameter check", "header")
    put(f"{N}_H", f"the include guard of {n}.h", "header")
    put(f"{N}_VECTORS_H", f"the include guard of {n}_vectors.h", "header")
    for side in ("INPUT", "OUTPUT"):
        for axis, what in _AXES.items():
            put(f"{N}_{side}_{axis}", f"{n}'s {side.lower()}-{what} macro", "header")
    for suffix, what in _HEADER_MACROS.items():
        put(f"{N}_{suffix}", f"{n}'s {what} macro", "header")
    for suffix in ("input", "expected", "weights", "bias"):
        put(f"{n}_test_{suffix}", f"{n}'s test-vector array", "header")
    for suffix in _SOURCE_MACROS:
        put(f"{N}_{suffix}", f"a macro in {n}.c", "source")
    for suffix in _SOURCE_OBJECTS + _TILE_BODIES:
        put(f"{n}_{suffix}", f"a definition in {n}.c", "source")
    return out


def _key(sym: str, s: Symbol) -> str:
    # Files collide case-insensitively (macOS, Windows); C symbols are case-sensitive.
    return "file:" + sym.casefold() if s.kind == "file" else sym


class _Space:
    """The symbols taken so far, and by which kernel."""

    def __init__(self) -> None:
        self.taken: dict[str, tuple[str, str, Symbol]] = {}  # key -> (owner, symbol, Symbol)

    def clash(self, name: str) -> tuple[str, str, str, str] | None:
        """(other kernel, symbol, role for `name`, role for the other) of the first collision."""
        for sym, s in kernel_symbols(name).items():
            hit = self.taken.get(_key(sym, s))
            if hit is not None and hit[0] != name:
                return hit[0], sym, s.role, hit[2].role
        return None

    def add(self, name: str) -> None:
        for sym, s in kernel_symbols(name).items():
            self.taken.setdefault(_key(sym, s), (name, sym, s))


def _describe(sym: str, role_a: str, role_b: str) -> str:
    return f"{sym} would be both {role_a} and {role_b}"


def unique_names(bases: Sequence[str], taken: Iterable[str] = (), limit: int = MAX_NAME_LENGTH) -> list[str]:
    """`bases` (acceptable names) with every one whose symbols collide with an earlier one's,
    or with a name in `taken`, renamed `base_2`, `base_3`, ...: the first keeps its name,
    and the same input always gives the same names."""
    space = _Space()
    chosen: set[str] = set(taken)  # a name equal to a taken one is refused too (bench's x_ref)
    for t in chosen:
        space.add(t)
    out: list[str] = []
    # The next suffix to try per base: the space only grows, so a suffix refused once stays
    # refused, and resuming there gives the same names as counting from 2 each time without
    # the quadratic cost when a model's 1024 ops all share one base name.
    next_k: dict[str, int] = {}
    for base in bases:
        name, k = base, next_k.get(base, 2)
        if k > 2:
            suffix = f"_{k - 1}"
            name = base[: limit - len(suffix)].rstrip("_") + suffix
        while name in chosen or space.clash(name) is not None or name_problem(name) is not None:
            suffix = f"_{k}"
            name = base[: limit - len(suffix)].rstrip("_") + suffix
            k += 1
        next_k[base] = k
        space.add(name)
        chosen.add(name)
        out.append(name)
    return out


def check_distinct(names: Sequence[str]) -> None:
    """Refuse kernel names whose symbols collide with each other's."""
    seen = set()
    for n in names:
        if n in seen:
            raise DwgenError(f"kernel name {n!r} is given twice: every kernel needs its own name")
        seen.add(n)
    space = _Space()
    for n in names:
        hit = space.clash(n)
        if hit is not None:
            other, sym, mine, theirs = hit
            raise DwgenError(f"kernel names {other!r} and {n!r} collide: {_describe(sym, mine, theirs)}; "
                             "rename one of them")
        space.add(n)


_KERNEL_HEADER = re.compile(rb"/\*\n \* ([A-Za-z][A-Za-z0-9_]*)\.h - int8 depthwise convolution, generated by dwgen ")


def kernels_in_directory(directory: str | Path) -> list[str]:
    """Kernels dwgen wrote into `directory`, recognised by the first lines of their `<name>.h`."""
    from .outdir import read_head

    d = Path(directory)
    found = []
    try:
        entries = sorted(p for p in d.iterdir() if p.name.endswith(".h"))
    except OSError:
        return []
    for p in entries:
        head = read_head(p, 160)
        if head is None:
            continue
        m = _KERNEL_HEADER.match(head)
        if m and m.group(1).decode() == p.name[:-2]:
            found.append(p.name[:-2])
    return found


def check_directory(names: Sequence[str], directory: str | Path, hint: str) -> None:
    """Refuse kernels whose symbols collide with those of a kernel already in `directory`
    (one of the same name is replaced instead: that is --force's business)."""
    existing = [e for e in kernels_in_directory(directory) if e not in names]
    space = _Space()
    for e in existing:
        space.add(e)
    for n in names:
        hit = space.clash(n)
        if hit is not None:
            other, sym, mine, theirs = hit
            raise DwgenError(f"kernel {n!r} collides with kernel {other!r} already in {directory}: "
                             f"{_describe(sym, mine, theirs)}; {hint}")


__all__ = [
    "C_HEADERS", "C_KEYWORDS", "CXX_KEYWORDS", "FIRMWARE_NAMES", "LIBRARY_NAMES", "MAX_NAME_LENGTH", "Problem", "Symbol",
    "MAX_PREFIX_LENGTH", "avoid_reserved", "check_c_name", "check_prefix", "check_directory", "check_distinct", "kernel_symbols",
    "kernels_in_directory", "name_problem", "sanitize_c_name", "unique_names",
]
