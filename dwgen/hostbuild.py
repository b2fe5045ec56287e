"""Host builds: compile generated kernels with cffi and call them on numpy arrays.

Several kernels go into one extension module (one translation unit: every symbol a
kernel defines carries its name as a prefix), so a sweep of hundreds of layers pays
one compile. Modules are cached on disk under a hash of everything that goes into
them, so re-running a test does not recompile.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .codegen import GeneratedKernel
from .errors import BuildError, DwgenError

HOST_CFLAGS = ("-O2", "-std=c99")

# cffi declarations of the CMSIS-NN types used by `<name>_cmsis_nn` entry points (the
# generated header defines the same layout under DWGEN_CMSIS_NN_TYPES).
CMSIS_NN_CDEF = """
typedef enum { ARM_CMSIS_NN_SUCCESS = 0, ARM_CMSIS_NN_ARG_ERROR = -1,
               ARM_CMSIS_NN_NO_IMPL_ERROR = -2, ARM_CMSIS_NN_FAILURE = -3 } arm_cmsis_nn_status;
typedef struct { int32_t w; int32_t h; } cmsis_nn_tile;
typedef struct { int32_t min; int32_t max; } cmsis_nn_activation;
typedef struct { int32_t n; int32_t h; int32_t w; int32_t c; } cmsis_nn_dims;
typedef struct { void *buf; int32_t size; } cmsis_nn_context;
typedef struct { int32_t input_offset; int32_t output_offset; int32_t ch_mult; cmsis_nn_tile stride;
                 cmsis_nn_tile padding; cmsis_nn_tile dilation; cmsis_nn_activation activation; }
    cmsis_nn_dw_conv_params;
typedef struct { int32_t *multiplier; int32_t *shift; } cmsis_nn_per_channel_quant_params;
"""
_loaded: dict[str, Any] = {}


def cache_dir() -> Path:
    root = os.environ.get("DWGEN_CACHE_DIR")
    base = Path(root) if root else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dwgen"
    return base / "host"


def _digest(kernels: Sequence[GeneratedKernel], cflags: Sequence[str]) -> str:
    import cffi

    h = hashlib.sha256()
    h.update(f"{sys.version}|{cffi.__version__}|{' '.join(cflags)}".encode())
    for k in kernels:
        h.update(k.name.encode() + b"\0" + k.h_source.encode() + b"\0" + k.c_source.encode() + b"\0")
    return h.hexdigest()[:20]


@dataclass
class HostKernel:
    """One compiled kernel, callable on numpy arrays with its shapes and dtypes checked."""

    kernel: GeneratedKernel
    _ffi: Any
    _fn: Any

    def __call__(self, x: Any, weights: Any = None, bias: Any = None) -> np.ndarray:
        ql = self.kernel.plan.ql
        g = ql.geometry
        x = np.ascontiguousarray(ql.check_input(x))
        out = np.zeros(g.output_shape, dtype=np.int8)
        args = [self._ffi.from_buffer("int8_t[]", x), self._ffi.from_buffer("int8_t[]", out)]
        if self.kernel.options.weights == "extern":
            w = np.ascontiguousarray(ql.weights if weights is None else weights)
            if w.dtype != np.int8 or w.size != ql.weights.size:
                raise DwgenError(
                    f"weights must be int8 with {ql.weights.size} elements in TFLite layout "
                    f"[1, {g.kernel_h}, {g.kernel_w}, {g.out_c}]; got {w.dtype} with {w.size}"
                )
            args.append(self._ffi.from_buffer("int8_t[]", w))
            if ql.layer.use_bias:
                b = np.ascontiguousarray(ql.bias if bias is None else bias)
                if b.dtype != np.int32 or b.shape != (g.out_c,):
                    raise DwgenError(f"bias must be int32 with shape ({g.out_c},); got {b.dtype} {b.shape}")
                args.append(self._ffi.from_buffer("int32_t[]", b))
        elif weights is not None or bias is not None:
            raise DwgenError("this kernel has its weights baked in: it takes no weights or bias")
        self._fn(*args)
        return out


class HostModule:
    def __init__(self, kernels: Sequence[GeneratedKernel], module: Any):
        self._kernels = {k.name: HostKernel(k, module.ffi, getattr(module.lib, k.name)) for k in kernels}
        self.module = module

    def __getitem__(self, name: str) -> HostKernel:
        return self._kernels[name]

    def __iter__(self):
        return iter(self._kernels.values())

    def __len__(self) -> int:
        return len(self._kernels)


def build(
    kernels: GeneratedKernel | Sequence[GeneratedKernel],
    cflags: Sequence[str] = HOST_CFLAGS,
    quiet: bool = True,
) -> HostModule:
    """Compile the kernels into one cffi module (or load it from the cache)."""
    import cffi

    if isinstance(kernels, GeneratedKernel):
        kernels = [kernels]
    names = [k.name for k in kernels]
    if len(set(names)) != len(names):
        raise DwgenError("kernels built into one module need distinct names")
    digest = _digest(kernels, cflags)
    modname = f"_dwgen_host_{digest}"
    if modname in _loaded:
        return HostModule(kernels, _loaded[modname])
    root = cache_dir() / digest
    lib_path = next(root.glob(f"{modname}*.so"), None) if root.is_dir() else None
    if lib_path is None:
        lib_path = _compile(kernels, modname, root, cflags, quiet)
    spec = importlib.util.spec_from_file_location(modname, lib_path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _loaded[modname] = module
    return HostModule(kernels, module)


def _compile(kernels: Sequence[GeneratedKernel], modname: str, root: Path, cflags: Sequence[str], quiet: bool) -> Path:
    import cffi

    root.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{modname}.", dir=root.parent))
    try:
        for k in kernels:
            k.write(work)
        ffi = cffi.FFI()
        cmsis = any(k.options.cmsis_nn_api for k in kernels)
        ffi.cdef((CMSIS_NN_CDEF if cmsis else "") + "".join(k.cdef for k in kernels))
        unity = "#define DWGEN_CMSIS_NN_TYPES\n" if cmsis else ""
        unity += "".join(f'#include "{k.name}.c"\n' for k in kernels)
        ffi.set_source(modname, unity, include_dirs=[str(work)], extra_compile_args=list(cflags))
        try:
            if quiet:
                with open(os.devnull, "w") as devnull:
                    saved = os.dup(1)
                    os.dup2(devnull.fileno(), 1)
                    try:
                        built = ffi.compile(tmpdir=str(work), verbose=False)
                    finally:
                        os.dup2(saved, 1)
                        os.close(saved)
            else:
                built = ffi.compile(tmpdir=str(work), verbose=True)
        except Exception as exc:  # distutils raises its own types
            raise BuildError(f"the host C compiler failed on the generated kernels: {exc}") from exc
        final = root
        staged = work / "staged"
        staged.mkdir()
        shutil.copy2(built, staged / Path(built).name)
        for k in kernels:
            for fname in k.files:
                shutil.copy2(work / fname, staged / fname)
        try:
            os.replace(staged, final)
        except OSError:
            if not final.is_dir():  # another process may have won the race; that is fine
                raise
        return next(final.glob(f"{modname}*.so"))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def build_executable(
    kernel: GeneratedKernel, directory: Path, cc: str = "cc", cflags: Sequence[str] = HOST_CFLAGS
) -> Path:
    """A stand-alone program that reads the input from stdin and writes the output to stdout.

    Used for sanitizer runs (`-fsanitize=address,undefined`), which cannot be loaded into
    a Python process.
    """
    if kernel.options.weights != "baked":
        raise DwgenError("stand-alone executables take baked-weight kernels")
    directory = Path(directory)
    kernel.write(directory)
    g = kernel.plan.ql.geometry
    main_c = directory / f"{kernel.name}_main.c"
    main_c.write_text(
        "#include <stdio.h>\n"
        f'#include "{kernel.name}.h"\n'
        f"static int8_t input[{g.input_size}];\n"
        f"static int8_t output[{g.output_size}];\n"
        "int main(void)\n{\n"
        "    if (fread(input, 1, sizeof input, stdin) != sizeof input) return 2;\n"
        f"    {kernel.name}(input, output);\n"
        "    if (fwrite(output, 1, sizeof output, stdout) != sizeof output) return 3;\n"
        "    return 0;\n}\n"
    )
    exe = directory / f"{kernel.name}_main"
    cmd = [cc, *cflags, "-o", str(exe), str(main_c), str(directory / f"{kernel.name}.c")]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise BuildError(f"{cc} failed: {res.stderr.strip().splitlines()[:3]}")
    return exe


__all__ = ["HostKernel", "HostModule", "build", "build_executable", "cache_dir"]
