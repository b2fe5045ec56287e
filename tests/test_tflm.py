"""The TFLite Micro drop-in (`dwgen emit MODEL.tflite --tflm`, dwgen_tflm.c).

A harness calls arm_depthwise_conv_wrapper_s8 for every depthwise layer of two models with the
arguments TFLite Micro's CMSIS-NN kernel passes (Prepare sizes the scratch with
arm_depthwise_conv_wrapper_s8_get_buffer_size, Eval makes the call), linked with
-Wl,--wrap=arm_depthwise_conv_wrapper_s8 against a stand-in for CMSIS-NN (its exact types
and signature, a plain reference loop behind it) that counts the calls reaching it. The
models: the kws_dscnn fixture (four layers of one shape and quantization, different weights)
and a hand-built one with two such twin layers and a layer of another shape, of which only
the first twin has a kernel. Every output is compared with dwgen's reference, and each
layer must have gone where it belongs: known layers to dwgen, the other twin (same
parameters, other weights) and the other shape to CMSIS-NN. Then a filter of a known layer
is changed in place: after dwgen_tflm_forget() (or, built with DWGEN_TFLM_RECHECK, without
it) that call must go to CMSIS-NN, not to the stale kernel.
Run on the host (gcc, ld --wrap), on the emulated Cortex-M4 and in a QEMU mps2-an386 image.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from dwgen.cli import main
from dwgen.reference import depthwise_conv
from dwgen.tflite_model import read_model
from dwgen.tflm import LINK_FLAG, TFLM_C, TFLM_H, fnv1a64, weights_bytes

from helpers import FAKE_FUNCTIONS, FAKE_SUPPORT, FAKE_TYPES, FAKE_WRAPPER, emulator_tools, tflite_writer, tool_missing

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
FIRMWARE = ROOT / "firmware"
KWS = FIXTURES / "kws_dscnn.tflite"


# -- the models ---------------------------------------------------------------------------------
def twin_model(path: Path, bias: bool = True) -> Path:
    """Two layers of one shape and quantization with different weights (twin_a, twin_b), and a
    layer of another shape (other)."""
    w = tflite_writer()
    rng = np.random.default_rng(11)
    oc = 8
    fscale = list(rng.uniform(0.001, 0.02, oc))
    tensors, ops = [], []

    def layer(name, h, wd, seed, input_index=None):
        r = np.random.default_rng(seed)
        if input_index is None:
            input_index = len(tensors)
            tensors.append(w._tensor(f"{name}_input", [1, h, wd, 4], "int8", scale=[0.05], zero_point=[-3]))
        base = len(tensors)
        tensors.append(w._tensor(f"model/{name}/depthwise_kernel", [1, 3, 3, oc], "int8",
                                 data=r.integers(-127, 128, size=(1, 3, 3, oc)), scale=fscale,
                                 zero_point=[0] * oc, qdim=3))
        tensors.append(w._tensor(f"model/{name}/bias", [oc], "int32", data=r.integers(-2000, 2000, size=oc),
                                 scale=[1e-4] * oc, zero_point=[0] * oc))
        inputs = [input_index, base, base + 1] if bias else [input_index, base]
        tensors.append(w._tensor(f"model/{name}/Relu6", [1, h, wd, oc], "int8", scale=[0.04], zero_point=[-128]))
        ops.append({"code": w.DW, "version": 3, "inputs": inputs, "outputs": [base + 2],
                    "options": {"padding": 0, "stride_w": 1, "stride_h": 1, "depth_multiplier": 2, "activation": 3}})
        return input_index, base + 2

    x, ya = layer("twin_a", 6, 6, 1)
    _, yb = layer("twin_b", 6, 6, 2, input_index=x)
    x2, yc = layer("other", 5, 7, 3)
    path.write_bytes(w.write_tflite(tensors, ops, [x, x2], [ya, yb, yc]))
    return path


@pytest.fixture(scope="module")
def twins(tmp_path_factory) -> Path:
    return twin_model(tmp_path_factory.mktemp("twins") / "twins.tflite")


def _ops(path: Path):
    return {op.c_name: op for op in read_model(path.read_bytes()).depthwise}


def test_twin_model_layers_differ_only_in_their_weights(twins):
    ops = _ops(twins)
    assert sorted(ops) == ["other", "twin_a", "twin_b"]
    a, b = ops["twin_a"].qlayer, ops["twin_b"].qlayer
    assert a.geometry == b.geometry and a.quant == b.quant and a.layer == b.layer
    assert not np.array_equal(a.weights, b.weights)
    assert ops["other"].qlayer.geometry.input_shape != a.geometry.input_shape


# -- the harness --------------------------------------------------------------------------------
def _c_array(ctype: str, name: str, values, const: bool = True) -> str:
    vals = [int(v) for v in np.asarray(values).reshape(-1)]
    rows = [", ".join(str(v) for v in vals[i:i + 16]) for i in range(0, len(vals), 16)]
    body = ",\n    ".join(rows)
    return f"static {'const ' if const else ''}{ctype} {name}[{len(vals)}] = {{\n    {body}\n}};\n"


@dataclasses.dataclass
class Layer:
    name: str
    ql: object
    routed: bool  # a dwgen kernel must take it
    bias: bool = True  # the call passes the bias array (else NULL, as TFLite Micro for a layer without one)


def harness_source(layers: list[Layer], changed: int = 4) -> str:
    """C that runs every layer twice through arm_depthwise_conv_wrapper_s8 as TFLite Micro does,
    then layer `changed` once more with one filter byte changed in place (after
    dwgen_tflm_forget() unless HARNESS_NO_FORGET). Results per phase and layer in
    harness_mismatch (bytes differing from dwgen's reference, -1: an error status) and
    harness_forwarded (calls that reached the stand-in's real function)."""
    n = len(layers)
    # In TFLite Micro's place: CMSIS-NN's header only; the dispatcher's functions declared here.
    out = ['#include <stdint.h>', '#include <stddef.h>', '#include "arm_nnfunctions.h"',
           "void dwgen_tflm_forget(void);", "uint32_t dwgen_tflm_dispatched(void);", "uint32_t dwgen_tflm_forwarded(void);",
           ""]
    rng = np.random.default_rng(5)
    table = []
    for i, lay in enumerate(layers):
        ql, g = lay.ql, lay.ql.geometry
        x = ql.random_input(rng)
        w2 = ql.weights.copy()
        w2.reshape(-1)[0] = w2.reshape(-1)[0] + 1 if w2.reshape(-1)[0] < 127 else w2.reshape(-1)[0] - 1
        changed_ql = dataclasses.replace(ql, weights=w2)
        out.append(f"/* layer {i}: {lay.name} */")
        out.append(_c_array("int8_t", f"l{i}_input", x))
        out.append(_c_array("int8_t", f"l{i}_filter_flash", ql.weights))
        out.append(_c_array("int8_t", f"l{i}_filter_changed", w2))
        out.append(f"static int8_t l{i}_filter[{ql.weights.size}];")
        if lay.bias:
            out.append(_c_array("int32_t", f"l{i}_bias", ql.bias))
        out.append(_c_array("int32_t", f"l{i}_mult", ql.quant.multipliers, const=False))
        out.append(_c_array("int32_t", f"l{i}_shift", ql.quant.shifts, const=False))
        out.append(_c_array("int8_t", f"l{i}_expected", depthwise_conv(ql, x)))
        out.append(_c_array("int8_t", f"l{i}_expected_changed", depthwise_conv(changed_ql, x)))
        q = ql.quant
        table.append(
            f"    {{{g.batch}, {g.in_h}, {g.in_w}, {g.in_c}, {g.kernel_h}, {g.kernel_w}, {g.out_h}, {g.out_w}, "
            f"{g.out_c}, {g.stride_h}, {g.stride_w}, {g.pad_top}, {g.pad_left}, {g.dilation_h}, {g.dilation_w}, "
            f"{-q.input_zero_point}, {q.output_zero_point}, {g.depth_multiplier}, {ql.act_min}, {ql.act_max}, "
            f"l{i}_input, l{i}_filter_flash, l{i}_filter_changed, l{i}_filter, "
            f"{f'l{i}_bias' if lay.bias else 'NULL'}, l{i}_mult, l{i}_shift, "
            f"l{i}_expected, l{i}_expected_changed}},")
    size = max(lay.ql.geometry.output_size for lay in layers)
    out.append(f"""
typedef struct {{
    int32_t n, h, w, c, kh, kw, oh, ow, oc, sh, sw, ph, pw, dh, dw, in_offset, out_offset, ch_mult, act_min, act_max;
    const int8_t *input, *filter_flash, *filter_changed;
    int8_t *filter; /* in RAM, as a model loaded at run time: the test changes it in place */
    const int32_t *bias;
    int32_t *mult, *shift;
    const int8_t *expected, *expected_changed;
}} harness_layer_t;

static const harness_layer_t harness_layers[{n}] = {{
{chr(10).join(table)}
}};

int32_t harness_layer;             /* the layer being run: the stand-in counts its calls per layer */
int32_t harness_real_calls[{n}];
int32_t harness_mismatch[3][{n}];
int32_t harness_forwarded[3][{n}];
int32_t harness_dispatched;
static int8_t harness_output[{size}];
static int8_t harness_scratch[4096];

static int32_t harness_call(int i, const int8_t *expected)
{{
    const harness_layer_t *L = &harness_layers[i];
    cmsis_nn_dw_conv_params p;
    cmsis_nn_per_channel_quant_params q;
    cmsis_nn_dims id, fd, bd, od;
    cmsis_nn_context ctx;
    int32_t size, bad = 0, k;
    p.input_offset = L->in_offset;
    p.output_offset = L->out_offset;
    p.ch_mult = L->ch_mult;
    p.stride.h = L->sh;
    p.stride.w = L->sw;
    p.padding.h = L->ph;
    p.padding.w = L->pw;
    p.dilation.h = L->dh;
    p.dilation.w = L->dw;
    p.activation.min = L->act_min;
    p.activation.max = L->act_max;
    q.multiplier = L->mult;
    q.shift = L->shift;
    id.n = L->n; id.h = L->h; id.w = L->w; id.c = L->c;
    fd.n = 1; fd.h = L->kh; fd.w = L->kw; fd.c = L->oc;
    bd.n = 1; bd.h = 1; bd.w = 1; bd.c = L->oc;
    od.n = L->n; od.h = L->oh; od.w = L->ow; od.c = L->oc;
    /* Prepare */
    size = arm_depthwise_conv_wrapper_s8_get_buffer_size(&p, &id, &fd, &od);
    if (size > (int32_t)sizeof harness_scratch) {{
        return -2;
    }}
    ctx.buf = size > 0 ? harness_scratch : NULL;
    ctx.size = size;
    for (k = 0; k < (int32_t)sizeof harness_output; k++) {{
        harness_output[k] = 0x55;
    }}
    /* Eval */
    harness_layer = i;
    if (arm_depthwise_conv_wrapper_s8(&ctx, &p, &q, &id, L->input, &fd, L->filter, &bd, L->bias, &od,
                                      harness_output) != ARM_CMSIS_NN_SUCCESS) {{
        return -1;
    }}
    for (k = 0; k < L->n * L->oh * L->ow * L->oc; k++) {{
        bad += harness_output[k] != expected[k];
    }}
    return bad;
}}

int harness_run(void)
{{
    int i, k, phase;
    for (i = 0; i < {n}; i++) {{
        const harness_layer_t *L = &harness_layers[i];
        for (k = 0; k < L->kh * L->kw * L->oc; k++) {{
            L->filter[k] = L->filter_flash[k];
        }}
    }}
    for (phase = 0; phase < 2; phase++) {{
        for (i = 0; i < {n}; i++) {{
            const int32_t before = harness_real_calls[i];
            harness_mismatch[phase][i] = harness_call(i, harness_layers[i].expected);
            harness_forwarded[phase][i] = harness_real_calls[i] - before;
        }}
    }}
    {{
        const harness_layer_t *L = &harness_layers[{changed}];
        const int32_t before = harness_real_calls[{changed}];
        for (k = 0; k < L->kh * L->kw * L->oc; k++) {{
            L->filter[k] = L->filter_changed[k];
        }}
#ifndef HARNESS_NO_FORGET
        dwgen_tflm_forget();
#endif
        harness_mismatch[2][{changed}] = harness_call({changed}, L->expected_changed);
        harness_forwarded[2][{changed}] = harness_real_calls[{changed}] - before;
    }}
    harness_dispatched = (int32_t)dwgen_tflm_dispatched();
    return (int)dwgen_tflm_forwarded();
}}
""")
    return "\n".join(out)


def main_source(n: int) -> str:
    """main(): runs the harness and prints its results, through harness_puts."""
    return ("""#include <stdint.h>
void harness_puts(const char *s);
int harness_run(void);
extern int32_t harness_mismatch[3][@N@];
extern int32_t harness_forwarded[3][@N@];
extern int32_t harness_dispatched;

static void harness_put_int(int32_t v)
{
    char buf[16];
    int i = 15;
    const int neg = v < 0;
    uint32_t u = neg ? 0u - (uint32_t)v : (uint32_t)v;
    buf[i] = 0;
    do {
        buf[--i] = (char)('0' + u % 10u);
        u /= 10u;
    } while (u != 0u);
    if (neg) {
        buf[--i] = '-';
    }
    harness_puts(&buf[i]);
}

int main(void)
{
    int phase, i;
    const int forwarded = harness_run();
    for (phase = 0; phase < 3; phase++) {
        for (i = 0; i < @N@; i++) {
            harness_puts("phase ");
            harness_put_int(phase);
            harness_puts(" layer ");
            harness_put_int(i);
            harness_puts(": mismatch ");
            harness_put_int(harness_mismatch[phase][i]);
            harness_puts(" forwarded ");
            harness_put_int(harness_forwarded[phase][i]);
            harness_puts("\\n");
        }
    }
    harness_puts("dispatched ");
    harness_put_int(harness_dispatched);
    harness_puts(" forwarded ");
    harness_put_int(forwarded);
    harness_puts("\\n");
    return 0;
}
""").replace("@N@", str(n))


STANDIN_REAL = """
/* The stand-in's arm_depthwise_conv_wrapper_s8: counts the calls that reach it, per layer. */
#include "arm_nnfunctions.h"
extern int32_t harness_layer;
extern int32_t harness_real_calls[];
arm_cmsis_nn_status standin_reference_s8(const cmsis_nn_context *ctx, const cmsis_nn_dw_conv_params *p,
    const cmsis_nn_per_channel_quant_params *q, const cmsis_nn_dims *id, const int8_t *in, const cmsis_nn_dims *fd,
    const int8_t *f, const cmsis_nn_dims *bd, const int32_t *b, const cmsis_nn_dims *od, int8_t *out);
arm_cmsis_nn_status arm_depthwise_conv_wrapper_s8(const cmsis_nn_context *ctx, const cmsis_nn_dw_conv_params *p,
    const cmsis_nn_per_channel_quant_params *q, const cmsis_nn_dims *id, const int8_t *in, const cmsis_nn_dims *fd,
    const int8_t *f, const cmsis_nn_dims *bd, const int32_t *b, const cmsis_nn_dims *od, int8_t *out)
{
    harness_real_calls[harness_layer]++;
    return standin_reference_s8(ctx, p, q, id, in, fd, f, bd, b, od, out);
}
"""


def standin(d: Path) -> list[Path]:
    """The CMSIS-NN stand-in in `d`: headers, and the sources of the real function."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "arm_nn_types.h").write_text(FAKE_TYPES)
    (d / "arm_nnfunctions.h").write_text(FAKE_FUNCTIONS)
    # The reference loop under another name: the counting function above is the one --wrap
    # leaves reachable as __real_arm_depthwise_conv_wrapper_s8.
    (d / "standin_reference.c").write_text(
        "#define arm_depthwise_conv_wrapper_s8 standin_reference_s8\n" + FAKE_WRAPPER)
    (d / "standin_support.c").write_text(FAKE_SUPPORT)
    (d / "standin_real.c").write_text(STANDIN_REAL)
    return [d / "standin_reference.c", d / "standin_support.c", d / "standin_real.c"]


def _emit(argv):
    assert main(argv) == 0, argv


def kernels_dir(out: Path, twins: Path, target: str, weights: str = "baked") -> Path:
    """kws_dscnn (every layer) and the twin model's twin_a only, into one directory, --tflm."""
    _emit(["emit", str(KWS), "-o", str(out), "--tflm", "--target", target, "--weights", weights])
    only = str(next(op.index for op in read_model(twins.read_bytes()).depthwise if op.c_name == "twin_a"))
    _emit(["emit", str(twins), "-o", str(out), "--tflm", "--target", target, "--weights", weights, "--only", only])
    return out


def harness_layers(twins: Path) -> list[Layer]:
    layers = [Layer(name, op.qlayer, True) for name, op in _ops(KWS).items()]
    t = _ops(twins)
    layers += [Layer("twin_a", t["twin_a"].qlayer, True), Layer("twin_b", t["twin_b"].qlayer, False),
               Layer("other", t["other"].qlayer, False)]
    return layers


#: the layer whose filter the harness changes: twin_a
CHANGED = 4


def expected_results(layers: list[Layer], changed_goes_to_dwgen: bool = False):
    n = len(layers)
    mismatch = [[0] * n for _ in range(3)]
    forwarded = [[0 if lay.routed else 1 for lay in layers] for _ in range(2)] + [[0] * n]
    forwarded[2][CHANGED] = 0 if changed_goes_to_dwgen else 1
    return mismatch, forwarded


def write_harness(d: Path, layers: list[Layer], with_main: bool, changed: int = CHANGED) -> list[Path]:
    """tflm_harness.c (the caller, in TFLite Micro's place) and, `with_main`, harness_main.c."""
    src = d / "tflm_harness.c"
    src.write_text(harness_source(layers, changed))
    if not with_main:
        return [src]
    main_c = d / "harness_main.c"
    main_c.write_text(main_source(len(layers)))
    return [src, main_c]


def kernel_sources(kdir: Path) -> list[Path]:
    return sorted(kdir.glob("*.c"))


# -- the dispatcher as generated ------------------------------------------------------------------
def test_fnv1a64_is_the_standard_one():
    assert fnv1a64(b"") == 0xCBF29CE484222325
    assert fnv1a64(b"a") == 0xAF63DC4C8601EC8C
    assert fnv1a64(b"foobar") == 0x85944171F73967E8


def test_emit_writes_the_dispatcher_and_lists_it(twins, tmp_path, capsys):
    out = kernels_dir(tmp_path / "k", twins, "cortex-m4")
    text = capsys.readouterr().out
    assert "wrote 3 files to" not in text
    assert f"  TFLite Micro: compile {out}/*.c into the firmware and link with {LINK_FLAG}\n" in text
    doc = json.loads((out / "manifest.json").read_text())
    assert doc["tflm_dispatcher"] == {
        "files": [TFLM_C, TFLM_H], "function": "__wrap_arm_depthwise_conv_wrapper_s8", "link_flag": LINK_FLAG,
        "kernels": ["dw1_1", "dw2_1", "dw3_1", "dw4_1", "twin_a"]}
    by_name = {e["name"]: e for e in doc["kernels"]}
    ql = _ops(twins)["twin_a"].qlayer
    assert by_name["twin_a"]["cmsis_nn_wrapper"] == "twin_a_cmsis_nn"
    assert by_name["twin_a"]["tflm"] == {"weights": "baked", "filter_bytes": 72, "bias_count": 8,
                                         "weights_fnv1a64": f"0x{fnv1a64(weights_bytes(ql)):016x}"}
    c = (out / TFLM_C).read_text()
    for name in by_name:
        assert f'#include "{name}.h"\n' in c and f"{{{name}_cmsis_nn_check, dwgen_tflm_run_{name}, 1, " in c
    assert "/* twins.tflite, op 0 */" in c
    assert "#define DWGEN_TFLM_KERNEL_COUNT 5\n" in (out / TFLM_H).read_text()


def test_dispatcher_is_deterministic_and_kept_by_other_emits(twins, tmp_path):
    a = kernels_dir(tmp_path / "a", twins, "generic")
    b = kernels_dir(tmp_path / "b", twins, "generic")
    assert (a / TFLM_C).read_bytes() == (b / TFLM_C).read_bytes()
    assert (a / TFLM_H).read_bytes() == (b / TFLM_H).read_bytes()
    # Another model without --tflm into the directory: the dispatcher is regenerated (no
    # --force needed) and still routes the --tflm kernels only.
    _emit(["emit", str(FIXTURES / "mobilenet_tiny.tflite"), "-o", str(a)])
    assert (a / TFLM_C).read_bytes() == (b / TFLM_C).read_bytes()
    # The same kernels emitted again without --tflm leave the dispatcher.
    _emit(["emit", str(KWS), "-o", str(a), "--force"])
    c = (a / TFLM_C).read_text()
    assert "dw1_1" not in c and "dwgen_tflm_run_twin_a" in c
    assert json.loads((a / "manifest.json").read_text())["tflm_dispatcher"]["kernels"] == ["twin_a"]


def test_a_dispatcher_dwgen_did_not_write_is_kept(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / TFLM_C).write_text("/* mine */\n")
    assert main(["emit", str(KWS), "-o", str(out), "--tflm"]) == 2
    assert (out / TFLM_C).read_text() == "/* mine */\n" and not (out / "dw1_1.c").exists()
    capsys.readouterr()


def test_tflm_option_errors(tmp_path, capsys):
    assert main(["emit", str(ROOT / "examples" / "kws_dw.json"), "-o", str(tmp_path / "a"), "--tflm"]) == 2
    assert "--tflm applies to .tflite models, not to LAYER.json" in capsys.readouterr().err
    assert main(["emit", str(KWS), "-o", str(tmp_path / "b"), "--tflm", "--as-written"]) == 2
    assert ("--tflm routes the depthwise ops TFLite Micro runs; --as-written kernels replace several ops of the "
            "model, which TFLite Micro still runs one by one: use one of them") in capsys.readouterr().err


def test_dispatcher_is_warning_free_c99_and_cxx(twins, tmp_path):
    """gcc and clang, -std=c99 -pedantic -Wall -Wextra -Werror: with dwgen's own CMSIS-NN types,
    with the stand-in's arm_nn_types.h, and with DWGEN_TFLM_RECHECK; dwgen_tflm.h from C++."""
    kdir = kernels_dir(tmp_path / "k", twins, "generic", "baked")
    _emit(["emit", str(FIXTURES / "mobilenet_tiny.tflite"), "-o", str(kdir), "--tflm", "--weights", "extern"])
    inc = tmp_path / "cmsis"
    standin(inc)
    for cc in ("gcc", "clang"):
        if shutil.which(cc) is None:
            tool_missing(f"no {cc}")
        for flags in (["-DDWGEN_CMSIS_NN_TYPES"], [f"-I{inc}"], [f"-I{inc}", "-DDWGEN_TFLM_RECHECK"]):
            r = subprocess.run([cc, "-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-O2", *flags,
                                f"-I{kdir}", "-c", str(kdir / TFLM_C), "-o", str(tmp_path / "d.o")],
                               capture_output=True, text=True)
            assert r.returncode == 0, (cc, flags, r.stderr)
    cxx = shutil.which("g++") or shutil.which("clang++")
    if cxx:
        r = subprocess.run([cxx, "-Wall", "-Wextra", "-Werror", f"-I{inc}", f"-I{kdir}", "-fsyntax-only", "-x", "c++",
                            "-"], input='#include "arm_nnfunctions.h"\n#include "dwgen_tflm.h"\n#include "dwgen_kernels.h"\n',
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr


# -- run ----------------------------------------------------------------------------------------
def _parse_qemu(stdout: str, n: int):
    mismatch = [[None] * n for _ in range(3)]
    forwarded = [[None] * n for _ in range(3)]
    for m in re.finditer(r"^phase (\d) layer (\d+): mismatch (-?\d+) forwarded (-?\d+)$", stdout, re.M):
        p, i = int(m.group(1)), int(m.group(2))
        mismatch[p][i], forwarded[p][i] = int(m.group(3)), int(m.group(4))
    return mismatch, forwarded


def _zero_unrun(mismatch, forwarded):
    """Phase 2 runs the changed layer only: the others stay 0."""
    for row in (mismatch[2], forwarded[2]):
        for i in range(len(row)):
            if i != CHANGED and row[i] is None:
                row[i] = 0
    return mismatch, forwarded


def test_dispatcher_on_the_host(twins, tmp_path):
    """The whole flow with host gcc and GNU ld's --wrap (portable kernels)."""
    kdir = kernels_dir(tmp_path / "k", twins, "generic")
    layers = harness_layers(twins)
    stdout = _host_run(tmp_path, kdir, layers, CHANGED)
    assert _zero_unrun(*_parse_qemu(stdout, len(layers))) == expected_results(layers), stdout
    # 2 passes x 5 known layers; 2 x 2 unknown + the changed filter forwarded.
    assert stdout.endswith("dispatched 10 forwarded 5\n"), stdout


def _emulated(kdir: Path, tmp_path: Path, layers, defines=()):
    Emulator, build_elf = emulator_tools()
    inc = tmp_path / "cmsis"
    srcs = write_harness(tmp_path, layers, with_main=False)
    elf = build_elf([*kernel_sources(kdir), *standin(inc), *srcs], "cortex-m4", include_dirs=[kdir, inc],
                    defines=list(defines), extra_ldflags=[LINK_FLAG], workdir=tmp_path / "build")
    assert "__wrap_arm_depthwise_conv_wrapper_s8" in elf.symbols
    emu = Emulator(elf)
    st = emu.call("harness_run", insn_limit=400_000_000, trace=False)
    n = len(layers)
    mismatch = np.frombuffer(emu.read_symbol("harness_mismatch"), "<i4").reshape(3, n).tolist()
    forwarded = np.frombuffer(emu.read_symbol("harness_forwarded"), "<i4").reshape(3, n).tolist()
    dispatched = int(np.frombuffer(emu.read_symbol("harness_dispatched"), "<i4")[0])
    return mismatch, forwarded, dispatched, st.ret


@pytest.mark.parametrize("recheck", [False, True], ids=["forget", "recheck"])
def test_dispatcher_on_the_emulated_m4(twins, tmp_path, recheck):
    """DSP kernels; with DWGEN_TFLM_RECHECK the changed filter is caught without forget()."""
    kdir = kernels_dir(tmp_path / "k", twins, "cortex-m4")
    layers = harness_layers(twins)
    defines = ["DWGEN_TFLM_RECHECK", "HARNESS_NO_FORGET"] if recheck else []
    mismatch, forwarded, dispatched, ret = _emulated(kdir, tmp_path, layers, defines)
    assert (mismatch, forwarded) == expected_results(layers)
    assert (dispatched, ret) == (10, 5)


def test_stale_pointer_without_forget_is_the_documented_limit(twins, tmp_path):
    """Without forget() or DWGEN_TFLM_RECHECK the dispatcher trusts a filter pointer it checked:
    the changed filter then goes to the kernel of the old one (what dwgen_tflm.h documents)."""
    kdir = kernels_dir(tmp_path / "k", twins, "cortex-m4")
    layers = harness_layers(twins)
    mismatch, forwarded, _, _ = _emulated(kdir, tmp_path, layers, ["HARNESS_NO_FORGET"])
    assert forwarded[2][CHANGED] == 0 and mismatch[2][CHANGED] > 0


def test_extern_weights_kernels_take_every_layer_of_their_shape(twins, tmp_path):
    """An extern-weights kernel reads the model's weights: twin_b and the changed filter go to
    twin_a's kernel and are right; the other shape still goes to CMSIS-NN."""
    kdir = kernels_dir(tmp_path / "k", twins, "cortex-m4", "extern")
    layers = harness_layers(twins)
    layers[5].routed = True  # twin_b
    mismatch, forwarded, dispatched, ret = _emulated(kdir, tmp_path, layers)
    assert (mismatch, forwarded) == expected_results(layers, changed_goes_to_dwgen=True)
    assert (dispatched, ret) == (13, 2)


QEMU_MAKEFILE = """\
# The README's TFLite Micro lines, with the stand-in's library in TFLite Micro's place.
CC := arm-none-eabi-gcc
AR := arm-none-eabi-ar
CPU := -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16
CFLAGS := $(CPU) -O2 -std=c99 -Wall -Wextra -Werror -ffunction-sections -fdata-sections
LDFLAGS := $(CPU) -nostartfiles -L$(FIRMWARE)/ld -T$(FIRMWARE)/ld/mps2-an386.ld -Wl,--gc-sections

DWGEN_DIR := $(KERNELS)
include $(FIRMWARE)/dwgen.mk
DWGEN_CPPFLAGS += -I$(CMSIS_NN_PATH)/Include
LDFLAGS += -Wl,--wrap=arm_depthwise_conv_wrapper_s8

APP := harness_main.o puts.o startup.o semihost.o
LIB := tflm_harness.o standin_reference.o standin_support.o standin_real.o

app.elf: $(APP) $(DWGEN_OBJS) libtensorflow-microlite.a
\t$(CC) $(LDFLAGS) $^ -o $@

libtensorflow-microlite.a: $(LIB)
\t$(AR) rcs $@ $^

%.o: %.c
\t$(CC) $(CFLAGS) -I$(FIRMWARE)/include -I$(CMSIS_NN_PATH)/Include -c $< -o $@
startup.o semihost.o: %.o: $(FIRMWARE)/src/%.c
\t$(CC) $(CFLAGS) -I$(FIRMWARE)/include -c $< -o $@
"""


def test_dispatcher_in_a_qemu_image(twins, tmp_path):
    """The same harness as a firmware image for QEMU's mps2-an386 (Cortex-M4), built with the
    README's Make lines; the caller and the stand-in are a static library, as TFLite Micro
    and CMSIS-NN are (libtensorflow-microlite.a)."""
    for tool in ("arm-none-eabi-gcc", "qemu-system-arm", "make"):
        if shutil.which(tool) is None:
            tool_missing(f"the QEMU image test needs {tool}")
    kdir = kernels_dir(tmp_path / "k", twins, "cortex-m4")
    layers = harness_layers(twins)
    build = tmp_path / "build"
    build.mkdir()
    write_harness(build, layers, with_main=True)
    (build / "puts.c").write_text('#include "dwgen_semihost.h"\nvoid harness_puts(const char *s);\n'
                                  "void harness_puts(const char *s) { dwgen_semihost_puts(s); }\n")
    cmsis = tmp_path / "CMSIS-NN"
    for f in standin(cmsis / "Include"):
        f.rename(build / f.name)
    (build / "Makefile").write_text(QEMU_MAKEFILE)
    r = subprocess.run(["make", "-C", str(build), f"FIRMWARE={FIRMWARE}", f"KERNELS={kdir}",
                        f"CMSIS_NN_PATH={cmsis}", "-j2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    image = build / "app.elf"
    run = subprocess.run(
        ["qemu-system-arm", "-machine", "mps2-an386", "-nographic", "-monitor", "none", "-serial", "none",
         "-chardev", "stdio,id=sh0", "-semihosting-config", "enable=on,target=native,chardev=sh0",
         "-kernel", str(image)], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stdout + run.stderr
    assert _zero_unrun(*_parse_qemu(run.stdout, len(layers))) == expected_results(layers), run.stdout
    assert "dispatched 10 forwarded 5\n" in run.stdout, run.stdout


def _host_run(tmp_path: Path, kdir: Path, layers, changed: int) -> str:
    cc = shutil.which("gcc")
    if cc is None:
        tool_missing("no host gcc")
    srcs = write_harness(tmp_path, layers, with_main=True, changed=changed)
    puts = tmp_path / "puts.c"
    puts.write_text("#include <stdio.h>\nvoid harness_puts(const char *s) { fputs(s, stdout); }\n")
    exe = tmp_path / "harness"
    inc = tmp_path / "cmsis"
    r = subprocess.run([cc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-O1", f"-I{inc}", f"-I{kdir}",
                        *map(str, standin(inc)), *map(str, kernel_sources(kdir)), *map(str, srcs), str(puts),
                        LINK_FLAG, "-o", str(exe)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_a_kernel_without_bias_takes_only_calls_without_one(tmp_path):
    """twin_a without a bias tensor: TFLite Micro passes bias_data NULL, which goes to the kernel;
    the same layer with a bias array (zeros, so the same output) goes to CMSIS-NN, as does
    twin_b. The changed filter of twin_a goes to CMSIS-NN, with a NULL bias."""
    model = twin_model(tmp_path / "nobias.tflite", bias=False)
    ops = _ops(model)
    assert not ops["twin_a"].qlayer.layer.use_bias and not ops["twin_a"].qlayer.bias.any()
    kdir = tmp_path / "k"
    _emit(["emit", str(model), "-o", str(kdir), "--tflm", "--only", str(ops["twin_a"].index)])
    a = ops["twin_a"].qlayer
    layers = [Layer("twin_a", a, True, bias=False), Layer("twin_a with a zero bias", a, False),
              Layer("twin_b", ops["twin_b"].qlayer, False, bias=False)]
    out = _host_run(tmp_path, kdir, layers, changed=0)
    n = len(layers)
    mismatch, forwarded = _parse_qemu(out, n)
    assert mismatch == [[0] * n] * 3, out
    assert forwarded == [[0, 1, 1], [0, 1, 1], [1, 0, 0]], out
    assert out.endswith("dispatched 2 forwarded 5\n"), out


def test_a_manifest_with_a_forged_tflm_record_is_not_merged(twins, tmp_path, capsys):
    """The tflm record's values are printed into C: a manifest whose record is not one dwgen
    writes is foreign (replaced only with --force, its entries forgotten)."""
    out = tmp_path / "k"
    _emit(["emit", str(KWS), "-o", str(out), "--tflm"])
    doc = json.loads((out / "manifest.json").read_text())
    doc["kernels"][0]["tflm"]["weights_fnv1a64"] = "0); system(\"x\"); (0"
    (out / "manifest.json").write_text(json.dumps(doc))
    assert main(["emit", str(twins), "-o", str(out), "--tflm", "--only", "0"]) == 2
    assert "manifest.json" in capsys.readouterr().err
    _emit(["emit", str(twins), "-o", str(out), "--tflm", "--only", "0", "--force"])
    c = (out / TFLM_C).read_text()
    assert "system" not in c and "dwgen_tflm_run_twin_a" in c and "dwgen_tflm_run_dw1_1" not in c


def test_emit_json_names_the_dispatcher(tmp_path, capsys):
    assert main(["emit", str(KWS), "-o", str(tmp_path / "k"), "--tflm", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["tflm_dispatcher"] == {"files": [TFLM_C, TFLM_H], "function": "__wrap_arm_depthwise_conv_wrapper_s8",
                                      "link_flag": LINK_FLAG, "kernels": ["dw1_1", "dw2_1", "dw3_1", "dw4_1"]}
    assert {str(tmp_path / "k" / f) for f in (TFLM_C, TFLM_H)} <= set(doc["files"])
    assert [e["cmsis_nn_wrapper"] for e in doc["kernels"]] == [f"dw{i}_1_cmsis_nn" for i in range(1, 5)]
    # Without --tflm: no dispatcher, no wrapper unless --cmsis-nn-api.
    assert main(["emit", str(KWS), "-o", str(tmp_path / "plain"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert "tflm_dispatcher" not in doc and {e["cmsis_nn_wrapper"] for e in doc["kernels"]} == {None}
    assert not (tmp_path / "plain" / TFLM_C).exists()


def test_same_shape_twins_each_get_their_own_kernel(twins, tmp_path):
    """Both twins emitted: their parameters are identical, so only the weights tell the kernels
    apart; each call must run its own (a mix-up changes the output). twin_b's changed filter
    then matches neither and goes to CMSIS-NN."""
    kdir = tmp_path / "k"
    _emit(["emit", str(twins), "-o", str(kdir), "--tflm"])
    t = _ops(twins)
    layers = [Layer(n, t[n].qlayer, True) for n in ("twin_a", "twin_b", "other")]
    out = _host_run(tmp_path, kdir, layers, changed=1)
    mismatch, forwarded = _parse_qemu(out, 3)
    assert mismatch == [[0] * 3] * 3, out
    assert forwarded == [[0, 0, 0], [0, 0, 0], [0, 1, 0]], out
    assert out.endswith("dispatched 6 forwarded 1\n"), out


def test_firmware_makefile_builds_a_directory_with_a_dispatcher(tmp_path):
    """dwgen's own test image compiles every .c of the directory, dwgen_tflm.c too: without
    --wrap (nothing calls the dispatcher) --gc-sections drops it and the image passes."""
    for tool in ("arm-none-eabi-gcc", "qemu-system-arm", "make"):
        if shutil.which(tool) is None:
            tool_missing(f"the firmware test needs {tool}")
    kdir = tmp_path / "k"
    _emit(["emit", str(KWS), "-o", str(kdir), "--tflm", "--target", "cortex-m4", "--test-vectors"])
    build = tmp_path / "build"
    r = subprocess.run(["make", "-f", str(FIRMWARE / "Makefile"), f"DIR={kdir}", "BOARD=mps2-an386",
                        f"BUILD={build}", "EXTRA_CFLAGS=-Werror", "-j2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (build / "dwgen" / "dwgen_tflm.o").is_file()
    run = subprocess.run(
        ["qemu-system-arm", "-machine", "mps2-an386", "-nographic", "-monitor", "none", "-serial", "none",
         "-chardev", "stdio,id=sh0", "-semihosting-config", "enable=on,target=native,chardev=sh0",
         "-kernel", str(build / "dwgen_test.elf")], capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL)
    assert run.returncode == 0 and "dwgen: all 4 kernels passed" in run.stdout, run.stdout + run.stderr


def test_a_hostile_model_file_name_stays_inside_its_comment(twins, tmp_path):
    evil = tmp_path / "m *\\ int x; *\n\u00e9.tflite"  # a file name holds no '/', but '*', '\\', a newline
    shutil.copy(twins, evil)
    kdir = tmp_path / "k"
    _emit(["emit", str(evil), "-o", str(kdir), "--tflm", "--only", "0"])
    c = (kdir / TFLM_C).read_text()
    comment = next(line for line in c.splitlines() if ", op 0 */" in line)
    assert comment == "/* m \\x2a\\x5c int x; \\x2a\\x0a\\xe9.tflite, op 0 */", comment
    assert c.isascii() and "int x;" not in c.replace(comment, "")
