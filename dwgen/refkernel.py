"""The baseline kernel `dwgen bench` compares against: TFLite's reference loop, in C.

It computes exactly what the specialized kernel computes (so both are checked against
the same reference output), but the way TFLite's reference kernel does: a bounds check
and an input offset per tap, weights read in TFLite's layout, runtime per-channel
requantization. Only the layer's constants are compiled in.
"""

from __future__ import annotations

from .codegen import EmitOptions, GeneratedKernel, _environment, _rows, check_c_name, describe
from .plan import make_plan
from .qlayer import QuantizedLayer
from . import __version__


def generate_reference(ql: QuantizedLayer, name: str) -> GeneratedKernel:
    check_c_name(name)
    opts = EmitOptions(name=name)
    g, q = ql.geometry, ql.quant
    ctx = dict(
        name=name, NAME=name.upper(), version=__version__, description=describe(ql, opts), g=g, q=q,
        act_min=ql.act_min, act_max=ql.act_max,
        filter_rows=_rows(ql.weights.reshape(-1), 16, 4),
        raw_bias_rows=_rows(ql.bias, 8, 11),
        multiplier_rows=_rows(q.multipliers, 6, 11),
        shift_rows=_rows(q.shifts, 16, 3),
    )
    c_src = _environment().get_template("kernel_ref.c.j2").render(**ctx)
    h_src = f"#include <stdint.h>\nvoid {name}(const int8_t *input, int8_t *output);\n"
    return GeneratedKernel(name=name, c_source=c_src, h_source=h_src, plan=make_plan(ql), options=opts)


__all__ = ["generate_reference"]
