"""The `dwgen` command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from . import __version__
from .errors import DwgenError

EPILOG = """\
examples:
  dwgen emit examples/kws_dw.json -o out/            specialized C for one layer
  dwgen emit examples/kws_dw.json -o out/ --weights extern --cmsis-nn-api
  dwgen emit examples/kws_dw.json -o out/ --json     machine-readable summary

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
        help="write <name>.c and <name>.h for a layer",
        description="Write a specialized <name>.c + <name>.h for the layer in LAYER.json. "
        "Output is written atomically: nothing is left behind on failure, and existing files "
        "are only replaced with --force.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="LAYER.json format: see the README (section 'Layer files') or dwgen.layerfile.SCHEMA.",
    )
    e.add_argument("source", metavar="LAYER.json", help="layer description (Keras config + quantization + .npz weights)")
    e.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="directory to write into (created if missing)")
    e.add_argument("--name", help="kernel name: a C identifier (default: from the layer's Keras name)")
    e.add_argument("--rounding", choices=("double", "single"), help="requantization rounding (default: the file's, else double)")
    e.add_argument("--layout", choices=("nhwc", "nchw"), help="memory layout of input and output (default: the layer's data_format)")
    e.add_argument("--weights", choices=("baked", "extern"), default="baked",
                   help="baked: weights in flash inside the kernel (default); extern: passed at run time in TFLite layout")
    e.add_argument("--cmsis-nn-api", action="store_true",
                   help="also emit <name>_cmsis_nn() with the arm_depthwise_conv_wrapper_s8 signature")
    e.add_argument("--force", action="store_true", help="overwrite existing files")
    e.add_argument("--json", action="store_true", help="print a machine-readable summary")
    e.set_defaults(func=cmd_emit)
    return p


def _kernel_name(args: argparse.Namespace, default_source: str) -> str:
    from .codegen import check_c_name, sanitize_c_name

    if args.name is not None:
        return check_c_name(args.name)
    return sanitize_c_name(default_source, fallback="dw")


def cmd_emit(args: argparse.Namespace) -> int:
    from . import layerfile
    from .codegen import EmitOptions, generate, with_layout
    from .outdir import write_files

    src = Path(args.source)
    if src.suffix.lower() == ".tflite":
        raise DwgenError(f"{src}: emitting from .tflite models is not available in this version of dwgen")
    doc = layerfile.read(src)
    ql = doc.qlayer
    if args.rounding:
        ql = ql.with_rounding(args.rounding)
    if args.layout:
        ql = with_layout(ql, args.layout)
    name = _kernel_name(args, doc.name)
    kernel = generate(ql, EmitOptions(name=name, weights=args.weights, cmsis_nn_api=args.cmsis_nn_api))
    paths = write_files(args.output, kernel.files, force=args.force)
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
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"wrote {', '.join(str(p) for p in paths)}")
        print(f"  {summary['entry_point']}: {list(g.input_shape)} -> {list(g.output_shape)}, {g.macs} MACs, no scratch")
    return 0


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
