"""`dwgen bench`: table, --json, --plot, --cmsis-nn, and bad arguments."""

from __future__ import annotations

import json
import re
import os
from pathlib import Path

import pytest

from dwgen.cli import main

from helpers import FAKE_FUNCTIONS, FAKE_SUPPORT, FAKE_TYPES, FAKE_WRAPPER

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "kws_dw.json"
FIXTURES = ROOT / "tests" / "fixtures"

@pytest.fixture
def fake_cmsis(tmp_path):
    root = tmp_path / "CMSIS-NN"
    (root / "Include").mkdir(parents=True)
    (root / "Source" / "ConvolutionFunctions").mkdir(parents=True)
    (root / "Source" / "NNSupportFunctions").mkdir(parents=True)
    (root / "Include" / "arm_nn_types.h").write_text(FAKE_TYPES)
    (root / "Include" / "arm_nnfunctions.h").write_text(FAKE_FUNCTIONS)
    (root / "Source" / "ConvolutionFunctions" / "arm_depthwise_conv_wrapper_s8.c").write_text(FAKE_WRAPPER)
    (root / "Source" / "ConvolutionFunctions" / "arm_depthwise_conv_get_buffer_sizes_s8.c").write_text(
        '#include "arm_nnfunctions.h"\n')
    (root / "Source" / "NNSupportFunctions" / "fake_requantize.c").write_text(FAKE_SUPPORT)
    (root / "Source" / "NNSupportFunctions" / "unrelated_f32.c").write_text("#error never compiled\n")
    return root


def _bench(capsys, argv):
    code = main(["bench", *argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_bench_layer_json_two_targets(capsys):
    code, out, _ = _bench(capsys, [str(EXAMPLE), "--target", "cortex-m4,cortex-m3", "--json"])
    assert code == 0
    doc = json.loads(out)
    assert doc["bit_exact"] is True
    assert [r["target"] for r in doc["results"]] == ["cortex-m4", "cortex-m3"]
    for r in doc["results"]:
        assert r["layer"] == "kws_dw1" and r["macs"] == 72000
        assert r["dwgen"]["bit_exact"] and r["baseline_reference_loop"]["bit_exact"]
        assert r["dwgen"]["scratch_bytes"] == 0 and 0 < r["dwgen"]["stack_bytes"] <= 1536
        assert r["dwgen"]["text_bytes"] > 0 and r["dwgen"]["rodata_bytes"] >= 64 * 9
        assert r["speedup_vs_baseline"] > 2
    assert doc["results"][0]["data_flow"] == "dsp" and doc["results"][1]["data_flow"] == "portable"
    assert "/tile:" in doc["results"][0]["data_flow_detail"] and doc["results"][1]["data_flow_detail"] == "portable"
    for t, r in zip(("cortex-m4", "cortex-m3"), doc["results"]):
        tot = doc["totals"][t]
        assert (tot["layers"], tot["macs"], tot["dwgen_cycles_m4"]) == (1, 72000, r["dwgen"]["cycles_m4"])
        assert tot["rodata_bytes"] == r["dwgen"]["rodata_bytes"] and tot["text_bytes"] == r["dwgen"]["text_bytes"]
        assert tot["weight_bytes"] == 9 * 64 + 4 * 64  # the layer's int8 weights and int32 bias
        assert "speedup_vs_cmsis_nn" not in tot  # not measured
    assert "arm-none-eabi-gcc" in doc["toolchain"]["cortex-m4"]["compiler_path"] or doc["toolchain"]["cortex-m4"]["compiler"]
    assert "-mcpu=cortex-m4" in doc["toolchain"]["cortex-m4"]["cflags"]


def test_bench_table_and_plot(capsys, tmp_path):
    png = tmp_path / "bench.png"
    # --prefix: the layers are named as `dwgen emit --prefix mn_` names their kernels
    code, out, _ = _bench(capsys, [str(FIXTURES / "mobilenet_tiny.tflite"), "--plot", str(png), "--prefix", "mn_"])
    assert code == 0
    assert out.startswith("target cortex-m4: ")
    assert "geometric-mean speed-up:" in out and "mn_conv_dw_5_1" in out
    total = re.search(r"^total over (\d+) layer\(s\): ([\d,]+) MACs, ([\d,]+) M4 cycles \(([\d.]+) c/MAC, ([\d.]+) ms "
                      r"at 100 MHz\)$", out, re.M)
    memory = re.search(r"^memory: peak stack ([\d,]+) B, scratch 0 B$", out, re.M)
    flash = re.search(r"^flash: \.text ([\d,]+) B \+ \.rodata ([\d,]+) B; the layers' weights and bias "
                      r"\(int8, int32\) are ([\d,]+) B, \.rodata is ([\d.]+)x that$", out, re.M)
    assert total and flash and memory, out
    rows = [line.split() for line in out.splitlines() if re.match(r"^mn_conv_dw\S* ", line)]
    assert int(total[1]) == len(rows) > 1
    assert int(total[2].replace(",", "")) == sum(int(r[1].replace(",", "")) for r in rows)
    assert float(total[5]) == round(int(total[3].replace(",", "")) / 1e5, 2)
    assert int(memory[1].replace(",", "")) == max(int(r[-4]) for r in rows)  # the stack column
    assert int(flash[2].replace(",", "")) == sum(int(r[-2]) for r in rows)  # the .rodata column
    assert int(flash[1].replace(",", "")) == sum(int(r[-3]) for r in rows)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_with_a_cmsis_nn_checkout(capsys, fake_cmsis):
    code, out, _ = _bench(capsys, [str(EXAMPLE), "--cmsis-nn", str(fake_cmsis), "--json"])
    assert code == 0, out
    (r,) = json.loads(out)["results"]
    assert r["cmsis_nn"]["bit_exact"] is True
    assert r["cmsis_nn"]["scratch_bytes"] == 64 * 4  # what get_buffer_size asked for
    assert r["speedup_vs_cmsis_nn"] > 1
    tot = json.loads(out)["totals"]["cortex-m4"]
    assert tot["cmsis_nn_cycles_m4"] == r["cmsis_nn"]["cycles_m4"]
    assert tot["cmsis_nn_peak_scratch_bytes"] == 64 * 4 and tot["cmsis_nn_peak_stack_bytes"] == r["cmsis_nn"]["stack_bytes"]
    assert tot["cmsis_nn_ms_m4"] == round(tot["cmsis_nn_cycles_m4"] / 1e5, 3)
    assert tot["speedup_vs_cmsis_nn"] == tot["slowest_layer_speedup_vs_cmsis_nn"] == r["speedup_vs_cmsis_nn"]


@pytest.mark.skipif(not os.environ.get("DWGEN_CMSIS_NN_DIR"), reason="set DWGEN_CMSIS_NN_DIR to a CMSIS-NN checkout")
def test_bench_against_real_cmsis_nn(capsys):
    code, out, _ = _bench(capsys, ["--suite", "mlperf-tiny", "--cmsis-nn", os.environ["DWGEN_CMSIS_NN_DIR"], "--json"])
    doc = json.loads(out)
    assert code == 0 and doc["bit_exact"]
    assert all(r["speedup_vs_cmsis_nn"] > 1 for r in doc["results"])


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "give either LAYER.json/MODEL.tflite or --suite NAME"),
        (["--suite", "nope"], "--suite 'nope' is not known: use one of mlperf-tiny"),
        ([str(EXAMPLE), "--suite", "mlperf-tiny"], "give either LAYER.json/MODEL.tflite or --suite NAME"),
        ([str(EXAMPLE), "--target", "cortex-m9"], "--target 'cortex-m9': choose from cortex-m0"),
        ([str(EXAMPLE), "--target", "generic"], "--target 'generic': choose from"),
        ([str(EXAMPLE), "--cmsis-nn", "/nonexistent"], "not a CMSIS-NN checkout"),
        ([str(EXAMPLE), "--plot", "/nonexistent/dir/x.png"], "--plot /nonexistent/dir/x.png: the directory does not exist"),
        (["/nonexistent.json"], "no such file"),
        ([str(EXAMPLE), "--clock-mhz", "0"], "--clock-mhz '0': give the core clock in MHz, a number such as 80 or 168"),
        ([str(EXAMPLE), "--clock-mhz", "fast"], "--clock-mhz 'fast': give the core clock in MHz"),
        (["--suite", "mlperf-tiny", "--prefix", "p_"],
         "--prefix applies to LAYER.json and MODEL.tflite; the --suite layers have fixed names"),
        ([str(FIXTURES / "mobilenet_tiny.tflite"), "--prefix", "arm_"], "--prefix 'arm_' starts with 'arm_'"),
        ([str(EXAMPLE), "--prefix", "-"], "--prefix '-': give the start of a C identifier"),
    ],
)
def test_bench_bad_arguments(capsys, argv, message):
    code, _, err = _bench(capsys, argv)
    assert code == 2 and message in err and err.count("\n") == 1, err


def test_bench_progress_goes_to_stderr_also_with_json(capsys):
    code, out, err = _bench(capsys, [str(FIXTURES / "kws_dscnn.tflite"), "--json"])
    assert code == 0
    json.loads(out)  # stdout is the report alone
    assert err.splitlines() == [f"measuring {i}/4: {name} on cortex-m4"
                                for i, name in enumerate(json.loads(out) and [r["layer"] for r in json.loads(out)["results"]], 1)]


def test_bench_plot_without_matplotlib_fails_before_measuring(capsys, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    code, out, err = _bench(capsys, [str(EXAMPLE), "--plot", str(tmp_path / "x.png")])
    assert (code, out) == (2, "")
    assert err == "dwgen: error: --plot needs matplotlib: pip install 'dwgen-mcu[plot]' (or pip install matplotlib)\n"


def test_bench_reports_a_failing_target_and_keeps_the_others(capsys, monkeypatch):
    import dwgen.targetrun
    from dwgen.errors import DwgenError

    real = dwgen.targetrun.TargetBuild

    def build(kernels, target, *args, **kw):
        if target == "cortex-m33":
            raise DwgenError("the compiler fell over")
        return real(kernels, target, *args, **kw)

    monkeypatch.setattr(dwgen.targetrun, "TargetBuild", build)
    code, out, err = _bench(capsys, [str(EXAMPLE), "--target", "cortex-m4,cortex-m33,cortex-m3", "--json"])
    doc = json.loads(out)
    assert code == 2
    assert [r["target"] for r in doc["results"]] == ["cortex-m4", "cortex-m3"]
    assert doc["failed_targets"] == {"cortex-m33": "the compiler fell over"}
    assert err.endswith("dwgen: error: target cortex-m33: the compiler fell over\n")
    code, out, _ = _bench(capsys, [str(EXAMPLE), "--target", "cortex-m33,cortex-m4"])
    assert code == 2
    assert "target cortex-m33: not measured: the compiler fell over" in out.splitlines()
    assert out.startswith("target cortex-m4: ") and re.search(r"^kws_dw1 .* yes$", out, re.M)


def test_bench_labels_every_figure_with_its_core(capsys):
    code, out, _ = _bench(capsys, [str(EXAMPLE), "--target", "cortex-m4,cortex-m7,cortex-m3"])
    assert code == 0
    m4, m7, m3 = out.split("\n\n")[:3]
    for part in (m4, m7, m3):
        header = next(line for line in part.splitlines() if line.startswith("layer "))
        assert re.split(r"  +", header) == ["layer", "MACs", "data flow", "dwgen M4 c/MAC", "ref loop M4 c/MAC", "vs ref",
                                            "dwgen M7 c/MAC", "stack B", ".text B", ".rodata B", "bit-exact"]
    assert "cycles:" not in m4
    assert ("cycles: the M4 columns apply the Cortex-M4 timing table to this cortex-m7 build; the M7 column "
            "is the rough dual-issue model") in m7.splitlines()
    # CMSIS-NN's published figures are Cortex-M4 ones: no comparison on another core
    assert "published" not in m3 and "vs CMSIS-NN" not in m3
    assert ("cycles: the Cortex-M4 timing table applied to this cortex-m3 build (dwgen has no timing model "
            "of the cortex-m3)") in m3.splitlines()


def test_bench_and_check_run_the_cortex_m55(capsys):
    """The M55 build runs as its Armv8-M Mainline + DSP twin on unicorn's M33 model, and says so."""
    code, out, _ = _bench(capsys, [str(EXAMPLE), "--target", "cortex-m55", "--json"])
    doc = json.loads(out)
    assert code == 0 and doc["bit_exact"]
    (r,) = doc["results"]
    assert r["data_flow"] == "dsp" and r["dwgen"]["cycles_m4"] > 0
    assert "-mcpu=cortex-m33" in doc["toolchain"]["cortex-m55"]["cflags"]
    assert "-mtune=cortex-m55" in doc["toolchain"]["cortex-m55"]["cflags"]
    code, out, _ = _bench(capsys, [str(EXAMPLE), "--target", "cortex-m55"])
    assert code == 0
    assert ("emulation: emulated as its Armv8-M Mainline + DSP build (gcc: -mcpu=cortex-m33 -mtune=cortex-m55) "
            "on unicorn's Cortex-M33 model: dwgen's C and asm are the same, only what a compiler adds for "
            "Armv8.1-M by itself (Helium-vectorized loops, DLS/LE, CSEL) is left out") in out.splitlines()
    code = main(["check", str(FIXTURES / "kws_dscnn.tflite"), "--target", "cortex-m55"])
    out = capsys.readouterr().out
    assert code == 0 and out.rstrip().endswith("PASS"), out


def test_bench_compares_with_published_cmsis_nn_figures_only_on_the_m4(capsys):
    code, out, _ = _bench(capsys, ["--suite", "mlperf-tiny", "--target", "cortex-m4,cortex-m3", "--json"])
    doc = json.loads(out)
    assert code == 0
    assert doc["geomean_speedup_vs_cmsis_nn"]["cortex-m4"] > 1
    assert doc["geomean_speedup_vs_cmsis_nn"]["cortex-m3"] is None


def test_bench_totals_at_a_given_clock(capsys):
    code, out, _ = _bench(capsys, [str(EXAMPLE), "--clock-mhz", "168", "--json"])
    tot = json.loads(out)["totals"]["cortex-m4"]
    assert code == 0 and tot["clock_mhz"] == 168
    assert tot["dwgen_ms_m4"] == round(tot["dwgen_cycles_m4"] / 168e3, 3)
    assert tot["peak_stack_bytes"] == json.loads(out)["results"][0]["dwgen"]["stack_bytes"] and tot["scratch_bytes"] == 0
