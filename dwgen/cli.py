"""The `dwgen` command line."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Sequence

from . import __version__
from .codegen import TARGETS
from .plan import MAX_UNROLLED_STATEMENTS
from .errors import DwgenError
from .testvectors import MAX_VECTOR_BYTES

EPILOG = """\
examples:
  dwgen emit examples/kws_dw.json -o out/            specialized C for one layer
  dwgen emit examples/kws_dw.json -o out/ --weights extern --cmsis-nn-api
  dwgen inspect model.tflite                         list the depthwise layers of a model
  dwgen emit model.tflite -o out/ --target cortex-m4 one kernel per layer + manifest
  dwgen emit model.tflite -o out/ --target cortex-m4 --tflm
                                                     ... + a TFLite Micro drop-in (dwgen_tflm.c)
  dwgen check model.tflite --target cortex-m4        prove every layer bit-exact on its real data

Run `dwgen COMMAND --help` for the options of each command.
"""


def _version_string() -> str:
    try:
        from .oracle import interpreters

        found = interpreters()
    except Exception:  # the oracle is optional; --version must always work
        found = {}
    tfl = found.get("tflite") or "none (pip install ai-edge-litert, or tflite-runtime with numpy<2)"
    tflm = found.get("tflm") or "none (pip install tflite-micro)"
    return f"dwgen {__version__}\nTFLite oracle: {tfl}\nTFLite Micro: {tflm}"


class _VersionAction(argparse.Action):
    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(_version_string())
        parser.exit()


PREFIX_HELP = ("put P in front of every kernel name, so of every symbol and file of the kernels "
               "(e.g. --prefix kws_: kws_depthwise_conv2d.c, kws_depthwise_conv2d(), KWS_DEPTHWISE_CONV2D_*); "
               "keeps the kernels of several models apart in one program or output directory")
PREFIX_SAME = "the prefix `dwgen emit --prefix P` would give the kernel names (so they match the emitted ones)"

OUTSIDE_FLAG = "--allow-outside-weights"
OUTSIDE_HELP = ("LAYER.json: let its 'weights' path leave the layer file's directory (an absolute path, "
                "'..', a symbolic link out); by default the .npz must be in that directory or below it")


def _seed(text: str) -> int:
    # numpy takes seeds >= 0 only; ASCII digits keep int() off Unicode digits and huge strings.
    if not (text.isascii() and text.isdigit()) or len(text) > 40:
        raise argparse.ArgumentTypeError(f"{text[:40]!r}: give a non-negative integer (ASCII digits)")
    return int(text)


# check and bench: 0 / 1 mismatch / 2 rejected, dwgen.check.EXIT_* (main() maps DwgenError to 2)
_EXIT_STATUS = (
    "exit status:\n"
    "  0  every layer bit-exact\n"
    "  1  mismatch found: a kernel's output differs from the reference it is checked against\n"
    "  2  input rejected: a model, layer or input file dwgen or TFLite refuses, a bad argument or a\n"
    "     missing tool; one line 'dwgen: error: ...' on stderr, nothing compared"
)


#: The clock the totals' milliseconds assume unless --clock-mhz says otherwise (a common
#: Cortex-M4 board clock; the cycle figures themselves assume zero wait states).
DEFAULT_CLOCK_MHZ = 100.0


def _clock_mhz(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not (0 < v <= 10000):
        raise DwgenError(f"--clock-mhz {text!r}: give the core clock in MHz, a number such as 80 or 168")
    return v


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dwgen",
        description="Generate specialized, TFLite-bit-exact int8 depthwise-convolution kernels "
        "for Arm Cortex-M.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action=_VersionAction, help="print the version and the TFLite interpreters found")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    e = sub.add_parser(
        "emit",
        help="write <name>.c and <name>.h for a layer, or for every depthwise layer of a model",
        description="Write a specialized <name>.c + <name>.h for the layer in LAYER.json, or one "
        "kernel per depthwise layer of MODEL.tflite plus dwgen_kernels.h (includes them all) and "
        "manifest.json (op index -> files, entry point, shapes). Output is written atomically: "
        "nothing is left behind on failure, and existing files are only replaced with --force.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="LAYER.json format: see the README (section 'Layer files') or dwgen.layerfile.SCHEMA.",
    )
    e.add_argument("source", metavar="LAYER.json|MODEL.tflite",
                   help="layer description (Keras config + quantization + .npz weights) or a .tflite model")
    e.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="directory to write into (created if missing; locked while dwgen writes, so concurrent emits add up)")
    e.add_argument("--name", help="LAYER.json: kernel name, a C identifier (default: from the layer's Keras name); "
                   "models name each kernel after its layer (see `dwgen inspect`)")
    e.add_argument("--prefix", metavar="P", help=PREFIX_HELP)
    e.add_argument("--rounding", choices=("double", "single"), help="requantization rounding (default: the file's, else double)")
    e.add_argument("--layout", choices=("nhwc", "nchw"), help="memory layout of input and output (default: the layer's data_format)")
    e.add_argument("--weights", choices=("baked", "extern"), default="baked",
                   help="baked: weights in flash inside the kernel (default); extern: passed at run time in TFLite layout")
    e.add_argument("--cmsis-nn-api", action="store_true",
                   help="also emit <name>_cmsis_nn() with the arm_depthwise_conv_wrapper_s8 signature")
    e.add_argument("--tflm", action="store_true",
                   help="models: also write dwgen_tflm.c/.h, a TFLite Micro drop-in that takes CMSIS-NN's "
                   "arm_depthwise_conv_wrapper_s8 calls for these layers (link with "
                   "-Wl,--wrap=arm_depthwise_conv_wrapper_s8) and forwards every other call; implies --cmsis-nn-api")
    e.add_argument("--target", choices=TARGETS, default="generic",
                   help="code path: generic/cortex-m0/m0plus/m3 get portable C, cortex-m4/m4-nofpu/m7/m33/m55 "
                   "the DSP kernel (cortex-m4-nofpu: a Cortex-M4 without FPU, soft-float ABI) (default: generic)")
    e.add_argument("--opt", choices=("speed", "size"), default="speed",
                   help="speed: interior and border regions emitted separately (default); size: one loop "
                   "body for the whole image with taps checked at run time, for flash-tight parts; on "
                   "the DSP targets the DSP kernel with one tile body and int8 weights where that stays "
                   "fast (else the looped body, its reason in data_flow_detail). "
                   f"Code size is bounded: a kernel whose unrolled form would exceed {MAX_UNROLLED_STATEMENTS} "
                   "C statements (regions x (taps + 12)) gets the looped body whatever --opt says, "
                   "reported as data_flow 'looped' in --json and manifest.json")
    e.add_argument("--only", metavar="INDEX,...", help="models: only these op indices (as `dwgen inspect` shows)")
    e.add_argument("--as-written", action="store_true",
                   help="models: emit the layer the user wrote (an NCHW kernel for a channels_first "
                   "TRANSPOSE-DW-TRANSPOSE pattern, the dilated layer for SPACE_TO_BATCH-DW-BATCH_TO_SPACE) "
                   "so the surrounding ops can go")
    e.add_argument("--test-vectors", action="store_true",
                   help="also write <name>_vectors.h (an input and the reference model's output) per "
                   "kernel and dwgen_test_main.c, a main that runs every kernel of OUTDIR with test "
                   "vectors and checks it byte for byte (see firmware/ for a QEMU harness); "
                   "dwgen_test_main.c is regenerated without --force. At most "
                   f"{MAX_VECTOR_BYTES // 2**20} MiB of vectors (input + output, + weights with "
                   "--weights extern) per kernel")
    e.add_argument(OUTSIDE_FLAG, action="store_true", help=OUTSIDE_HELP)
    e.add_argument("--force", action="store_true", help="overwrite existing files")
    e.add_argument("--json", action="store_true", help="print a machine-readable summary")
    e.set_defaults(func=cmd_emit)

    i = sub.add_parser(
        "inspect",
        help="list the depthwise layers of a .tflite model",
        description="List every DEPTHWISE_CONV_2D of MODEL.tflite: shapes, kernel, stride, dilation, "
        "padding offsets, depth multiplier, activation, quantization, MACs and weight bytes, the layer "
        "the user wrote (1-D / channels_first patterns), and the ops dwgen cannot generate with the reason.",
    )
    i.add_argument("model", metavar="MODEL.tflite")
    i.add_argument("--prefix", metavar="P", help=PREFIX_SAME)
    i.add_argument("--json", action="store_true", help="print JSON instead of a table")
    i.set_defaults(func=cmd_inspect)

    c = sub.add_parser(
        "check",
        help="prove every depthwise layer of a model bit-exact against TFLite",
        description="Run MODEL.tflite once under TFLite's reference kernels keeping every tensor, then\n"
        "for each depthwise op generate its kernel, run it on the op's real input (on the host, or\n"
        "cross-compiled on an emulated Cortex-M) and compare with the op's real output byte for byte.\n"
        "TFLite Micro, when installed, runs each op as a second reference.",
        epilog=_EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument("model", metavar="MODEL.tflite")
    c.add_argument("--target", choices=("host",) + TARGETS[1:], default="host",
                   help="where the kernels run: host (cffi, default) or an emulated Cortex-M")
    c.add_argument("--inputs", metavar="FILE.npy|FILE.npz",
                   help="model input (.npy; .npz with one array per input, in order), each of its input's dtype "
                   "and shape, at most 64 MiB an array (headers are checked before any data is read); "
                   "default: random, seeded")
    c.add_argument("--seed", type=_seed, default=0, help="seed of the random input: a non-negative integer (default 0)")
    c.add_argument("--only", metavar="INDEX,...", help="only these op indices")
    c.add_argument("--prefix", metavar="P", help=PREFIX_SAME)
    c.add_argument("--json", action="store_true", help="print a JSON report instead of a table")
    c.set_defaults(func=cmd_check)

    b = sub.add_parser(
        "bench",
        help="measure kernels on emulated Cortex-M cores (cycles, code size, stack)",
        description="Cross-compile the specialized kernels and dwgen's baseline (TFLite's reference loop "
        "in C) with the same compiler and flags, run both in unicorn on the same data, check them bit-exact "
        "and estimate cycles with the Cortex-M4 timing table. With --cmsis-nn DIR, the CMSIS-NN checkout in "
        "DIR is built and measured the same way.",
        epilog="examples:\n  dwgen bench --suite mlperf-tiny\n  dwgen bench model.tflite --target cortex-m4,cortex-m3 --json\n"
        "  dwgen bench --suite mlperf-tiny --cmsis-nn ~/src/CMSIS-NN --plot bench.png\n\n" + _EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    b.add_argument("source", nargs="?", metavar="LAYER.json|MODEL.tflite", help="what to measure (or use --suite)")
    b.add_argument("--suite", metavar="NAME", help="a built-in layer set: mlperf-tiny (the 15 layers of docs/benchmark-layers.md)")
    b.add_argument("--target", default="cortex-m4", metavar="T[,T...]",
                   help=f"targets, comma-separated, from {', '.join(TARGETS[1:])} (default cortex-m4)")
    b.add_argument("--opt", choices=("speed", "size"), default="speed", help="kernel variant to measure (see emit --opt)")
    b.add_argument("--cc-opt", default="O2", choices=("O2", "Os", "O3"), help="compiler optimization level (default O2)")
    b.add_argument("--compiler", choices=("gcc", "clang"), help="force arm-none-eabi-gcc or zig's clang")
    b.add_argument("--cmsis-nn", metavar="DIR", help="also build and measure the CMSIS-NN checkout in DIR")
    b.add_argument("--prefix", metavar="P", help=PREFIX_SAME)
    b.add_argument(OUTSIDE_FLAG, action="store_true", help=OUTSIDE_HELP)
    b.add_argument("--json", action="store_true", help="print JSON instead of a table")
    b.add_argument("--plot", metavar="FILE.png", help="write a bar chart of cycles/MAC (needs matplotlib)")
    b.add_argument("--clock-mhz", default=str(DEFAULT_CLOCK_MHZ), metavar="MHZ",
                   help=f"core clock for the milliseconds in the totals (default {DEFAULT_CLOCK_MHZ:g})")
    b.set_defaults(func=cmd_bench)
    return p


def _kernel_name(args: argparse.Namespace, default_source: str) -> str:
    """A layer file's kernel name: --name (refused when it cannot be one) or the layer's
    name (renamed when it cannot be one), after --prefix."""
    from .names import MAX_NAME_LENGTH, avoid_reserved, check_c_name, check_prefix, sanitize_c_name

    prefix = check_prefix(args.prefix) if getattr(args, "prefix", None) is not None else ""
    if getattr(args, "name", None) is not None:
        return check_c_name(prefix + args.name)
    return avoid_reserved(prefix + sanitize_c_name(default_source, fallback="dw", limit=MAX_NAME_LENGTH - 8 - len(prefix)))


def cmd_emit(args: argparse.Namespace) -> int:
    from . import layerfile
    from .codegen import EmitOptions, generate, with_layout

    src = Path(args.source)
    if src.suffix.lower() == ".tflite":
        return _emit_model(args, src)
    for flag in ("only", "as_written", "tflm"):
        if getattr(args, flag):
            raise DwgenError(f"--{flag.replace('_', '-')} applies to .tflite models, not to LAYER.json")
    doc = layerfile.read(src, allow_outside_weights=args.allow_outside_weights)
    ql = doc.qlayer
    if args.rounding:
        ql = ql.with_rounding(args.rounding)
    if args.layout:
        ql = with_layout(ql, args.layout)
    name = _kernel_name(args, doc.name)
    if args.test_vectors:  # refuse before generating: a layer too big for vectors may be slow to plan
        from .testvectors import check_vector_budget

        try:
            check_vector_budget(ql, name, args.weights == "extern")
        except DwgenError as exc:
            raise DwgenError(f"{src}: {exc}") from None
    kernel = generate(ql, EmitOptions(name=name, weights=args.weights, cmsis_nn_api=args.cmsis_nn_api,
                                      target=args.target, opt=args.opt))
    vectors = None
    if args.test_vectors:
        from .testvectors import make_vectors

        vectors = [make_vectors(kernel, ql)]
    paths = _write_outputs(args.output, dict(kernel.files), args.force, [name], vectors,
                           hint="choose another --name or another output directory")
    g = ql.geometry
    summary = {
        "name": name,
        "files": [str(p) for p in paths],
        "entry_point": f"void {name}({kernel.signature})",
        "cmsis_nn_entry_point": f"{name}_cmsis_nn" if args.cmsis_nn_api else None,
        "input_shape": list(g.input_shape),
        "output_shape": list(g.output_shape),
        "layout": g.data_format,
        "macs": g.macs,
        "scratch_bytes": 0,
        "weights": args.weights,
        "rounding": ql.quant.rounding,
        "target": args.target,
        "opt": args.opt,
        "data_flow": kernel.data_flow,
        "data_flow_detail": kernel.data_flow_detail,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"wrote {', '.join(str(p) for p in paths)}")
        print(f"  {summary['entry_point']}: {list(g.input_shape)} -> {list(g.output_shape)}, {g.macs} MACs, no scratch")
    return 0


def _write_outputs(outdir: str, files: dict, force: bool, names: list, vectors=None, model_index=None,
                   hint: str = "") -> list:
    """write_files, with what depends on OUTDIR's contents computed under its lock: no
    collision with a kernel already there, dwgen_test_main.c listing every kernel of the
    directory with vectors (a dwgen-written one is replaced without --force: it is the index
    of the directory's test vectors), and a model's dwgen_kernels.h + manifest.json."""
    from .names import check_directory
    from .outdir import Index, write_files
    from .testvectors import MAIN_FILE, is_generated_main, vector_files

    def index(directory):
        idx = Index()
        if directory is not None:
            check_directory(names, directory, hint)
        if vectors is not None:
            idx.files.update(vector_files(vectors, directory))
            if directory is not None and is_generated_main(directory / MAIN_FILE):
                idx.regenerated.add(MAIN_FILE)
        if model_index is not None:
            more, regenerated = model_index(directory)
            idx.files.update(more)
            idx.regenerated |= regenerated
        return idx

    return write_files(outdir, files, force=force, index=index)


def _read_model(path: Path, prefix: str | None = None):
    from .names import check_prefix
    from .tflite_model import read_model

    if prefix is not None:
        check_prefix(prefix)  # before the file is read: a bad argument is the first thing to say
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DwgenError(f"{path}: no such file") from None
    except OSError as exc:
        raise DwgenError(f"{path}: cannot read it ({exc.__class__.__name__})") from None
    try:
        model = read_model(data)
        return data, model.named(prefix) if prefix else model
    except DwgenError as exc:
        raise DwgenError(f"{path}: {exc}") from None


def _emit_model(args: argparse.Namespace, src: Path) -> int:
    from .model_emit import generate_model, index_files, manifest, parse_only, prefix_header
    from .tflm import LINK_FLAG, TFLM_C, TFLM_H

    if args.name is not None:
        raise DwgenError("--name applies to LAYER.json: the kernels of a model are named after their layers "
                         "(`dwgen inspect` shows the names); use --prefix P to put P in front of every one")
    if args.layout is not None:
        raise DwgenError("--layout applies to LAYER.json; for a model use --as-written to get the user's layout")
    _, model = _read_model(src, args.prefix)
    ops = parse_only(args.only, model)
    if args.test_vectors:
        from .testvectors import check_vector_budget

        try:
            for op in ops:
                check_vector_budget(op.qlayer, op.c_name, args.weights == "extern")
        except DwgenError as exc:
            raise DwgenError(f"{src}: {exc}") from None
    kernels = generate_model(ops, target=args.target, weights=args.weights, rounding=args.rounding,
                             as_written=args.as_written, cmsis_nn_api=args.cmsis_nn_api, model_name=src.name,
                             opt=args.opt, tflm=args.tflm)
    files = {}
    for mk in kernels:
        files.update(mk.kernel.files)
    vectors = None
    if args.test_vectors:
        from .testvectors import make_vectors, model_input

        vectors = []
        for mk in kernels:
            x, source = model_input(model, mk.op, mk.as_written, mk.qlayer)
            vectors.append(make_vectors(mk.kernel, mk.qlayer, x, source))
    prefix = args.prefix or ""
    paths = _write_outputs(args.output, files, args.force, [mk.kernel.name for mk in kernels], vectors,
                           model_index=lambda d: index_files(kernels, src.name, args.target, d, prefix, args.tflm),
                           hint="give this model's kernels a --prefix or emit it into another directory")
    if args.json:
        summary = manifest(kernels, src.name, args.target, prefix)
        summary["files"] = [str(p) for p in paths]
        summary["unsupported"] = [{"op": u.index, "reason": u.reason} for u in model.unsupported]
        print(json.dumps(summary, indent=2))
    else:
        for mk in kernels:
            g = mk.qlayer.geometry
            print(f"op {mk.op.index:>3}  {mk.kernel.name}: {list(g.input_shape)} -> {list(g.output_shape)}, "
                  f"{g.macs} MACs")
        for u in model.unsupported:
            print(f"op {u.index:>3}  skipped: {u.reason}")
        index = ["dwgen_kernels.h", "manifest.json"] + ([prefix_header(prefix)] if prefix else [])
        if args.tflm:
            index += [TFLM_C, TFLM_H]
        print(f"wrote {len(paths)} files to {args.output} ({', '.join(index)})")
        if args.tflm:
            print(f"  TFLite Micro: compile {args.output}/*.c into the firmware and link with {LINK_FLAG}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from .report import inspect_table, model_totals

    src = Path(args.model)
    _, model = _read_model(src, args.prefix)
    if args.json:
        print(json.dumps({
            "model": src.name,
            "depthwise": [{"kernel": op.c_name} | op.describe() | {"macs": op.qlayer.geometry.macs,
                                            "weight_bytes": int(op.qlayer.weights.size + 4 * op.qlayer.bias.size)}
                          for op in model.depthwise],
            "unsupported": [u.describe() for u in model.unsupported],
            "totals": model_totals(model),
        }, indent=2))
    else:
        print(inspect_table(model, src.name))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .check import EXIT_MISMATCH, EXIT_OK, check_model, load_inputs, progress_bar
    from .model_emit import parse_only
    from .report import check_table

    src = Path(args.model)
    data, model = _read_model(src, args.prefix)
    ops = parse_only(args.only, model)
    # header-first: an .npy claiming 10^13 elements is refused before anything is read
    inputs = model.random_inputs(args.seed) if args.inputs is None else load_inputs(args.inputs, model)
    progress = progress_bar()
    report = check_model(data, model, src.name, ops, inputs, target=args.target, progress=progress)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(check_table(report))
    return EXIT_OK if report.ok else EXIT_MISMATCH


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import layerfile_cases, model_cases, plot, require_matplotlib, run_bench, suite_cases, table
    from .check import progress_bar

    if (args.source is None) == (args.suite is None):
        raise DwgenError("give either LAYER.json/MODEL.tflite or --suite NAME (e.g. --suite mlperf-tiny)")
    targets = [t.strip() for t in args.target.split(",") if t.strip()]
    clock = _clock_mhz(args.clock_mhz)
    bad = [t for t in targets if t not in TARGETS[1:]]
    if bad or not targets:
        raise DwgenError(f"--target {args.target!r}: choose from {', '.join(TARGETS[1:])}")
    if args.suite is not None:
        if args.prefix is not None:
            raise DwgenError("--prefix applies to LAYER.json and MODEL.tflite; the --suite layers have fixed names")
        cases = suite_cases(args.suite)
    elif Path(args.source).suffix.lower() == ".tflite":
        src = Path(args.source)
        _, model = _read_model(src, args.prefix)
        if not model.depthwise:
            raise DwgenError(f"{src}: the model has no depthwise layer dwgen can generate")
        cases = model_cases(src, model)
    else:
        cases = layerfile_cases(Path(args.source), allow_outside_weights=args.allow_outside_weights)
        cases = [dataclasses.replace(c, name=_kernel_name(args, c.name)) for c in cases]
    if args.cmsis_nn is not None:
        from .cmsisnn import _check_dir

        _check_dir(Path(args.cmsis_nn))
    if args.plot is not None:
        require_matplotlib()  # before minutes of measuring, not after
        if not Path(args.plot).resolve().parent.is_dir():
            raise DwgenError(f"--plot {args.plot}: the directory does not exist")
    report = run_bench(cases, targets, opt=args.cc_opt, kernel_opt=args.opt, compiler=args.compiler, clock_mhz=clock,
                       cmsis_dir=Path(args.cmsis_nn) if args.cmsis_nn else None,
                       progress=progress_bar(verb="measuring"))
    if args.plot:
        plot(report, Path(args.plot))
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(table(report))
        if args.plot:
            print(f"wrote {args.plot}")
    for target, message in report.failures.items():
        print(f"dwgen: error: target {target}: {message}", file=sys.stderr)
    if not report.exact:
        print("dwgen: error: a kernel's output differs from the reference model (see 'bit-exact')", file=sys.stderr)
        return 1
    return 2 if report.failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except DwgenError as exc:
        print(f"dwgen: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dwgen: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
