"""Read the depthwise convolutions out of a .tflite model (no TensorFlow needed).

`read_model(path_or_bytes)` returns a `Model` whose `depthwise` list holds one
`DepthwiseOp` per DEPTHWISE_CONV_2D that dwgen can generate (int8 activations, int8
weights, int32 bias) and whose `unsupported` list names every other depthwise op with
the reason (int16x8, int4 weights, uint8, float, hybrid, dynamic filter, ...).

The file is untrusted input. It is parsed by a small bounds-checked flatbuffer reader
(field numbers from the TFLite schema, `tflite/schema/schema.fbs`): every table,
vtable, vector, string and buffer is checked to lie inside the file before it is read,
vector lengths are bounded by the bytes that remain, tensor sizes are capped, work and
memory are bounded by the file's size (shared vectors are decoded once, and all decoded
values, counted at every use, fit a budget of WORK_PER_BYTE per byte), and any
failure becomes a one-line `dwgen.errors.ModelError` naming the problem (and the op
index when there is one). Names stay raw data (`DepthwiseOp.output_name`); code gets
`DepthwiseOp.c_name`, a sanitized unique C identifier, and comments get
`c_comment_text(name)`.

Converter patterns are reported as what the user wrote (`DepthwiseOp.pattern`):

- "conv2d": a plain DepthwiseConv2D (NHWC).
- "conv1d": RESHAPE/EXPAND_DIMS -> DEPTHWISE_CONV_2D (H=1) -> RESHAPE/SQUEEZE, i.e. a
  Keras DepthwiseConv1D. Consecutive 1-D layers share the reshapes (the converter
  folds the RESHAPE pair between them), so a chain of H=1 ops between such reshapes is
  1-D as well.
- "channels_first": TRANSPOSE(0,2,3,1) -> DEPTHWISE_CONV_2D -> TRANSPOSE(0,3,1,2), a
  DepthwiseConv2D(data_format="channels_first"); an NCHW kernel makes both transposes
  unnecessary. (A 1-D channels_first layer is "conv1d" with a channels_first
  `user_layer`.)
- "dilated": SPACE_TO_BATCH_ND -> DEPTHWISE_CONV_2D -> BATCH_TO_SPACE_ND, TensorFlow's
  lowering of a dilated depthwise convolution, which the converter leaves unfused when
  the batch size is unknown. TFLite runs the inner op on batch = N * block size;
  `qlayer` says so, and `user_layer` is the dilated layer that replaces all three ops.

`qlayer` is always the op as TFLite runs it (NHWC); `user_layer` / `user_qlayer` /
`user_input` / `user_output` describe the layer the user wrote, in its own layout.

API:

    m = read_model("model.tflite")          # or bytes; ModelError on anything wrong
    m.depthwise    -> [DepthwiseOp]         # .index .c_name .qlayer .pattern .user_layer ...
    m.unsupported  -> [UnsupportedOp]       # .index .op .input_name ... .reason
    m.inputs / m.outputs -> [TensorInfo]    # subgraph 0: .index .name .shape .dtype .scale
    m.tensor(i), m.tensor_data(i) / tensor_data(m, i), m.op(i), m.random_inputs(seed)

To check an op against TFLite: run the model with `experimental_preserve_all_tensors`,
then `reference(op.qlayer, interp.get_tensor(op.input))` equals
`interp.get_tensor(op.output)`.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import re
import struct
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .errors import DwgenError, LayerSizeError, ModelError
from .layer import CHANNELS_FIRST, CHANNELS_LAST, DepthwiseLayer
from .names import avoid_reserved, check_prefix, name_problem, unique_names
from .qlayer import QuantizedLayer
from .quant import EffectiveScaleError, Quantization

# -- limits ---------------------------------------------------------------------------------
#: Largest tensor (elements) dwgen accepts; far above any microcontroller activation.
MAX_TENSOR_ELEMENTS = 1 << 26
#: Largest rank of a tensor dwgen looks at.
MAX_RANK = 8
#: Longest C identifier `c_name` produces.
C_NAME_MAX = 48
#: Largest model file read_model opens (TFLite keeps >2 GB data outside the flatbuffer).
MAX_FILE_BYTES = 1 << 32
#: Largest extent of a (dilated) kernel along one axis, (k - 1) * d + 1.
MAX_KERNEL_SPAN = 1024
# Pattern recognition simulates layout ops on index arrays up to this many elements
# each, and up to _SIM_BUDGET elements per subgraph (a hostile file cannot make it slow).
_SIM_LIMIT = 1 << 22
_SIM_BUDGET = 1 << 24
#: Decoding budget: the values (vector elements, string bytes, table entries, op tensor
#: references, weights of analysed ops) decoded in all, counted at every use, are at most
#: WORK_PER_BYTE per byte of the file plus WORK_BASE. A model whose tables and vectors
#: are its own spends about one per byte; only tables shared by many parents or vectors
#: overlapping each other (which no converter writes) can claim more, and without this
#: bound a 480 KB file could make the reader decode billions of values.
WORK_PER_BYTE = 4
WORK_BASE = 1 << 16
#: Most DEPTHWISE_CONV_2D ops analysed in one model (each costs about a millisecond; real
#: models have tens).
MAX_DEPTHWISE_OPS = 1024

FILE_IDENTIFIER = b"TFL3"
SCHEMA_VERSION = 3

# -- schema constants (TFLite schema.fbs; mirrored by the `tflite` package) -----------------
_TENSOR_TYPES = {
    0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 5: "string", 6: "bool",
    7: "int16", 8: "complex64", 9: "int8", 10: "float64", 11: "complex128", 12: "uint64",
    13: "resource", 14: "variant", 15: "uint32", 16: "uint16", 17: "int4", 18: "bfloat16",
}
_NUMPY_DTYPES = {
    "float32": "<f4", "float16": "<f2", "int32": "<i4", "uint8": "u1", "int64": "<i8",
    "bool": "?", "int16": "<i2", "int8": "i1", "float64": "<f8", "uint64": "<u8",
    "uint32": "<u4", "uint16": "<u2", "complex64": "<c8", "complex128": "<c16",
}
_ACTIVATIONS = {0: "none", 1: "relu", 2: "relu_n1_to_1", 3: "relu6", 4: "tanh", 5: "sign_bit"}
_PADDINGS = {0: "same", 1: "valid"}
_OPT_DEPTHWISE = 2  # BuiltinOptions.DepthwiseConv2DOptions

DEPTHWISE_CONV_2D = 4
_RESHAPE, _TRANSPOSE, _SQUEEZE, _EXPAND_DIMS = 22, 39, 43, 70
_SPACE_TO_BATCH_ND, _BATCH_TO_SPACE_ND = 38, 37
_LAYOUT_OPS = frozenset({_RESHAPE, _TRANSPOSE, _SQUEEZE, _EXPAND_DIMS})


def _builtin_names() -> dict[int, str]:
    try:
        from tflite.BuiltinOperator import BuiltinOperator
    except Exception:  # pragma: no cover - the tflite package is a dependency
        return {DEPTHWISE_CONV_2D: "DEPTHWISE_CONV_2D"}
    return {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}


_OP_NAMES = _builtin_names()


def op_name(code: int) -> str:
    """TFLite's name of a builtin operator code (e.g. 4 -> "DEPTHWISE_CONV_2D")."""
    return _OP_NAMES.get(code, f"BUILTIN_{code}")


# -- one-line, printable messages -------------------------------------------------------------
def _show(name: str | None, limit: int = 60) -> str:
    """A name for an error message: quoted, escaped (never a newline), bounded."""
    if name is None:
        return "(no name)"
    s = name if len(name) <= limit else name[:limit] + "..."
    return repr(s)


_SAFE_COMMENT = re.compile(r"[A-Za-z0-9 _.,:;/()+=#@%&\-\[\]<>!^~|'\"$`{}]")


def c_comment_text(text: str, limit: int = 120) -> str:
    """`text` made safe inside a C comment (block or line): printable ASCII only.

    Every other character (newline, backslash, `*`, `?`, non-ASCII) is written as
    `\\xNN`/`\\uNNNN`, so `*/`, trigraphs, a line-continuing backslash or a newline can
    never appear. Long text is cut with "...".
    """
    out = []
    for ch in text:
        if _SAFE_COMMENT.fullmatch(ch):
            out.append(ch)
        else:
            cp = ord(ch)
            out.append(f"\\x{cp:02x}" if cp < 0x100 else (f"\\u{cp:04x}" if cp < 0x10000 else f"\\U{cp:08x}"))
        if sum(map(len, out)) > limit:
            out.append("...")
            break
    return "".join(out)


# -- the bounds-checked flatbuffer reader ---------------------------------------------------
class _Bad(Exception):
    """Bad content; becomes a ModelError with its context prepended."""


class _Malformed(_Bad):
    """A broken flatbuffer (offsets, lengths, indices): reported as a malformed file."""


_U8 = struct.Struct("<B")
_I8 = struct.Struct("<b")
_U16 = struct.Struct("<H")
_I32 = struct.Struct("<i")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


class _Reader:
    __slots__ = ("data", "size", "memo", "limit", "spent", "sim_budget")

    def __init__(self, data: bytes):
        self.data = data
        self.size = len(data)
        # Decoded vectors and strings by (byte offset, type): a table shared by many parents
        # is decoded into Python objects once, and every parent holds the same object.
        self.memo: dict[tuple[int, str], Any] = {}
        self.limit = WORK_PER_BYTE * self.size + WORK_BASE
        self.spent = 0
        # Pattern recognition's simulation budget, for the whole file (not per subgraph, so
        # a subgraph listed many times cannot multiply it).
        self.sim_budget = _SIM_BUDGET

    def charge(self, n: int, what: str) -> None:
        """Count `n` decoded values against the file's budget (see WORK_PER_BYTE)."""
        self.spent += n
        if self.spent > self.limit:
            raise _Malformed(
                f"decoding {what} takes the model past {self.limit} values ({WORK_PER_BYTE} per byte "
                f"of the {self.size}-byte file, plus {WORK_BASE}): its tables are shared or overlap "
                "far beyond what a converter writes"
            )

    def need(self, pos: int, n: int, what: str) -> None:
        if pos < 0 or n < 0 or pos + n > self.size:
            raise _Malformed(f"{what} at byte {pos} ({n} bytes) lies outside the file ({self.size} bytes)")

    def read(self, st: struct.Struct, pos: int, what: str) -> Any:
        self.need(pos, st.size, what)
        return st.unpack_from(self.data, pos)[0]

    def table(self, pos: int, what: str) -> "_Table":
        return _Table(self, pos, what)


class _Table:
    __slots__ = ("r", "pos", "vt", "vt_len", "obj_len", "what")

    def __init__(self, r: _Reader, pos: int, what: str):
        self.r, self.pos, self.what = r, pos, what
        soff = r.read(_I32, pos, what)
        vt = pos - soff
        vt_len = r.read(_U16, vt, f"{what} vtable")
        obj_len = r.read(_U16, vt + 2, f"{what} vtable")
        if vt_len < 4 or vt_len % 2:
            raise _Malformed(f"{what} at byte {pos} has a malformed vtable (length {vt_len})")
        if obj_len < 4:
            raise _Malformed(f"{what} at byte {pos} has a malformed vtable (object size {obj_len})")
        r.need(vt, vt_len, f"{what} vtable")
        r.need(pos, obj_len, what)
        self.vt, self.vt_len, self.obj_len = vt, vt_len, obj_len

    def _off(self, fid: int, size: int) -> int:
        vo = 4 + 2 * fid
        if vo + 2 > self.vt_len:
            return 0
        o = _U16.unpack_from(self.r.data, self.vt + vo)[0]
        if o and o + size > self.obj_len:
            raise _Malformed(f"{self.what} at byte {self.pos}: field {fid} lies outside its table")
        return o

    def scalar(self, fid: int, st: struct.Struct, default: Any) -> Any:
        o = self._off(fid, st.size)
        return st.unpack_from(self.r.data, self.pos + o)[0] if o else default

    def _indirect(self, fid: int, what: str) -> int | None:
        o = self._off(fid, 4)
        if not o:
            return None
        p = self.pos + o
        return p + self.r.read(_U32, p, what)

    def table(self, fid: int, what: str) -> "_Table | None":
        p = self._indirect(fid, what)
        return None if p is None else _Table(self.r, p, what)

    def vector(self, fid: int, elem: int, what: str) -> tuple[int, int] | None:
        p = self._indirect(fid, what)
        if p is None:
            return None
        n = self.r.read(_U32, p, what)
        start = p + 4
        if n * elem > self.r.size - start:
            raise _Malformed(
                f"{what} at byte {p} claims {n} elements, which runs past the end of the file "
                f"({self.r.size} bytes)"
            )
        return start, n

    def values(self, fid: int, dtype: str, what: str) -> tuple | None:
        """A vector of numbers as a tuple of Python ints/floats, decoded once per offset."""
        dt = np.dtype(dtype)
        v = self.vector(fid, dt.itemsize, what)
        if v is None:
            return None
        start, n = v
        self.r.charge(n, what)
        key = (start, dtype)
        got = self.r.memo.get(key)
        if got is None:
            got = tuple(np.frombuffer(self.r.data, dtype=dt, count=n, offset=start).tolist())
            self.r.memo[key] = got
        return got

    def string(self, fid: int, what: str) -> str | None:
        v = self.vector(fid, 1, what)
        if v is None:
            return None
        start, n = v
        self.r.charge(n, what)
        key = (start, "str")
        got = self.r.memo.get(key)
        if got is None:
            got = self.r.data[start:start + n].decode("utf-8", errors="replace")
            self.r.memo[key] = got
        return got

    def tables(self, fid: int, what: str) -> list["_Table"]:
        v = self.vector(fid, 4, what)
        if v is None:
            return []
        start, n = v
        self.r.charge(n, what)
        out = []
        for i in range(n):
            p = start + 4 * i
            out.append(_Table(self.r, p + self.r.read(_U32, p, f"{what}[{i}]"), f"{what}[{i}]"))
        return out


# -- the parsed model -----------------------------------------------------------------------
@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a subgraph as stored (names raw, not sanitized)."""

    subgraph: int
    index: int
    name: str
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...] | None
    type_code: int
    buffer: int
    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    quantized_dimension: int
    sparse: bool = False

    @property
    def dtype(self) -> str:
        """"int8", "int16", "float32", "int4", ... (or "type<N>" for unknown codes)."""
        return _TENSOR_TYPES.get(self.type_code, f"type{self.type_code}")

    @property
    def numpy_dtype(self) -> np.dtype | None:
        """The numpy dtype of the tensor's elements (None for int4, string, resource, ...)."""
        code = _NUMPY_DTYPES.get(self.dtype)
        return None if code is None else np.dtype(code)

    @property
    def quantized(self) -> bool:
        return len(self.scale) > 0

    @property
    def per_tensor_scale(self) -> float | None:
        return self.scale[0] if len(self.scale) == 1 else None

    @property
    def num_elements(self) -> int:
        return math.prod(self.shape)

    def describe(self) -> dict:
        return {
            "index": self.index, "name": self.name, "shape": list(self.shape), "dtype": self.dtype,
            "scale": list(self.scale), "zero_point": list(self.zero_point),
        }


@dataclass(frozen=True)
class OpInfo:
    """One operator as stored: code, version and tensor indices (-1 = optional, absent)."""

    subgraph: int
    index: int
    code: int
    custom_code: str | None
    version: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options_type: int

    @property
    def name(self) -> str:
        if self.custom_code is not None and self.code == 32:  # CUSTOM
            return f"CUSTOM({self.custom_code})"
        return op_name(self.code)


@dataclass(frozen=True)
class Subgraph:
    index: int
    name: str
    tensors: tuple[TensorInfo, ...]
    operators: tuple[OpInfo, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class DepthwiseOp:
    """A DEPTHWISE_CONV_2D dwgen can generate, with the layer the user wrote."""

    subgraph: int
    index: int  # operator index within the subgraph
    version: int
    input: int  # tensor indices
    output: int
    filter: int
    bias: int | None
    input_name: str  # raw names, exactly as stored
    output_name: str
    filter_name: str
    bias_name: str | None
    c_name: str  # sanitized, unique, stable C identifier (from the output name)
    qlayer: QuantizedLayer  # the op as TFLite runs it (NHWC)
    pattern: str  # "conv2d" | "conv1d" | "channels_first" | "dilated"
    pre_ops: tuple[int, ...]  # op indices the user layer absorbs before this op (outermost first)
    post_ops: tuple[int, ...]  # ... and after it (innermost first)
    user_layer: DepthwiseLayer  # the layer as written (1-D / channels_first / dilated)
    user_qlayer: QuantizedLayer  # user_layer with this op's numbers, in the user's layout
    # The tensor whose bytes are the user layer's input/output (user_input_shape in C order),
    # or None when the graph has no such tensor: between two channels_first (or 1-D
    # channels_first) layers the converter drops the transposes, so the data exists only
    # as this op's NHWC `input`/`output`.
    user_input: int | None
    user_output: int | None
    per_channel: bool
    stored_depth_multiplier: int  # the options field; TFLite derives M = out_c / in_c instead
    notes: tuple[str, ...] = ()

    @property
    def op_name(self) -> str:
        return "DEPTHWISE_CONV_2D"

    @property
    def layer(self) -> DepthwiseLayer:
        return self.qlayer.layer

    @property
    def geometry(self):
        return self.qlayer.geometry

    @property
    def activation(self) -> str:
        return self.qlayer.layer.activation

    @property
    def pad_top(self) -> int:
        return self.qlayer.geometry.pad_top

    @property
    def pad_left(self) -> int:
        return self.qlayer.geometry.pad_left

    @property
    def pad_bottom(self) -> int:
        return self.qlayer.geometry.pad_bottom

    @property
    def pad_right(self) -> int:
        return self.qlayer.geometry.pad_right

    @property
    def padding(self) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) as TFLite pads."""
        g = self.qlayer.geometry
        return g.pad_top, g.pad_left, g.pad_bottom, g.pad_right

    @property
    def pattern_ops(self) -> tuple[int, ...]:
        """Every op the user layer replaces, this one included, in graph order."""
        return self.pre_ops + (self.index,) + self.post_ops

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.qlayer.geometry.input_shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.qlayer.geometry.output_shape

    @property
    def user_input_shape(self) -> tuple[int, ...]:
        return self.user_qlayer.geometry.input_shape

    @property
    def user_output_shape(self) -> tuple[int, ...]:
        return self.user_qlayer.geometry.output_shape

    @property
    def display_name(self) -> str:
        """The output tensor's name, safe to print or to put in a C comment."""
        return c_comment_text(self.output_name)

    def describe(self) -> dict:
        g = self.qlayer.geometry
        return {
            "subgraph": self.subgraph, "op": self.index, "version": self.version,
            "c_name": self.c_name, "pattern": self.pattern,
            "pre_ops": list(self.pre_ops), "post_ops": list(self.post_ops),
            "input": self.input, "output": self.output, "filter": self.filter, "bias": self.bias,
            "input_name": self.input_name, "output_name": self.output_name,
            "input_shape": list(g.input_shape), "output_shape": list(g.output_shape),
            "padding": {"top": g.pad_top, "left": g.pad_left, "bottom": g.pad_bottom, "right": g.pad_right},
            "layer": self.qlayer.layer.describe(),
            "user_layer": self.user_layer.describe(),
            "user_input_shape": list(self.user_input_shape),
            "user_output_shape": list(self.user_output_shape),
            "quantization": self.qlayer.quant.describe(),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class UnsupportedOp:
    """A depthwise op dwgen cannot generate, and why."""

    subgraph: int
    index: int
    op: str
    version: int
    input: int | None
    output: int | None
    filter: int | None
    input_name: str | None
    output_name: str | None
    filter_name: str | None
    reason: str

    def describe(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True, eq=False)
class Model:
    """A parsed .tflite model: its graph, its depthwise ops and what dwgen cannot do."""

    version: int
    description: str
    size: int
    subgraphs: tuple[Subgraph, ...]
    depthwise: list[DepthwiseOp]
    unsupported: list[UnsupportedOp]
    _data: bytes = field(repr=False)
    _buffers: tuple[tuple[int, int] | None, ...] = field(repr=False)

    def named(self, prefix: str = "") -> "Model":
        """The model with every kernel name starting with `prefix` (see `assign_c_names`)."""
        if not prefix:
            return self
        return dataclasses.replace(self, depthwise=assign_c_names(self.depthwise, prefix))

    def tensor(self, index: int, subgraph: int = 0) -> TensorInfo:
        try:
            sg = self.subgraphs[subgraph]
            if index < 0:
                raise IndexError
            return sg.tensors[index]
        except IndexError:
            raise ModelError(f"no tensor {index} in subgraph {subgraph}") from None

    def tensor_data(self, index: int, subgraph: int = 0) -> np.ndarray | None:
        """A constant tensor's data (read-only numpy array in its shape), or None."""
        return tensor_data(self, index, subgraph)

    @property
    def inputs(self) -> list[TensorInfo]:
        """The model's input tensors (subgraph 0)."""
        sg = self.subgraphs[0]
        return [sg.tensors[i] for i in sg.inputs]

    @property
    def outputs(self) -> list[TensorInfo]:
        sg = self.subgraphs[0]
        return [sg.tensors[i] for i in sg.outputs]

    @property
    def operators(self) -> tuple[OpInfo, ...]:
        return self.subgraphs[0].operators

    def op(self, index: int, subgraph: int = 0) -> OpInfo:
        try:
            if index < 0:
                raise IndexError
            return self.subgraphs[subgraph].operators[index]
        except IndexError:
            raise ModelError(f"no op {index} in subgraph {subgraph}") from None

    def random_inputs(self, seed: int | np.random.Generator = 0) -> list[np.ndarray]:
        """Random data for every model input (integers over the type's range)."""
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        out = []
        for t in self.inputs:
            try:
                _check_shape(t)
            except _Bad as e:
                raise ModelError(f"model input tensor {t.index} {_show(t.name)} {e}") from None
            dt = np.dtype(_NUMPY_DTYPES.get(t.dtype, "f4"))
            if dt.kind in "iu":
                info = np.iinfo(dt)
                out.append(rng.integers(info.min, int(info.max) + 1, size=t.shape, dtype=dt))
            else:
                out.append(rng.normal(size=t.shape).astype(dt))
        return out


def tensor_data(model: Model, tensor_index: int, subgraph: int = 0) -> np.ndarray | None:
    """The constant data of a tensor as a read-only array in its shape; None if it has none.

    int4 tensors are unpacked to int8 (element 2i in the low nibble). Raises ModelError
    if the stored bytes do not match the tensor's shape and type.
    """
    t = model.tensor(tensor_index, subgraph)
    try:
        return _tensor_array(model._data, model._buffers, t)
    except _Bad as e:
        raise ModelError(f"tensor {t.index} {_show(t.name)}: {e}") from None


def _tensor_array(data: bytes, buffers: tuple, t: TensorInfo) -> np.ndarray | None:
    if t.buffer == 0 or t.buffer >= len(buffers) or buffers[t.buffer] is None:
        if t.buffer >= len(buffers):
            raise _Malformed(f"refers to buffer {t.buffer} but the model has {len(buffers)} buffers")
        return None
    start, nbytes = buffers[t.buffer]
    if nbytes == 0:
        return None
    _check_shape(t)
    count = t.num_elements
    if t.dtype == "int4":
        need = (count + 1) // 2
        if nbytes != need:
            raise _Bad(f"buffer {t.buffer} holds {nbytes} bytes: shape {list(t.shape)} int4 needs {need}")
        packed = np.frombuffer(data, dtype=np.uint8, count=need, offset=start)
        lo = (packed & 0x0F).astype(np.int8)
        hi = (packed >> 4).astype(np.int8)
        vals = np.empty(2 * need, dtype=np.int8)
        vals[0::2], vals[1::2] = lo, hi
        vals = np.where(vals > 7, vals - 16, vals).astype(np.int8)[:count].reshape(t.shape)
        vals.setflags(write=False)
        return vals
    if t.dtype not in _NUMPY_DTYPES:
        raise _Bad(f"has type {t.dtype}: its data cannot be read as an array")
    dt = np.dtype(_NUMPY_DTYPES[t.dtype])
    if nbytes != count * dt.itemsize:
        raise _Bad(
            f"buffer {t.buffer} holds {nbytes} bytes: shape {list(t.shape)} {t.dtype} needs "
            f"{count * dt.itemsize}"
        )
    return np.frombuffer(data, dtype=dt, count=count, offset=start).reshape(t.shape)


def _check_shape(t: TensorInfo) -> None:
    if len(t.shape) > MAX_RANK:
        raise _Bad(f"has rank {len(t.shape)}: dwgen reads tensors of rank <= {MAX_RANK}")
    if any(d <= 0 for d in t.shape):
        raise _Bad(f"has shape {list(t.shape)}: every dimension must be positive")
    n = math.prod(t.shape)
    if n > MAX_TENSOR_ELEMENTS:
        raise _Bad(
            f"claims {n} elements (shape {list(t.shape)}), more than the {MAX_TENSOR_ELEMENTS} "
            "dwgen accepts"
        )


# -- parsing --------------------------------------------------------------------------------
def read_model(source: Any, require_depthwise: bool = True) -> Model:
    """Parse a .tflite file (a path, or its bytes) and find its depthwise convolutions.

    Raises `ModelError` (one line) for anything that is not a valid TFLite model, for a
    depthwise op whose tensors disagree with its options, and, with
    `require_depthwise`, for a model with no DEPTHWISE_CONV_2D op at all.
    """
    data = _load(source)
    try:
        return _parse(data, require_depthwise)
    except _Malformed as e:
        raise ModelError(_one_line(f"malformed TFLite file: {e}")) from None
    except _Bad as e:
        raise ModelError(_one_line(str(e))) from None
    except DwgenError as e:
        raise ModelError(_one_line(str(e))) from None
    except RecursionError:
        raise ModelError("malformed TFLite file: structure nested too deeply") from None
    except MemoryError:
        raise ModelError("malformed TFLite file: it claims more memory than is available") from None
    except Exception as e:  # defensive: any other failure on malformed data
        raise ModelError(_one_line(f"malformed TFLite file ({type(e).__name__}: {e})")) from None


def _one_line(msg: str) -> str:
    msg = " ".join(msg.split())
    return msg if len(msg) <= 400 else msg[:397] + "..."


def _load(source: Any) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        try:
            size = os.path.getsize(path)
            if size > MAX_FILE_BYTES:
                raise ModelError(
                    f"{_show(str(path), 200)} is {size} bytes: dwgen reads models up to {MAX_FILE_BYTES} bytes"
                )
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise ModelError(_one_line(f"cannot read {_show(str(path), 200)}: {e.strerror or e}")) from None
    else:
        raise ModelError(f"read_model takes a path or bytes, not {type(source).__name__}")
    if len(data) < 8:
        raise ModelError(f"not a TFLite model: {len(data)} bytes is too short for a flatbuffer header")
    ident = data[4:8]
    if ident != FILE_IDENTIFIER:
        raise ModelError(f"not a TFLite model: the file identifier is {ident!r}, expected b'TFL3'")
    return data


def _parse(data: bytes, require_depthwise: bool) -> Model:
    r = _Reader(data)
    root = r.table(r.read(_U32, 0, "root offset"), "model")
    version = root.scalar(0, _U32, 0)
    if version != SCHEMA_VERSION:
        raise _Bad(f"model schema version is {version}: TFLite reads version {SCHEMA_VERSION}")
    description = root.string(3, "model description") or ""
    opcodes = []
    for i, t in enumerate(root.tables(1, "operator code")):
        what = f"operator code {i}"
        dep = t.scalar(0, _I8, 0)
        builtin = t.scalar(3, _I32, 0)
        custom = t.string(1, what)
        ver = t.scalar(2, _I32, 1)
        opcodes.append((max(dep, builtin), custom, ver))
    buffers = _buffers(r, root)
    parsed = [_subgraph(r, i, t, opcodes) for i, t in enumerate(root.tables(2, "subgraph"))]
    if not parsed:
        raise _Bad("the model has no subgraph")
    subgraphs = tuple(sg for sg, _ in parsed)

    n_dw = sum(op.code == DEPTHWISE_CONV_2D for sg in subgraphs for op in sg.operators)
    if n_dw > MAX_DEPTHWISE_OPS:
        raise _Bad(f"the model has {n_dw} DEPTHWISE_CONV_2D ops: dwgen reads models with up to {MAX_DEPTHWISE_OPS}")
    depthwise: list[DepthwiseOp] = []
    unsupported: list[UnsupportedOp] = []
    for sg, op_tables in parsed:
        if not any(op.code == DEPTHWISE_CONV_2D for op in sg.operators):
            continue
        graph = _Graph(r, buffers, sg, op_tables)
        for op in sg.operators:
            if op.code != DEPTHWISE_CONV_2D:
                continue
            res = graph.depthwise(op)
            (depthwise if isinstance(res, DepthwiseOp) else unsupported).append(res)
    if require_depthwise and not depthwise and not unsupported:
        present = sorted({op.name for sg in subgraphs for op in sg.operators})
        listed = ", ".join(present[:8]) + (", ..." if len(present) > 8 else "")
        raise _Bad(
            "the model has no DEPTHWISE_CONV_2D op"
            + (f" (its ops: {listed})" if present else " (it has no ops)")
        )
    depthwise = _assign_c_names(depthwise)
    return Model(
        version=version, description=description, size=len(data), subgraphs=subgraphs,
        depthwise=depthwise, unsupported=unsupported, _data=data, _buffers=buffers,
    )


def _buffers(r: _Reader, root: _Table) -> tuple[tuple[int, int] | None, ...]:
    out: list[tuple[int, int] | None] = []
    for i, t in enumerate(root.tables(4, "buffer")):
        what = f"buffer {i}"
        offset = t.scalar(1, _U64, 0)
        size = t.scalar(2, _U64, 0)
        if offset > 1:  # data outside the flatbuffer (models > 2 GB); 1 is a placeholder
            if offset + size > r.size:
                raise _Malformed(
                    f"{what} points at bytes {offset}..{offset + size} outside the file ({r.size} bytes)"
                )
            out.append((offset, size))
            continue
        v = t.vector(0, 1, what)
        out.append(None if v is None else v)
    return tuple(out)


def _subgraph(r: _Reader, index: int, t: _Table, opcodes: list) -> tuple[Subgraph, list[_Table]]:
    where = f"subgraph {index}"
    tensors = tuple(_tensor(index, j, tt) for j, tt in enumerate(t.tables(0, f"{where} tensor")))
    n = len(tensors)

    def indices(vals: tuple | None, what: str, optional: bool) -> tuple[int, ...]:
        if not vals:
            return ()
        lo = -1 if optional else 0
        if min(vals) < lo or max(vals) >= n:
            v = next(v for v in vals if v >= n or v < lo)
            raise _Malformed(f"{what} refers to tensor {v} but the subgraph has {n} tensors")
        return vals

    ins = indices(t.values(1, "<i4", f"{where} inputs"), f"{where} inputs", False)
    outs = indices(t.values(2, "<i4", f"{where} outputs"), f"{where} outputs", False)
    ops = []
    op_tables = t.tables(3, f"{where} operator")
    for k, ot in enumerate(op_tables):
        what = f"{where} op {k}" if index else f"op {k}"
        oi = ot.scalar(0, _U32, 0)
        if oi >= len(opcodes):
            raise _Malformed(f"{what} uses operator code {oi} but the model has {len(opcodes)}")
        code, custom, ver = opcodes[oi]
        name = op_name(code)
        op_ins = indices(ot.values(1, "<i4", f"{what} inputs"), f"{what} ({name}) input", True)
        op_outs = indices(ot.values(2, "<i4", f"{what} outputs"), f"{what} ({name}) output", True)
        ops.append(OpInfo(
            subgraph=index, index=k, code=code, custom_code=custom, version=ver,
            inputs=op_ins, outputs=op_outs, options_type=ot.scalar(3, _U8, 0),
        ))
    sg = Subgraph(
        index=index, name=t.string(4, f"{where} name") or "", tensors=tensors,
        operators=tuple(ops), inputs=ins, outputs=outs,
    )
    return sg, op_tables


def _tensor(sg: int, j: int, t: _Table) -> TensorInfo:
    what = f"subgraph {sg} tensor {j}" if sg else f"tensor {j}"
    shape = t.values(0, "<i4", f"{what} shape")
    sig = t.values(7, "<i4", f"{what} shape signature")
    q = t.table(4, f"{what} quantization")
    scale: tuple[float, ...] = ()
    zp: tuple[int, ...] = ()
    qdim = 0
    name = t.string(3, f"{what} name") or ""
    shape = shape or ()
    if q is not None:
        scale = q.values(2, "<f4", f"{what} scales") or ()
        z = q.values(3, "<i8", f"{what} zero points")
        zp = z or ()
        qdim = q.scalar(6, _I32, 0)
        if scale:
            _check_quantization(f"{what} {_show(name)}", shape, scale, z, qdim)
    return TensorInfo(
        subgraph=sg, index=j,
        name=name,
        shape=shape,
        shape_signature=sig,
        type_code=t.scalar(1, _I8, 0),
        buffer=t.scalar(2, _U32, 0),
        scale=scale, zero_point=zp, quantized_dimension=qdim,
        sparse=t._off(6, 4) != 0,
    )


def _check_quantization(who: str, shape: tuple, scale: tuple, zp: tuple | None, qdim: int) -> None:
    """Refuse the quantization parameters TFLite refuses when it loads a model.

    TFLite's interpreter rejects the whole model (before running anything) when a tensor
    has scales but no zero points, a different number of each, a quantized dimension
    outside its rank, or more than one scale but not one per index of that dimension.
    dwgen reports the same files, so `dwgen check` never hands TFLite a model it refuses
    and `inspect`/`emit` do not accept what no interpreter can run. Rank-0 tensors have no
    dimension to check, as in TFLite.
    """
    ns = len(scale)
    if zp is None:
        raise _Bad(f"{who} has {ns} scales but no zero points: TFLite refuses to load quantization without zero points")
    if len(zp) != ns:
        raise _Bad(
            f"{who} has {ns} scales but {len(zp)} zero points: TFLite refuses to load quantization "
            "whose scale and zero point counts differ"
        )
    rank = len(shape)
    if rank == 0:
        return
    if not 0 <= qdim < rank:
        raise _Bad(
            f"{who} is quantized along dimension {qdim} but has rank {rank}: TFLite refuses to load a "
            f"quantized dimension outside [0, {rank})"
        )
    if ns != 1 and ns != shape[qdim]:
        raise _Bad(
            f"{who} has {ns} scales along dimension {qdim} of its shape {list(shape)}: "
            f"TFLite loads 1 (per tensor) or {shape[qdim]} (one per index of that dimension)"
        )


# -- depthwise ops and the patterns around them ---------------------------------------------
_ADD, _RELU, _RELU_N1_TO_1, _RELU6 = 0, 19, 20, 21
# What analysing one depthwise op costs beyond its names and weights, in decoded values.
_OP_COST = 64
# (rank, data_format) of the layouts a user layer can have besides plain NHWC.
_LAYOUTS = {
    "nwc": (1, CHANNELS_LAST),
    "ncw": (1, CHANNELS_FIRST),
    "nchw": (2, CHANNELS_FIRST),
}


@dataclass(frozen=True)
class _Core:
    """The op itself, or SPACE_TO_BATCH_ND -> op -> BATCH_TO_SPACE_ND around it."""

    inner_in: int  # the tensor the user layer's input is (NHWC)
    inner_out: int
    first: int  # the op that consumes inner_in
    last: int  # the op that produces inner_out
    pre: tuple[int, ...] = ()
    post: tuple[int, ...] = ()
    dilation: tuple[int, int] | None = None
    padding: str | None = None
    runtime_batch: int | None = None
    kernel_h: int = 0


def _user_shape(layout: str, nhwc: tuple[int, ...]) -> tuple[int, ...]:
    n, h, w, c = nhwc
    if layout == "nchw":
        return (n, c, h, w)
    if h != 1:
        raise ValueError("a 1-D layer has H == 1")
    return (n, w, c) if layout == "nwc" else (n, c, w)


def _expect_pre(layout: str, a: np.ndarray) -> np.ndarray | None:
    """The NHWC array a user-layout array `a` becomes (None if the rank does not fit)."""
    if layout == "nchw":
        return a.transpose(0, 2, 3, 1) if a.ndim == 4 else None
    if a.ndim != 3:
        return None
    if layout == "ncw":
        a = a.transpose(0, 2, 1)
    n, w, c = a.shape
    return a.reshape(n, 1, w, c)


def _expect_post(layout: str, b: np.ndarray) -> np.ndarray | None:
    """The user-layout array an NHWC result `b` is (None if it cannot be)."""
    if layout == "nchw":
        return b.transpose(0, 3, 1, 2)
    n, h, w, c = b.shape
    if h != 1:
        return None
    b = b.reshape(n, w, c)
    return b.transpose(0, 2, 1) if layout == "ncw" else b


class _Graph:
    """One subgraph: producers/consumers, and the analysis of its depthwise ops."""

    def __init__(self, r: _Reader, buffers: tuple, sg: Subgraph, op_tables: list[_Table]):
        self.r, self.data, self.buffers, self.sg, self.op_tables = r, r.data, buffers, sg, op_tables
        self.T = sg.tensors
        self.ops = sg.operators
        self.producer: dict[int, int] = {}
        self.consumers: dict[int, list[int]] = {}
        for op in sg.operators:
            for t in op.outputs:
                if t >= 0:
                    self.producer[t] = op.index
            for t in dict.fromkeys(op.inputs):
                if t >= 0:
                    self.consumers.setdefault(t, []).append(op.index)
        self.graph_outputs = set(sg.outputs)
        self.cores: dict[int, _Core | None] = {}
        # op -> {layout: (tensor holding the user-layout data or None, layout op indices)}
        self.entries: dict[int, dict[str, tuple[int | None, tuple[int, ...]]]] = {}
        self.exits: dict[int, dict[str, tuple[int | None, tuple[int, ...]]]] = {}
        dw = [op for op in sg.operators if op.code == DEPTHWISE_CONV_2D]
        for op in dw:
            self.cores[op.index] = self._safe(self._core, op)
        for op in dw:  # forward: layouts flow from earlier ops
            self.entries[op.index] = self._safe(self._entry, op) or {}
        for op in reversed(dw):  # backward: ... and from later ops
            self.exits[op.index] = self._safe(self._exit, op) or {}

    @staticmethod
    def _safe(fn, *args):
        """Pattern recognition is best effort: malformed neighbours mean 'no pattern'."""
        try:
            return fn(*args)
        except (_Bad, DwgenError, ValueError, TypeError, IndexError, KeyError, OverflowError,
                ZeroDivisionError, struct.error, MemoryError):
            return None

    # -- small helpers ---------------------------------------------------------------------
    def where(self, op: OpInfo) -> str:
        s = f"op {op.index} ({op.name})"
        return f"subgraph {op.subgraph} {s}" if op.subgraph else s

    def tname(self, role: str, t: TensorInfo) -> str:
        return f"{role} tensor {t.index} {_show(t.name)}"

    def const(self, index: int) -> np.ndarray | None:
        if index < 0:
            return None
        return _tensor_array(self.data, self.buffers, self.T[index])

    def const_ints(self, index: int, shape: tuple[int, ...]) -> np.ndarray | None:
        """A small int32/int64 constant of exactly `shape` (anything else: None, unread)."""
        t = self.T[index] if index >= 0 else None
        if t is None or t.dtype not in ("int32", "int64") or t.shape != shape:
            return None
        a = self.const(index)
        return None if a is None else a.astype(np.int64)

    def only_consumer(self, t: int, op_index: int) -> bool:
        return t not in self.graph_outputs and self.consumers.get(t) == [op_index]

    def same_quant(self, a: TensorInfo, b: TensorInfo) -> bool:
        return (a.type_code, a.scale, a.zero_point) == (b.type_code, b.scale, b.zero_point)

    def options(self, op: OpInfo) -> _Table | None:
        if op.options_type != _OPT_DEPTHWISE:
            return None
        return self.op_tables[op.index].table(4, f"{self.where(op)} options")

    def valid_shape(self, t: TensorInfo) -> bool:
        return 0 < len(t.shape) <= MAX_RANK and all(d > 0 for d in t.shape) and t.num_elements <= MAX_TENSOR_ELEMENTS

    # -- SPACE_TO_BATCH_ND -> op -> BATCH_TO_SPACE_ND ----------------------------------------
    def _core(self, op: OpInfo) -> _Core:
        x_i, y_i = op.inputs[0], op.outputs[0]
        f = self.T[op.inputs[1]]
        kh = f.shape[1] if len(f.shape) == 4 else 0
        plain = _Core(inner_in=x_i, inner_out=y_i, first=op.index, last=op.index, kernel_h=kh)
        p, c = self.producer.get(x_i), self.consumers.get(y_i, [])
        if p is None or len(c) != 1:
            return plain
        stb, bts = self.ops[p], self.ops[c[0]]
        if stb.code != _SPACE_TO_BATCH_ND or bts.code != _BATCH_TO_SPACE_ND:
            return plain
        if len(stb.inputs) < 3 or len(bts.inputs) < 3 or bts.inputs[0] != y_i or not stb.outputs or not bts.outputs:
            return plain
        if not (self.only_consumer(x_i, op.index) and self.only_consumer(y_i, bts.index)):
            return plain
        opt = self.options(op)
        if opt is None:
            return plain
        if (opt.scalar(0, _I8, 0), opt.scalar(1, _I32, 0), opt.scalar(2, _I32, 0),
                opt.scalar(5, _I32, 1), opt.scalar(6, _I32, 1)) != (1, 1, 1, 1, 1):
            return plain  # the inner op must be VALID, stride 1, no dilation
        block = self.const_ints(stb.inputs[1], (2,))
        pads = self.const_ints(stb.inputs[2], (2, 2))
        block2 = self.const_ints(bts.inputs[1], (2,))
        crops = self.const_ints(bts.inputs[2], (2, 2))
        if any(a is None for a in (block, pads, block2, crops)):
            return plain
        if not np.array_equal(block, block2) or block.min() < 1 or pads.min() < 0 or crops.min() < 0:
            return plain
        x, z = self.T[stb.inputs[0]], self.T[bts.outputs[0]]
        if len(x.shape) != 4 or len(z.shape) != 4 or not (self.valid_shape(x) and self.valid_shape(z)):
            return plain
        if not (self.same_quant(x, self.T[x_i]) and self.same_quant(z, self.T[y_i])):
            return plain
        bh, bw = int(block[0]), int(block[1])
        (pt, pb), (pl, pr) = (int(v) for v in pads[0]), (int(v) for v in pads[1])
        (ct, cb), (cl, cr) = (int(v) for v in crops[0]), (int(v) for v in crops[1])
        n, h, w, ch = x.shape
        hp, wp = h + pt + pb, w + pl + pr
        if hp % bh or wp % bw or len(f.shape) != 4:
            return plain
        inner = self.T[x_i]
        if len(inner.shape) != 4 or tuple(inner.shape[1:]) != (hp // bh, wp // bw, ch):
            return plain
        kw = f.shape[2]
        eff_h, eff_w = (kh - 1) * bh + 1, (kw - 1) * bw + 1
        out_h, out_w = hp - eff_h + 1 - ct - cb, wp - eff_w + 1 - cl - cr
        if (out_h, out_w) != tuple(z.shape[1:3]) or out_h <= 0 or out_w <= 0:
            return plain
        padding = None
        for cand in ("valid", "same"):
            try:
                g = DepthwiseLayer((kh, kw), padding=cand, dilation_rate=(bh, bw)).geometry((n, h, w, ch))
            except DwgenError:
                continue
            if (g.out_h, g.out_w, g.pad_top, g.pad_left) == (out_h, out_w, pt - ct, pl - cl):
                padding = cand
                break
        if padding is None:
            return plain
        return _Core(
            inner_in=x.index, inner_out=z.index, first=stb.index, last=bts.index,
            pre=(stb.index,), post=(bts.index,), dilation=(bh, bw), padding=padding,
            runtime_batch=n * bh * bw, kernel_h=kh,
        )

    # -- layout ops around the core ----------------------------------------------------------
    def _spend(self, n: int) -> bool:
        if n > _SIM_LIMIT or n > self.r.sim_budget:
            return False
        self.r.sim_budget -= n
        return True

    def _apply(self, op: OpInfo, arr: np.ndarray) -> np.ndarray | None:
        out = self.T[op.outputs[0]]
        if not self.valid_shape(out) or not self._spend(arr.size):
            return None
        if op.code == _TRANSPOSE:
            if len(op.inputs) < 2:
                return None
            perm = self.const_ints(op.inputs[1], (arr.ndim,))
            if perm is None or sorted(perm.tolist()) != list(range(arr.ndim)):
                return None
            res = arr.transpose([int(v) for v in perm])
        else:
            if math.prod(out.shape) != arr.size:
                return None
            res = arr.reshape(out.shape)
        return res if res.shape == tuple(out.shape) else None

    def _entry(self, op: OpInfo) -> dict[str, tuple[int, tuple[int, ...]]]:
        core = self.cores.get(op.index)
        if core is None:
            return {}
        t_i = core.inner_in
        t = self.T[t_i]
        found: dict[str, tuple[int, tuple[int, ...]]] = {}
        # Direct: layout ops feeding the core.
        chain: list[int] = []
        cur, consumer = t_i, core.first
        for _ in range(3):
            p = self.producer.get(cur)
            if p is None or p >= consumer:
                break
            pop = self.ops[p]
            if pop.code not in _LAYOUT_OPS or not pop.inputs or pop.inputs[0] < 0 or pop.outputs[:1] != (cur,):
                break
            # A layout op may feed several layers (the converter shares one TRANSPOSE
            # between all channels_first layers reading the same tensor).
            chain.append(p)
            cur, consumer = pop.inputs[0], p
        for k in range(len(chain), 0, -1):
            ops = [self.ops[i] for i in reversed(chain[:k])]  # outermost first
            origin = self.T[ops[0].inputs[0]]
            if not self.valid_shape(origin) or not self._spend(origin.num_elements):
                continue
            if not all(self.same_quant(self.T[o.outputs[0]], t) for o in ops) or not self.same_quant(origin, t):
                continue
            a = np.arange(origin.num_elements, dtype=np.int64).reshape(origin.shape)
            sim = a
            for o in ops:
                sim = self._apply(o, sim)
                if sim is None:
                    break
            if sim is None:
                continue
            for layout in _LAYOUTS:
                if layout in found:
                    continue
                exp = _expect_pre(layout, a)
                if exp is not None and exp.shape == sim.shape and np.array_equal(exp, sim):
                    found[layout] = (origin.index, tuple(o.index for o in ops))
        # Bridged: an earlier depthwise layer of the same layout feeds this one directly
        # (the converter drops the RESHAPE or TRANSPOSE pair between consecutive layers).
        p = self.producer.get(t_i)
        if p is not None and p < core.first and self.ops[p].code == DEPTHWISE_CONV_2D:
            pcore = self.cores.get(p)
            if pcore is not None and pcore.inner_out == t_i and len(t.shape) == 4:
                for layout in self.entries.get(p, {}):
                    if layout in found or not self._bridge_ok(layout, pcore, t):
                        continue
                    found[layout] = (t_i if layout == "nwc" else None, ())
        return found

    def _bridge_ok(self, layout: str, core: _Core, t: TensorInfo) -> bool:
        """Can a layer of `layout` (with this core) pass `t` on to the next layer?"""
        if layout == "nchw":
            return True
        return core.kernel_h == 1 and t.shape[1] == 1 and self.T[core.inner_in].shape[1:2] == (1,)

    def _exit(self, op: OpInfo) -> dict[str, tuple[int, tuple[int, ...]]]:
        core = self.cores.get(op.index)
        if core is None:
            return {}
        t_i = core.inner_out
        t = self.T[t_i]
        if len(t.shape) != 4 or not self.valid_shape(t) or not self._spend(t.num_elements):
            return {}
        found: dict[str, tuple[int, tuple[int, ...]]] = {}
        chain: list[int] = []
        cur, producer = t_i, core.last
        for _ in range(3):
            c = self.consumers.get(cur, [])
            if len(c) != 1 or c[0] <= producer or cur in self.graph_outputs:
                break
            cop = self.ops[c[0]]
            if cop.code not in _LAYOUT_OPS or not cop.inputs or cop.inputs[0] != cur or len(cop.outputs) != 1 or cop.outputs[0] < 0:
                break
            chain.append(c[0])
            cur, producer = cop.outputs[0], c[0]
        b = np.arange(t.num_elements, dtype=np.int64).reshape(t.shape)
        for k in range(len(chain), 0, -1):
            ops = [self.ops[i] for i in chain[:k]]
            if not all(self.same_quant(self.T[o.outputs[0]], t) for o in ops):
                continue
            sim = b
            for o in ops:
                sim = self._apply(o, sim)
                if sim is None:
                    break
            if sim is None:
                continue
            for layout in _LAYOUTS:
                if layout in found:
                    continue
                exp = _expect_post(layout, b)
                if exp is not None and exp.shape == sim.shape and np.array_equal(exp, sim):
                    found[layout] = (ops[-1].outputs[0], tuple(o.index for o in ops))
        c = self.consumers.get(t_i, [])
        if len(c) == 1 and t_i not in self.graph_outputs and c[0] > core.last \
                and self.ops[c[0]].code == DEPTHWISE_CONV_2D:
            ccore = self.cores.get(c[0])
            if ccore is not None and ccore.inner_in == t_i:
                for layout in self.exits.get(c[0], {}):
                    if layout in found or not self._bridge_ok(layout, core, t):
                        continue
                    found[layout] = (t_i if layout == "nwc" else None, ())
        return found

    # -- one depthwise op --------------------------------------------------------------------
    def depthwise(self, op: OpInfo) -> DepthwiseOp | UnsupportedOp:
        where = self.where(op)
        try:
            return self._depthwise(op)
        except _Malformed as e:
            raise _Malformed(f"{where}: {e}") from None
        except (_Bad, DwgenError) as e:
            raise _Bad(f"{where}: {e}") from None
        except (ValueError, TypeError, IndexError, KeyError, OverflowError, ZeroDivisionError,
                struct.error) as e:
            raise _Malformed(f"{where}: {type(e).__name__}: {e}") from None

    def _unsupported(self, op: OpInfo, reason: str) -> UnsupportedOp:
        def tensor(k: int) -> TensorInfo | None:
            if len(op.inputs) > k and op.inputs[k] >= 0:
                return self.T[op.inputs[k]]
            return None

        x, f = tensor(0), tensor(1)
        y = self.T[op.outputs[0]] if op.outputs and op.outputs[0] >= 0 else None
        return UnsupportedOp(
            subgraph=op.subgraph, index=op.index, op=op.name, version=op.version,
            input=x and x.index, output=y and y.index, filter=f and f.index,
            input_name=x and x.name, output_name=y and y.name, filter_name=f and f.name,
            reason=reason,
        )

    @staticmethod
    def _type_reason(x: TensorInfo, f: TensorInfo, y: TensorInfo) -> str | None:
        xt, ft, yt = x.dtype, f.dtype, y.dtype
        if xt in ("float32", "float16", "bfloat16", "float64"):
            if ft in ("int8", "uint8", "int4"):
                return f"hybrid quantization ({xt} activations, {ft} weights): dwgen generates int8 kernels"
            return f"{xt} model (not quantized): dwgen generates int8 kernels; convert with full-integer quantization"
        if xt == "int16":
            return f"int16x8 quantization (int16 activations, {ft} weights): dwgen generates int8 kernels"
        if xt == "uint8":
            return "uint8 quantization (legacy asymmetric): dwgen generates int8 kernels; convert with inference_input_type=tf.int8"
        if xt != "int8":
            return f"{xt} activations: dwgen generates int8 kernels"
        if ft == "int4":
            return "int4 weights (two per byte): dwgen generates kernels for int8 weights"
        if ft != "int8":
            return f"{ft} weights with int8 activations: dwgen needs int8 weights"
        if yt != "int8":
            return f"int8 input but {yt} output: dwgen needs int8 in and out"
        if f.sparse:
            return "sparse (compressed) filter: dwgen needs dense int8 weights"
        return None

    def _checked(self, role: str, t: TensorInfo, rank: int | None) -> None:
        try:
            _check_shape(t)
        except _Bad as e:
            raise _Bad(f"{self.tname(role, t)} {e}") from None
        if rank is not None and len(t.shape) != rank:
            raise _Bad(f"{self.tname(role, t)} has shape {list(t.shape)}: it must have rank {rank}")

    def _activation_q(self, role: str, t: TensorInfo) -> tuple[float, int]:
        if not t.scale or not t.zero_point:
            raise _Bad(f"{self.tname(role, t)} is {t.dtype} without quantization parameters (scale, zero point)")
        if len(t.scale) != 1 or len(t.zero_point) != 1:
            raise _Bad(
                f"{self.tname(role, t)} has {len(t.scale)} scales and {len(t.zero_point)} zero points: "
                "activations are quantized per tensor (one each)"
            )
        return t.scale[0], t.zero_point[0]

    def _depthwise(self, op: OpInfo) -> DepthwiseOp | UnsupportedOp:
        ins, outs = op.inputs, op.outputs
        if len(ins) not in (2, 3) or ins[0] < 0 or ins[1] < 0:
            raise _Bad(f"has inputs {list(ins)}: it needs input, filter and optionally bias tensors")
        if len(outs) != 1 or outs[0] < 0:
            raise _Bad(f"has outputs {list(outs)}: it needs exactly one output tensor")
        x, f, y = self.T[ins[0]], self.T[ins[1]], self.T[outs[0]]
        b = self.T[ins[2]] if len(ins) == 3 and ins[2] >= 0 else None
        # Names are copied into the result and weights read per op, also when several ops
        # share one table: every op pays for them.
        self.r.charge(_OP_COST + sum(len(t.name) for t in (x, f, y, b) if t is not None), "its tensor names")
        reason = self._type_reason(x, f, y)
        if reason:
            return self._unsupported(op, reason)
        if b is not None and b.dtype != "int32":
            raise _Bad(f"{self.tname('bias', b)} has type {b.dtype}: an int8 depthwise op takes an int32 bias")

        # options
        if op.options_type != _OPT_DEPTHWISE:
            raise _Bad(f"has builtin options of type {op.options_type}: it needs DepthwiseConv2DOptions")
        opt = self.options(op)
        if opt is None:
            raise _Bad("has no DepthwiseConv2DOptions")
        pad_code = opt.scalar(0, _I8, 0)
        sw, sh = opt.scalar(1, _I32, 0), opt.scalar(2, _I32, 0)
        stored_m = opt.scalar(3, _I32, 0)
        act_code = opt.scalar(4, _I8, 0)
        dw, dh = opt.scalar(5, _I32, 1), opt.scalar(6, _I32, 1)
        if pad_code not in _PADDINGS:
            raise _Bad(f"has padding code {pad_code}: TFLite knows SAME (0) and VALID (1)")
        padding = _PADDINGS[pad_code]
        if sh < 1 or sw < 1:
            raise _Bad(f"has stride {sh}x{sw} (height x width): strides must be at least 1")
        if dh < 1 or dw < 1:
            raise _Bad(f"has dilation {dh}x{dw} (height x width): dilation factors must be at least 1")
        if act_code not in _ACTIVATIONS:
            raise _Bad(f"has fused activation code {act_code}: TFLite knows 0..5")
        activation = _ACTIVATIONS[act_code]
        if activation in ("tanh", "sign_bit"):
            return self._unsupported(
                op, f"fused activation {activation.upper()} cannot be applied by an int8 kernel "
                "(supported: NONE, RELU, RELU6, RELU_N1_TO_1)",
            )

        # shapes
        self._checked("input", x, 4)
        self._checked("filter", f, 4)
        self._checked("output", y, 4)
        if b is not None:
            self._checked("bias", b, None)
        self.r.charge(f.num_elements + (0 if b is None else b.num_elements), "its weights and bias")
        n, h, w, c = x.shape
        one, kh, kw, oc = f.shape
        if one != 1:
            raise _Bad(f"{self.tname('filter', f)} has shape {list(f.shape)}: a depthwise filter is [1, kh, kw, C*M]")
        for axis, kk, d_ in (("height", kh, dh), ("width", kw, dw)):
            span = (kk - 1) * d_ + 1
            if span > MAX_KERNEL_SPAN:
                raise _Bad(
                    f"has a kernel spanning {span} pixels in {axis} (kernel {kk}, dilation "
                    f"{d_}): dwgen accepts up to {MAX_KERNEL_SPAN}"
                )
        if oc % c:
            raise _Bad(
                f"{self.tname('filter', f)} has {oc} output channels, not a multiple of the "
                f"input's {c} channels"
            )
        m = oc // c
        if b is not None and b.num_elements != oc:
            raise _Bad(f"{self.tname('bias', b)} has {b.num_elements} elements: it needs {oc} (one per output channel)")
        notes: list[str] = []
        if stored_m != m:
            notes.append(
                f"the options store depth_multiplier={stored_m}; TFLite derives {m} from the "
                f"channels ({oc}/{c}) and dwgen does too (TFLite Micro reads the stored value)"
            )
        core = self.cores.get(op.index)
        batch = n
        if core is not None and core.runtime_batch is not None:
            batch = core.runtime_batch
            if batch != n:
                notes.append(
                    f"the stored batch {n} of the SPACE_TO_BATCH_ND result is a converter placeholder: "
                    f"TFLite runs this op on batch {batch}"
                )
        layer = DepthwiseLayer(
            kernel_size=(kh, kw), strides=(sh, sw), padding=padding, depth_multiplier=m,
            dilation_rate=(dh, dw), activation=activation, use_bias=b is not None,
        )
        try:
            g = layer.geometry((batch, h, w, c))
        except LayerSizeError as e:
            return self._unsupported(op, str(e))  # valid TFLite, beyond dwgen's 32-bit indexing
        except DwgenError as e:
            raise _Bad(f"{self.tname('input', x)} of shape {list(x.shape)} does not fit the options: {e}") from None
        expected = (batch, g.out_h, g.out_w, oc)
        stored = tuple(y.shape)
        if stored != expected and not (batch != n and stored == (n,) + expected[1:]):
            raise _Bad(
                f"{self.tname('output', y)} has shape {list(stored)} but the options give "
                f"{list(expected)} ({kh}x{kw} kernel, stride {sh}x{sw}, dilation {dh}x{dw}, "
                f"{padding.upper()} padding on a {h}x{w}x{c} input)"
            )

        # quantization
        in_s, in_zp = self._activation_q("input", x)
        out_s, out_zp = self._activation_q("output", y)
        ns = len(f.scale)
        if ns == 0:
            raise _Bad(f"{self.tname('filter', f)} is int8 without quantization parameters (scales)")
        if ns not in (1, oc):
            raise _Bad(
                f"{self.tname('filter', f)} has {ns} scales: it needs 1 (per tensor) or {oc} "
                "(one per output channel)"
            )
        if ns > 1 and f.quantized_dimension != 3:
            raise _Bad(
                f"{self.tname('filter', f)} is quantized along dimension {f.quantized_dimension}: "
                "per-channel depthwise weights are quantized along dimension 3"
            )
        # (_check_quantization has made the zero points as many as the scales)
        bad_zp = [z for z in f.zero_point if z != 0]
        if bad_zp:
            raise _Bad(
                f"{self.tname('filter', f)} has weight zero point {bad_zp[0]}: int8 weights are "
                "symmetric, every weight zero point must be 0"
            )
        try:
            quant = Quantization.from_scales(in_s, in_zp, f.scale, out_s, out_zp, oc)
        except EffectiveScaleError as e:
            # A well-formed model whose numbers TFLite's kernel cannot requantize without
            # overflow: the op is listed, the rest of the model is still usable.
            return self._unsupported(op, str(e))
        except DwgenError as e:
            raise _Bad(f"bad quantization: {e}") from None

        # constant data
        try:
            weights = _tensor_array(self.data, self.buffers, f)
        except _Bad as e:
            raise type(e)(f"{self.tname('filter', f)} {e}") from None
        if weights is None:
            return self._unsupported(op, "the filter is not a constant tensor (computed at run time): dwgen bakes the weights in")
        bias = None
        if b is not None:
            try:
                bias = _tensor_array(self.data, self.buffers, b)
            except _Bad as e:
                raise type(e)(f"{self.tname('bias', b)} {e}") from None
            if bias is None:
                return self._unsupported(op, "the bias is not a constant tensor (computed at run time): dwgen bakes it in")
            bias = bias.reshape(oc)
        try:
            qlayer = QuantizedLayer.create(layer, (batch, h, w, c), quant, weights.reshape(kh, kw, oc), bias)
        except DwgenError as e:
            raise _Bad(str(e)) from None

        pattern, pre, post, user_layer, user_in, user_out, user_shape = self._pattern(op, qlayer, core)
        user_q = qlayer
        if user_layer is not qlayer.layer:
            try:
                user_q = QuantizedLayer.create(user_layer, user_shape, quant, qlayer.weights, qlayer.bias)
            except DwgenError:  # pragma: no cover - the pattern checks make this impossible
                pattern, pre, post, user_layer, user_in, user_out = "conv2d", (), (), qlayer.layer, x.index, y.index
        for p in pre:
            # at most 9: the note lists 8 (a tensor may have a consumer per op of the file)
            others = list(itertools.islice(
                (c for c in self.consumers.get(self.ops[p].outputs[0], []) if c not in pre + (op.index,)), 9))
            if others:
                notes.append(
                    f"op {p} ({self.ops[p].name}) also feeds op{'s' if len(others) > 1 else ''} "
                    f"{', '.join(map(str, others[:8]))}{', ...' if len(others) > 8 else ''}: it stays unless those are replaced too"
                )
        if core is not None and core.dilation is not None:
            nxt = self.consumers.get(core.inner_out, [])
            if pattern == "dilated" and len(nxt) == 1 and self.ops[nxt[0]].code in (_ADD, _RELU, _RELU6, _RELU_N1_TO_1):
                notes.append(
                    f"the converter did not fuse the Keras layer's bias/activation: op {nxt[0]} "
                    f"({self.ops[nxt[0]].name}) after the BATCH_TO_SPACE_ND applies it"
                )
        return DepthwiseOp(
            subgraph=op.subgraph, index=op.index, version=op.version,
            input=x.index, output=y.index, filter=f.index, bias=None if b is None else b.index,
            input_name=x.name, output_name=y.name, filter_name=f.name,
            bias_name=None if b is None else b.name, c_name="",
            qlayer=qlayer, pattern=pattern, pre_ops=pre, post_ops=post,
            user_layer=user_layer, user_qlayer=user_q, user_input=user_in, user_output=user_out,
            per_channel=ns > 1, stored_depth_multiplier=stored_m, notes=tuple(notes),
        )

    def _pattern(self, op: OpInfo, ql: QuantizedLayer, core: _Core | None):
        """(pattern, pre_ops, post_ops, user_layer, user_input, user_output, user_input_shape)."""
        g, lay = ql.geometry, ql.layer
        plain = ("conv2d", (), (), lay, op.inputs[0], op.outputs[0], g.input_shape)
        if core is None:
            return plain
        dil = core.dilation is not None
        entries = self.entries.get(op.index, {})
        exits = self.exits.get(op.index, {})
        for layout in ("nwc", "ncw", "nchw"):
            if layout not in entries or layout not in exits:
                continue
            rank, fmt = _LAYOUTS[layout]
            (u_in, pre), (u_out, post) = entries[layout], exits[layout]
            kh, kw = lay.kernel_size
            d = core.dilation if dil else lay.dilation_rate
            s = lay.strides
            if rank == 1:
                if kh != 1:
                    continue
                kh, s, d = 1, (1, s[1]), (1, d[1])
            try:
                user = DepthwiseLayer(
                    kernel_size=(kh, kw), strides=s, padding=core.padding if dil else lay.padding,
                    depth_multiplier=lay.depth_multiplier, data_format=fmt, dilation_rate=d,
                    activation=lay.activation, use_bias=lay.use_bias, rank=rank,
                )
                # Without layout ops the user's tensor is the NHWC one seen in its layout.
                shape = self.T[u_in].shape if pre else _user_shape(layout, self.T[core.inner_in].shape)
                out_shape = self.T[u_out].shape if post else _user_shape(layout, self.T[core.inner_out].shape)
                ug = user.geometry(shape)
                if tuple(ug.output_shape) != tuple(out_shape):
                    continue
            except (DwgenError, IndexError, ValueError):
                continue
            name = "conv1d" if rank == 1 else "channels_first"
            return (name, pre + core.pre, core.post + post, user, u_in, u_out, tuple(shape))
        if dil:
            user = DepthwiseLayer(
                kernel_size=lay.kernel_size, strides=(1, 1), padding=core.padding,
                depth_multiplier=lay.depth_multiplier, dilation_rate=core.dilation,
                activation=lay.activation, use_bias=lay.use_bias,
            )
            x = self.T[core.inner_in]
            try:
                ug = user.geometry(x.shape)
                if tuple(ug.output_shape) == tuple(self.T[core.inner_out].shape):
                    return ("dilated", core.pre, core.post, user, core.inner_in, core.inner_out, tuple(x.shape))
            except DwgenError:
                pass
        return plain


# -- C names ------------------------------------------------------------------------------------
# A converter names a tensor after the TF ops it was fused from, ';'-separated, each a scope
# path: "model/activation_5/Relu;model/batch_normalization_5/FusedBatchNormV3;
# model/depthwise_conv2d_2/depthwise;model/depthwise_conv2d_2/BiasAdd;...". The depthwise
# layer is the scope of the "depthwise" op (TF's DepthwiseConv2dNative); the other parts
# name the layers fused into it (batch norm, activation) or, now and then, an unrelated
# layer whose constant the converter shared ("model/depthwise_conv2d_3/depthwise" in the
# name of op 5 of MLPerf Tiny's VWW, "functional_1/conv2d_4/Conv2D" all over KWS).
#: Path parts that name a TF op or a variable, not a layer (compared without trailing digits).
_OP_PARTS = frozenset(
    "depthwise biasadd relu relu_n1_to_1 relu6 conv2d conv1d squeeze expanddims reshape transpose add "
    "readvariableop resource batchnorm fusedbatchnorm fusedbatchnormv fusedbatchnormv3 mul sub "
    "batchtospacend spacetobatchnd bias identity filter kernel weights weight depthwise_kernel "
    "value values clip_by_value minimum maximum".split()
)
#: Scopes every tensor of a model shares, and the names of a serving signature.
_SCOPE_PARTS = frozenset(
    "model functional sequential statefulpartitionedcall partitionedcall serving_default serving "
    "input output output_0 x y tfl".split()
)
#: Keras' default names of the layers a converter fuses into a depthwise op (or shares a
#: constant with): never the depthwise layer's own name.
_OTHER_LAYERS = frozenset(
    "activation batch_normalization re_lu relu conv2d conv1d dense add multiply dropout flatten "
    "zero_padding2d max_pooling2d average_pooling2d global_average_pooling2d".split()
)


def _stem(part: str) -> str:
    """A path part without its numbering: 'depthwise21' / 'conv2d_4' / 'Relu6' -> 'depthwise' /
    'conv2d' / 'relu'."""
    return part.lower().rstrip("0123456789_")  # (no regex: a hostile name may be a megabyte of digits)


def _parts(name: str) -> list[list[str]]:
    return [[c for c in re.split(r"[/:]", seg) if c] for seg in name.split(";")]


def _depthwise_scopes(names: Sequence[str]) -> list[str]:
    """The scopes of the "depthwise" ops in `names`, the most frequent first (ties: first seen)."""
    seen: dict[str, int] = {}
    count: dict[str, int] = {}
    for name in names:
        for comps in _parts(name):
            for i, c in enumerate(comps):
                if i > 0:
                    count[c] = count.get(c, 0) + 1
                if i > 0 and _stem(c) == "depthwise":
                    scope = comps[i - 1]
                    if _stem(scope) not in _OP_PARTS and not _is_scope(_stem(scope)) and scope not in seen:
                        seen[scope] = len(seen)
    return sorted(seen, key=lambda s: (-count.get(s, 0), seen[s]))


def _layer_part(name: str) -> str:
    """The first path part of `name` that may name a layer: not an op or variable (Relu6,
    BiasAdd, ...), a shared scope (model, functional_1, ...) or a fused layer (activation_3)."""
    for comps in _parts(name):
        for c in reversed(comps):
            st = _stem(c)
            if not st or st in _OP_PARTS:
                continue
            if _is_scope(st) or st in _OTHER_LAYERS:
                break  # an outer scope: this part names no layer of its own
            return c
    return ""


def _fold(raw: str, fallback: str, limit: int, reserve: bool = True) -> str:
    s = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode("ascii").lower()
    s = re.sub(r"[^a-z0-9]+", "_", s).strip("_")
    if not s or _stem(s) in _OP_PARTS or _is_scope(_stem(s)):
        s = fallback
    if not s:
        return ""
    if s[0].isdigit():
        s = "t_" + s
    s = s[:limit].rstrip("_")
    return avoid_reserved(s, limit) if reserve else s


def _is_scope(stem: str) -> bool:
    return stem in _SCOPE_PARTS or stem.startswith("serving_default")


def layer_name(names: Sequence[str], fallback: str = "", limit: int = C_NAME_MAX, reserve: bool = True) -> str:
    """A C identifier for the layer an op's tensor names (output first, then filter) point at.

    The scope of a "depthwise" op wins (the Keras layer: "model/depthwise_conv2d_3/depthwise"
    -> depthwise_conv2d_3), the one named most often when the names hold several; else the
    first path part that is not an op, variable, shared scope or fused layer, output name
    first; else `fallback`. Folded to lowercase ASCII letters, digits and '_', bounded to
    `limit`, never starting with a digit or '_', and renamed the way `dwgen.names` says
    when it refuses the name (a keyword, a C library name, a usual firmware global such as
    `model` or `input`, a dwgen or CMSIS prefix) unless `reserve` is False (a prefix goes
    in front: the whole name is checked then).
    """
    for scope in _depthwise_scopes(names):
        s = _fold(scope, "", limit, reserve)
        if s:
            return s
    for name in names:
        s = _fold(_layer_part(name), "", limit, reserve)
        if s:
            return s
    return _fold("", fallback, limit, reserve) if fallback else ""


def c_identifier(name: str, fallback: str = "dw", limit: int = C_NAME_MAX) -> str:
    """`layer_name` of one tensor name (not yet de-duplicated)."""
    return layer_name([name], fallback, limit)


def _op_label(op: DepthwiseOp) -> str:
    return f"op{op.index}" if op.subgraph == 0 else f"sg{op.subgraph}_op{op.index}"


def assign_c_names(ops: Sequence[DepthwiseOp], prefix: str = "") -> list[DepthwiseOp]:
    """`ops` with their kernel names: `prefix` + the layer's name (`layer_name` of the output,
    then the filter tensor's name), or `prefix` + `dw_op<N>`. Layers sharing a name are told
    apart by their op index (`depthwise_conv2d_op3`, `depthwise_conv2d_op5`), and a name whose
    symbols collide with an earlier one's gets `_2`, `_3`, ...; the names depend only on the
    model (not on an --only selection) and are the same on every run."""
    if prefix:
        check_prefix(prefix)
    limit = C_NAME_MAX - len(prefix)
    bases = [layer_name([op.output_name, op.filter_name], f"dw_{_op_label(op)}", limit, reserve=False)
             for op in ops]
    counts: dict[str, int] = {}
    for b in bases:
        counts[b] = counts.get(b, 0) + 1
    wanted, shared = [], []
    for op, b in zip(ops, bases):
        shared.append(counts[b] > 1)
        if counts[b] > 1:
            suffix = f"_{_op_label(op)}"
            b = b[: limit - len(suffix)].rstrip("_") + suffix
        if prefix and b.startswith("dwgen"):
            b = f"dw_{b}"[:limit].rstrip("_")  # as without a prefix; and <prefix>dwgen_kernels.h stays free
        name = prefix + b
        problem = name_problem(name)
        if problem is not None:
            if prefix and problem.rename != "suffix":
                raise DwgenError(f"--prefix {prefix!r} makes op {op.index}'s kernel name {name!r}, which "
                                 f"{problem.reason}; choose another prefix")
            name = avoid_reserved(name)
        wanted.append(name)
    # A layer's own name goes before a name made with an op index (a layer really called
    # dw_op1 keeps it), then graph order.
    order = sorted(range(len(ops)), key=lambda i: (shared[i], i))
    names = dict(zip(order, unique_names([wanted[i] for i in order], limit=C_NAME_MAX)))
    return [dataclasses.replace(op, c_name=names[i]) for i, op in enumerate(ops)]


def _assign_c_names(ops: list[DepthwiseOp]) -> list[DepthwiseOp]:
    return assign_c_names(ops)


_C_IDENT = re.compile(r"[a-z][a-z0-9_]*\Z")


def is_c_identifier(s: str) -> bool:
    """True for what `c_name` promises: lowercase ASCII, bounded, a name dwgen.names accepts."""
    return bool(_C_IDENT.match(s)) and len(s) <= C_NAME_MAX and name_problem(s) is None


__all__ = [
    "C_NAME_MAX", "DepthwiseOp", "MAX_KERNEL_SPAN", "MAX_TENSOR_ELEMENTS", "Model", "OpInfo", "Subgraph",
    "TensorInfo", "UnsupportedOp", "assign_c_names", "c_comment_text", "c_identifier",
    "is_c_identifier", "layer_name",
    "op_name", "read_model", "tensor_data",
]
