"""Kernel names (issue 9 item 7): user names refused with the reason, model and layer names
renamed deterministically, and no two kernels whose symbols collide."""

from __future__ import annotations

import copy
import json
import re
import shutil
import string
import subprocess
from pathlib import Path

import numpy as np
import pytest

from dwgen import layerfile, names
from dwgen.cli import main
from dwgen.codegen import EmitOptions, generate
from dwgen.errors import DwgenError
from dwgen.names import check_c_name, check_distinct, kernel_symbols, sanitize_c_name, unique_names
from dwgen.testvectors import make_vectors, vectors_header
from dwgen.tflite_model import c_identifier, is_c_identifier, read_model
from helpers import random_qlayer, tool_missing

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "kws_dw.json"

LIB = "choose another kernel name, e.g."


# -- user names: refused, with why and what to do -------------------------------------------------
@pytest.mark.parametrize("name, message", [
    # C keywords (C89 to C23) and C++ keywords: the headers are C++-compatible.
    ("static", f"name 'static' is reserved in C: it is a C keyword; {LIB} static_dw"),
    ("_Generic", f"name '_Generic' is reserved in C: it is a C keyword; {LIB} Generic_dw"),
    ("_Static_assert", f"name '_Static_assert' is reserved in C: it is a C keyword; {LIB} Static_assert_dw"),
    ("constexpr", f"name 'constexpr' is reserved in C: it is a C keyword; {LIB} constexpr_dw"),
    ("class", "name 'class' is reserved in C++: it is a C++ keyword, and dwgen's headers are C++-compatible; "
              f"{LIB} class_dw"),
    # Reserved identifiers.
    ("_STDINT_H", "name '_STDINT_H' is reserved in C: names starting with '_' belong to the compiler and the "
                  "C library; start it with a letter"),
    ("_x", "name '_x' is reserved in C: names starting with '_' belong to the compiler and the C library; "
           "start it with a letter"),
    ("a__b", "name 'a__b' is reserved in C++: names containing '__' belong to the compiler; use single underscores"),
    # The C library (a curated list).
    ("abs", f"name 'abs' is taken by the C library: abs is declared by <stdlib.h>; {LIB} abs_dw"),
    ("printf", f"name 'printf' is taken by the C library: printf is declared by <stdio.h>; {LIB} printf_dw"),
    ("memcpy", f"name 'memcpy' is taken by the C library: memcpy is declared by <string.h>; {LIB} memcpy_dw"),
    ("int8_t", f"name 'int8_t' is taken by the C library: int8_t is a type of <stdint.h>; {LIB} int8_t_dw"),
    ("size_t", f"name 'size_t' is taken by the C library: size_t is a type of <stddef.h>; {LIB} size_t_dw"),
    ("NULL", f"name 'NULL' is taken by the C library: NULL is a macro of <stddef.h>; {LIB} NULL_dw"),
    ("INT8_MAX", f"name 'INT8_MAX' is taken by the C library: INT8_MAX is a macro of <stdint.h>; {LIB} INT8_MAX_dw"),
    ("UINT16_C", f"name 'UINT16_C' is taken by the C library: UINT16_C is a macro of <stdint.h>; {LIB} UINT16_C_dw"),
    ("main", f"name 'main' is taken by the C library: main is the program's entry point; {LIB} main_dw"),
    ("SysTick_Handler", "name 'SysTick_Handler' is taken by the C library: SysTick_Handler is defined by dwgen's "
                        f"firmware harness (firmware/); {LIB} SysTick_Handler_dw"),
    ("stdint", "name 'stdint' would write stdint.h, which hides the C library's <stdint.h> from code built with "
               f"-I OUTDIR; {LIB} stdint_dw"),
    ("String", "name 'String' would write String.h, which hides the C library's <string.h> from code built with "
               f"-I OUTDIR; {LIB} String_dw"),
    # dwgen's own files and CMSIS.
    ("dwgen_kernels", "name 'dwgen_kernels' starts with 'dwgen_': dwgen's own files and symbols use that prefix "
                      f"(dwgen_kernels.h, dwgen_test_main.c, DWGEN_*); {LIB} dw_dwgen_kernels"),
    ("dwgen_test_main", "name 'dwgen_test_main' starts with 'dwgen_': dwgen's own files and symbols use that "
                        f"prefix (dwgen_kernels.h, dwgen_test_main.c, DWGEN_*); {LIB} dw_dwgen_test_main"),
    ("DWGEN_X", "name 'DWGEN_X' starts with 'dwgen_': dwgen's own files and symbols use that prefix "
                f"(dwgen_kernels.h, dwgen_test_main.c, DWGEN_*); {LIB} dw_DWGEN_X"),
    ("dwgen", "name 'dwgen' is dwgen's own prefix (dwgen_kernels.h, dwgen_test_main.c, DWGEN_*); "
              f"{LIB} dw_dwgen"),
    ("manifest", f"name 'manifest' is taken by dwgen's manifest.json; {LIB} manifest_dw"),
    ("arm_depthwise_conv_s8", "name 'arm_depthwise_conv_s8' starts with 'arm_': that prefix belongs to CMSIS "
                              f"(arm_*, cmsis_*), which dwgen's kernels are built with; {LIB} dw_arm_depthwise_conv_s8"),
    ("cmsis_nn_dims", "name 'cmsis_nn_dims' starts with 'cmsis_': that prefix belongs to CMSIS (arm_*, cmsis_*), "
                      f"which dwgen's kernels are built with; {LIB} dw_cmsis_nn_dims"),
    ("con", f"name 'con' is a reserved device name on Windows (con.c cannot be created there); {LIB} con_dw"),
    # Not identifiers at all.
    ("1st", "name '1st' is not a C identifier: use letters, digits and '_', not starting with a digit"),
    ("k" * 49, f"name '{'k' * 49}' is too long: at most 48 characters"),
])
def test_user_names_are_refused_with_the_reason(tmp_path, capsys, name, message):
    out = tmp_path / "o"
    assert main(["emit", str(EXAMPLE), "-o", str(out), "--name", name]) == 2
    assert capsys.readouterr().err == f"dwgen: error: {message}\n"
    assert not out.exists()
    with pytest.raises(DwgenError) as e:
        check_c_name(name)
    assert str(e.value) == message
    with pytest.raises(DwgenError):
        generate(layerfile.load(EXAMPLE), EmitOptions(name=name))


@pytest.mark.parametrize("name", ["kws_dw1", "Conv2", "x", "intermediate", "printf2", "armature", "dwgenx",
                                  "stdint2", "manifests", "k" * 48])
def test_ordinary_names_are_accepted(name):
    assert check_c_name(name) == name


def test_suggested_names_are_accepted():
    for word in [*names.C_KEYWORDS, *names.CXX_KEYWORDS, *names.LIBRARY_NAMES, *names.C_HEADERS,
                 "dwgen", "dwgen_kernels", "arm_x", "cmsis_x", "manifest", "con", "_Generic", "_Bool"]:
        hint = names.avoid_reserved(word)
        assert check_c_name(hint) == hint, (word, hint)


# -- derived names: renamed, deterministically ----------------------------------------------------
@pytest.mark.parametrize("raw, expected", [
    ("printf", "printf_dw"), ("abs", "abs_dw"), ("memcpy", "memcpy_dw"), ("int8_t", "int8_t_dw"),
    ("size_t", "size_t_dw"), ("_Generic", "generic"), ("NULL", "null"), ("INT8_MAX", "int8_max"),
    ("_STDINT_H", "stdint_h"), ("dwgen_kernels", "dw_dwgen_kernels"), ("dwgen_test_main", "dw_dwgen_test_main"),
    ("manifest", "manifest_dw"), ("arm_conv", "dw_arm_conv"), ("cmsis_x", "dw_cmsis_x"), ("while", "while_dw"),
    ("class", "class_dw"), ("stdint", "stdint_dw"), ("con", "con_dw"), ("main", "main_dw"), ("a__b", "a_b"),
    ("3x3", "dw_3x3"), ("", "dw"), ("__", "dw"), ("Ünïcödé Läyer!", "unicode_layer"), ("kws_dw1", "kws_dw1"),
])
def test_layer_names_are_renamed(raw, expected):
    assert sanitize_c_name(raw) == expected


@pytest.mark.parametrize("raw, expected", [
    ("printf", "printf_dw"), ("while", "while_dw"), ("dwgen_kernels", "dw_dwgen_kernels"),
    ("model/arm_block/depthwise", "dw_arm_block"), ("NULL", "null"), ("main", "main_dw"),
])
def test_tensor_names_are_renamed(raw, expected):
    assert c_identifier(raw) == expected
    assert is_c_identifier(expected)


def test_renaming_is_deterministic_and_always_acceptable():
    rng = np.random.default_rng(9)
    alphabet = string.ascii_letters + string.digits + "_-./:; é卷"
    words = sorted(names.C_KEYWORDS | names.CXX_KEYWORDS | set(names.LIBRARY_NAMES) | names.C_HEADERS)
    for i in range(3000):
        if i % 3 == 0:
            raw = str(rng.choice(words)) + ("" if rng.random() < 0.5 else str(rng.choice(["", "_", "__"])))
        else:
            raw = "".join(rng.choice(list(alphabet), int(rng.integers(0, 70))))
        for fn in (sanitize_c_name, c_identifier):
            got = fn(raw)
            assert got == fn(raw), raw
            if got:
                assert check_c_name(got) == got, (raw, got)


def test_layer_file_names_are_renamed_on_emit(tmp_path):
    doc = json.loads(EXAMPLE.read_text())
    shutil.copy(EXAMPLE.with_suffix(".npz"), tmp_path / "kws_dw.npz")
    for raw, expected in [("printf", "printf_dw"), ("dwgen_kernels", "dw_dwgen_kernels"),
                          ("dwgen_test_main", "dw_dwgen_test_main")]:
        doc["config"]["name"] = raw
        layer = tmp_path / "layer.json"
        layer.write_text(json.dumps(doc))
        out = tmp_path / raw
        assert main(["emit", str(layer), "-o", str(out), "--test-vectors"]) == 0
        assert sorted(p.name for p in out.iterdir()) == sorted(
            [f"{expected}.c", f"{expected}.h", f"{expected}_vectors.h", "dwgen_test_main.c"])
        assert f"void {expected}(const int8_t *DWGEN_RESTRICT input" in (out / f"{expected}.h").read_text()


# -- the symbols a name derives ------------------------------------------------------------------
def _variants():
    ql = layerfile.load(EXAMPLE)
    yield ql, EmitOptions(name="qz")
    yield ql, EmitOptions(name="qz", target="cortex-m4")
    yield ql, EmitOptions(name="qz", opt="size")
    yield ql, EmitOptions(name="qz", weights="extern", cmsis_nn_api=True)
    rng = np.random.default_rng(3)
    for _ in range(6):
        q = random_qlayer(rng)
        yield q, EmitOptions(name="qz", target=str(rng.choice(["generic", "cortex-m4"])))


def test_kernel_symbols_cover_everything_emitted():
    """Every identifier a kernel's files define or use that comes from its name is listed."""
    syms = kernel_symbols("qz")
    seen = set()
    for ql, opts in _variants():
        k = generate(ql, opts)
        texts = [k.c_source, k.h_source, vectors_header(make_vectors(k, ql))]
        for text in texts:
            body = re.sub(r"/\*.*?\*/", "", text, flags=re.S)  # comments and strings are free text
            body = re.sub(r'"(?:[^"\\\n]|\\.)*"', '""', body)
            seen |= set(re.findall(r"\b(?:qz|QZ)(?:_\w*)?\b", body))
        seen |= set(k.files) | {f"{k.name}_vectors.h"}
    missing = sorted(s for s in seen if s not in syms)
    assert not missing, missing
    assert {"qz", "QZ_H", "QZ_INPUT_H", "QZ_VECTORS_H", "QZ_TEST_RUN", "qz_cmsis_nn", "qz.c", "qz.h",
            "qz_vectors.h"} <= set(syms)


def test_kernel_symbols_roles():
    s = kernel_symbols("conv_input")
    assert s["CONV_INPUT_H"].role == "the include guard of conv_input.h" and s["CONV_INPUT_H"].kind == "header"
    assert kernel_symbols("conv")["CONV_INPUT_H"].role == "conv's input-height macro"
    assert kernel_symbols("conv")["conv.c"].kind == "file"


# -- collisions -----------------------------------------------------------------------------------
def test_unique_names():
    assert unique_names(["conv", "conv_input"]) == ["conv", "conv_input_2"]
    assert unique_names(["conv_input", "conv"]) == ["conv_input", "conv_2"]
    assert unique_names(["conv", "conv", "conv"]) == ["conv", "conv_2", "conv_3"]
    assert unique_names(["conv", "Conv"]) == ["conv", "Conv_2"]  # CONV_H, and conv.c on macOS
    assert unique_names(["x", "x_vectors"]) == ["x", "x_vectors_2"]  # x_vectors.h is x's
    assert unique_names(["a", "a_cmsis_nn", "a_test_input"]) == ["a", "a_cmsis_nn_2", "a_test_input_2"]
    assert unique_names(["conv_ref"], taken=["conv_ref"]) == ["conv_ref_2"]  # bench's baselines
    long = "k" * 48
    assert unique_names([long, long]) == [long, "k" * 46 + "_2"]
    bases = ["conv", "conv_input", "conv", "conv_in", "conv_input_2"]
    assert unique_names(bases) == unique_names(list(bases))


@pytest.mark.parametrize("pair, message", [
    (["conv", "conv_input"], "kernel names 'conv' and 'conv_input' collide: CONV_INPUT_H would be both the "
                             "include guard of conv_input.h and conv's input-height macro; rename one of them"),
    (["Conv", "conv"], "kernel names 'Conv' and 'conv' collide: conv.c would be both a file of kernel conv and a "
                       "file of kernel Conv; rename one of them"),
    (["x", "x"], "kernel name 'x' is given twice: every kernel needs its own name"),
])
def test_check_distinct(pair, message):
    with pytest.raises(DwgenError) as e:
        check_distinct(pair)
    assert str(e.value) == message


def test_collision_with_a_kernel_already_in_outdir(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["emit", str(EXAMPLE), "-o", str(out), "--name", "conv_input"]) == 0
    before = sorted(p.name for p in out.iterdir())
    capsys.readouterr()
    assert main(["emit", str(EXAMPLE), "-o", str(out), "--name", "conv", "--force"]) == 2
    assert capsys.readouterr().err == (
        f"dwgen: error: kernel 'conv' collides with kernel 'conv_input' already in {out}: CONV_INPUT_H would be "
        "both conv's input-height macro and the include guard of conv_input.h; choose another --name or another "
        "output directory\n")
    assert sorted(p.name for p in out.iterdir()) == before
    # The same name again is a replacement, not a collision.
    assert main(["emit", str(EXAMPLE), "-o", str(out), "--name", "conv_input", "--force"]) == 0
    assert main(["emit", str(EXAMPLE), "-o", str(out), "--name", "other"]) == 0


def _model_with_outputs(*tensor_names: str) -> bytes:
    """One depthwise op per name, each writing an output tensor of that name."""
    from test_tflite_model import DW, build, dw_spec

    spec = dw_spec()
    out_tensor = spec["tensors"][3]
    spec["tensors"][3] = dict(out_tensor, name=tensor_names[0])
    for name in tensor_names[1:]:
        spec["tensors"].append(dict(copy.deepcopy(out_tensor), name=name))
        spec["ops"].append(dict(copy.deepcopy(spec["ops"][0]), outputs=[len(spec["tensors"]) - 1]))
    spec["outputs"] = [3] + list(range(4, len(spec["tensors"])))
    assert all(op["code"] == DW for op in spec["ops"])
    return build(spec)


def test_model_names_that_collide_are_renamed(tmp_path):
    data = _model_with_outputs("conv", "conv_input", "printf", "dwgen_kernels", "conv_input")
    model = read_model(data)
    # the two layers named conv_input are told apart by op index, which also keeps them clear of
    # conv's CONV_INPUT_H
    assert [op.c_name for op in model.depthwise] == ["conv", "conv_input_op1", "printf_dw", "dw_dwgen_kernels",
                                                     "conv_input_op4"]
    assert [op.c_name for op in read_model(data).depthwise] == [op.c_name for op in model.depthwise]
    path = tmp_path / "m.tflite"
    path.write_bytes(data)
    out = tmp_path / "out"
    assert main(["emit", str(path), "-o", str(out), "--test-vectors"]) == 0
    umbrella = (out / "dwgen_kernels.h").read_text()
    assert umbrella.startswith("/*\n * dwgen_kernels.h - every depthwise kernel dwgen")
    assert all(f'#include "{n}.h"' in umbrella for n in ("conv", "conv_input_op1", "printf_dw", "dw_dwgen_kernels",
                                                       "conv_input_op4"))


def test_colliding_names_really_break_the_build(tmp_path):
    """Why collisions matter: code including the headers of `conv` and `conv_input` (as
    dwgen_kernels.h and dwgen_test_main.c do) does not compile; renamed, it does."""
    gcc = shutil.which("gcc")
    if gcc is None:
        tool_missing("gcc is not installed")
    ql = layerfile.load(EXAMPLE)

    def compiles(kernel_names) -> bool:
        d = tmp_path / "_".join(kernel_names)
        d.mkdir()
        for n in kernel_names:
            generate(ql, EmitOptions(name=n)).write(d)
        unity = "".join(f'#include "{n}.h"\n' for n in kernel_names)
        unity += "void use(const int8_t *x, int8_t *y);\nvoid use(const int8_t *x, int8_t *y)\n{\n"
        unity += "".join(f"    {n}(x, y);\n" for n in kernel_names) + "}\n"
        (d / "unity.c").write_text(unity)  # also every .c on its own, as a firmware build compiles them
        run = subprocess.run([gcc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", "-I", str(d),
                              str(d / "unity.c")], capture_output=True, text=True)
        return run.returncode == 0

    assert not compiles(["conv", "conv_input"])
    assert compiles(unique_names(["conv", "conv_input"]))
