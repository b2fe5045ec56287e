"""The layer spec: what a depthwise convolution is, independent of numbers.

`DepthwiseConv2D` and `DepthwiseConv1D` take exactly the Keras arguments and apply the
Keras validation rules; `from_keras_config` reads `layer.get_config()` from tf.keras 2.x
or Keras 3; `from_tf_nn` mirrors `tf.nn.depthwise_conv2d`. All of them produce a
`DepthwiseLayer`, which is also what a `.tflite` model reader builds directly (TFLite
allows a few things Keras rejects, such as stride and dilation both above 1).

`DepthwiseLayer.geometry(input_shape)` does shape inference and the TFLite padding
arithmetic; every later stage (reference, oracle, planner, code generator) reads the
resulting `Geometry` rather than recomputing it.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Iterable

from .errors import LayerError, LayerSizeError, show_value

#: Fused activations an int8 kernel can apply (as a clamp), by dwgen's name.
ACTIVATIONS = ("none", "relu", "relu6", "relu_n1_to_1")
#: The spellings Keras users write, mapped to dwgen's names.
KERAS_ACTIVATIONS = {None: "none", "linear": "none", "relu": "relu", "relu6": "relu6"}

#: Bound on the index space of a layer (see `_check_index_space`): half of 2^31, so that a sum
#: of two in-range terms, e.g. a window origin plus a tap offset, also fits a 32-bit int.
MAX_INDEX_SPACE = 1 << 30

CHANNELS_LAST = "channels_last"
CHANNELS_FIRST = "channels_first"

# Keys of a Keras get_config() that only matter for training or bookkeeping.
_TRAINING_ONLY_KEYS = frozenset(
    {
        "name", "trainable", "dtype", "dtype_policy", "autocast",
        "batch_input_shape", "batch_shape", "input_shape", "input_dim",
        "depthwise_initializer", "depthwise_regularizer", "depthwise_constraint",
        "bias_initializer", "bias_regularizer", "bias_constraint",
        "kernel_initializer", "kernel_regularizer", "kernel_constraint",
        "activity_regularizer", "lora_rank", "lora_alpha", "quantization_config",
    }
)


_show = show_value


def _is_positive_int(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, numbers.Integral) and value > 0


def _positive_int(arg: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise LayerError(f"{arg}={_show(value)} is not allowed: it must be a positive integer")
    return int(value)


def _int_pair(arg: str, value: Any) -> tuple[int, int]:
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or not all(_is_positive_int(v) for v in value):
            raise LayerError(
                f"{arg}={_show(value)} is not allowed: give one positive integer or a pair of them"
            )
        return (int(value[0]), int(value[1]))
    n = _positive_int(arg, value)
    return (n, n)


def _int_single(arg: str, value: Any) -> int:
    if isinstance(value, (list, tuple)):
        if len(value) != 1 or not _is_positive_int(value[0]):
            raise LayerError(
                f"{arg}={_show(value)} is not allowed: a 1-D layer takes one positive integer"
            )
        value = value[0]
    return _positive_int(arg, value)


def _padding(value: Any) -> str:
    if not isinstance(value, str):
        raise LayerError(f"padding={_show(value)} is not allowed: use 'valid' or 'same'")
    p = value.lower()
    if p == "causal":
        raise LayerError(
            "padding='causal' is not allowed for a depthwise convolution: use 'valid' or 'same'"
        )
    if p not in ("valid", "same"):
        raise LayerError(f"padding={_show(value)} is not allowed: use 'valid' or 'same'")
    return p


def _data_format(value: Any) -> str:
    if value is None:
        return CHANNELS_LAST
    if isinstance(value, str) and value.lower() in (CHANNELS_LAST, CHANNELS_FIRST):
        return value.lower()
    raise LayerError(
        f"data_format={_show(value)} is not allowed: use 'channels_last' (NHWC, the default) "
        "or 'channels_first' (NCHW)"
    )


def _keras_activation(value: Any) -> str:
    if isinstance(value, dict):  # a serialized Keras object, e.g. {"class_name": "function", ...}
        name = value.get("config", value.get("class_name"))
        value = name if isinstance(name, str) else value
    if isinstance(value, str):
        key = value.lower()
        if key in KERAS_ACTIVATIONS:
            return KERAS_ACTIVATIONS[key]
    elif value is None:
        return "none"
    raise LayerError(
        f"activation={_show(value)} cannot be fused into an int8 depthwise kernel: "
        "supported are None, 'linear', 'relu' and 'relu6'"
    )


@dataclass(frozen=True)
class Geometry:
    """A layer applied to one input shape: every size and offset the math needs.

    Sizes are logical (H, W, C) whatever the data format; a 1-D layer has H == 1.
    """

    batch: int
    in_h: int
    in_w: int
    in_c: int
    out_h: int
    out_w: int
    depth_multiplier: int
    kernel_h: int
    kernel_w: int
    stride_h: int
    stride_w: int
    dilation_h: int
    dilation_w: int
    pad_top: int
    pad_left: int
    pad_bottom: int
    pad_right: int
    data_format: str
    rank: int

    @property
    def out_c(self) -> int:
        return self.in_c * self.depth_multiplier

    @property
    def channels_first(self) -> bool:
        return self.data_format == CHANNELS_FIRST

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The input tensor's shape in the layer's own layout, batch included."""
        return _layout_shape(self.batch, self.in_h, self.in_w, self.in_c, self)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return _layout_shape(self.batch, self.out_h, self.out_w, self.out_c, self)

    @property
    def input_size(self) -> int:
        return self.batch * self.in_h * self.in_w * self.in_c

    @property
    def output_size(self) -> int:
        return self.batch * self.out_h * self.out_w * self.out_c

    @property
    def macs(self) -> int:
        """Multiply-accumulates, padding taps included (the usual convention)."""
        return self.output_size * self.kernel_h * self.kernel_w

    def input_row(self, oy: int, ky: int) -> int:
        return oy * self.stride_h - self.pad_top + ky * self.dilation_h

    def input_col(self, ox: int, kx: int) -> int:
        return ox * self.stride_w - self.pad_left + kx * self.dilation_w


def _layout_shape(n: int, h: int, w: int, c: int, g: Geometry) -> tuple[int, ...]:
    if g.rank == 1:
        return (n, c, w) if g.channels_first else (n, w, c)
    return (n, c, h, w) if g.channels_first else (n, h, w, c)


def output_size(size: int, kernel: int, stride: int, dilation: int, padding: str) -> int:
    """Keras/TFLite output length along one axis (0 or less means 'does not fit')."""
    effective = (kernel - 1) * dilation + 1
    if padding == "same":
        return -(-size // stride)
    return -(-(size - effective + 1) // stride)


def padding_before_after(size: int, out: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TFLite's padding: the odd pixel goes after (bottom/right)."""
    effective = (kernel - 1) * dilation + 1
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


class DepthwiseLayer:
    """A depthwise convolution as TFLite can run it (the most general form dwgen accepts)."""

    def __init__(
        self,
        kernel_size: tuple[int, int],
        strides: tuple[int, int] = (1, 1),
        padding: str = "valid",
        depth_multiplier: int = 1,
        data_format: str | None = None,
        dilation_rate: tuple[int, int] = (1, 1),
        activation: str = "none",
        use_bias: bool = True,
        rank: int = 2,
    ):
        if rank not in (1, 2):
            raise LayerError(f"rank={_show(rank)} is not allowed: use 1 or 2")
        self.rank = rank
        self.kernel_size = _int_pair("kernel_size", kernel_size)
        self.strides = _int_pair("strides", strides)
        self.dilation_rate = _int_pair("dilation_rate", dilation_rate)
        self.padding = _padding(padding)
        self.depth_multiplier = _positive_int("depth_multiplier", depth_multiplier)
        self.data_format = _data_format(data_format)
        if not isinstance(activation, str) or activation not in ACTIVATIONS:
            raise LayerError(
                f"activation={_show(activation)} is not allowed: use one of {', '.join(ACTIVATIONS)}"
            )
        self.activation = activation
        if not isinstance(use_bias, bool):
            raise LayerError(f"use_bias={_show(use_bias)} is not allowed: use True or False")
        self.use_bias = use_bias
        if rank == 1 and (self.kernel_size[0], self.strides[0], self.dilation_rate[0]) != (1, 1, 1):
            raise LayerError(
                f"kernel_size={_show(self.kernel_size)}, strides={_show(self.strides)}, "
                f"dilation_rate={_show(self.dilation_rate)} is not allowed with rank=1: a 1-D layer "
                "has kernel, stride and dilation 1 along H (the first of each pair)"
            )

    # -- identity -----------------------------------------------------------------
    def _key(self) -> tuple:
        return (
            self.rank, self.kernel_size, self.strides, self.dilation_rate, self.padding,
            self.depth_multiplier, self.data_format, self.activation, self.use_bias,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DepthwiseLayer) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        k, s, d = self.kernel_size, self.strides, self.dilation_rate
        if self.rank == 1:
            k, s, d = k[1], s[1], d[1]
        return (
            f"{self.keras_class}(kernel_size={k!r}, strides={s!r}, padding={self.padding!r}, "
            f"depth_multiplier={self.depth_multiplier}, data_format={self.data_format!r}, "
            f"dilation_rate={d!r}, activation={self.activation!r}, use_bias={self.use_bias})"
        )

    @property
    def keras_class(self) -> str:
        return "DepthwiseConv1D" if self.rank == 1 else "DepthwiseConv2D"

    def describe(self) -> dict:
        """A JSON-friendly summary (used in generated headers and reports)."""
        return {
            "class_name": self.keras_class,
            "kernel_size": list(self.kernel_size),
            "strides": list(self.strides),
            "dilation_rate": list(self.dilation_rate),
            "padding": self.padding,
            "depth_multiplier": self.depth_multiplier,
            "data_format": self.data_format,
            "activation": self.activation,
            "use_bias": self.use_bias,
        }

    # -- shape inference --------------------------------------------------------------
    def _split_input_shape(self, input_shape: Iterable[Any]) -> tuple[int, int, int, int]:
        try:
            dims = list(input_shape)
        except TypeError:
            raise LayerError(f"input_shape={_show(input_shape)} is not allowed: give a tuple of sizes") from None
        given = _show(tuple(dims))
        spatial = 1 if self.rank == 1 else 2
        if len(dims) == spatial + 1:  # Keras style, no batch
            dims = [1] + dims
        if len(dims) != spatial + 2:
            cf = self.data_format == CHANNELS_FIRST
            want = {
                (1, False): "(W, C) or (N, W, C)", (1, True): "(C, W) or (N, C, W)",
                (2, False): "(H, W, C) or (N, H, W, C)", (2, True): "(C, H, W) or (N, C, H, W)",
            }[(self.rank, cf)]
            raise LayerError(
                f"input_shape={given} is not allowed: a {self.keras_class} "
                f"with {self.data_format} takes {want}"
            )
        if dims[0] is None:
            dims[0] = 1
        for d in dims:
            if isinstance(d, bool) or not isinstance(d, numbers.Integral) or d <= 0:
                raise LayerError(
                    f"input_shape={given} is not allowed: every size must be a positive "
                    "integer (only the batch may be None)"
                )
        dims = [int(d) for d in dims]
        if self.rank == 1:
            n, a, b = dims
            w, c = (b, a) if self.data_format == CHANNELS_FIRST else (a, b)
            return n, 1, w, c
        n, a, b, c = dims
        if self.data_format == CHANNELS_FIRST:
            return n, b, c, a
        return n, a, b, c

    def geometry(self, input_shape: Iterable[Any]) -> Geometry:
        n, h, w, c = self._split_input_shape(input_shape)
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.strides, self.dilation_rate
        oh = output_size(h, kh, sh, dh, self.padding)
        ow = output_size(w, kw, sw, dw, self.padding)
        for axis, size, k, d, out in (("height", h, kh, dh, oh), ("width", w, kw, dw, ow)):
            if out <= 0:
                eff = (k - 1) * d + 1
                ks, dr = self.kernel_size, self.dilation_rate
                if self.rank == 1:
                    ks, dr = ks[1], dr[1]
                raise LayerError(
                    f"kernel_size={_show(ks)} with dilation_rate={_show(dr)} "
                    f"spans {eff} pixels but the input {axis} is {size} with padding='valid': "
                    "the kernel must fit inside the input (or use padding='same')"
                )
        pt, pb = padding_before_after(h, oh, kh, sh, dh)
        pl, pr = padding_before_after(w, ow, kw, sw, dw)
        self._check_index_space(n, c, (h, pt + pb, sh, dh), (w, pl + pr, sw, dw))
        return Geometry(
            batch=n, in_h=h, in_w=w, in_c=c, out_h=oh, out_w=ow,
            depth_multiplier=self.depth_multiplier, kernel_h=kh, kernel_w=kw,
            stride_h=sh, stride_w=sw, dilation_h=dh, dilation_w=dw,
            pad_top=pt, pad_left=pl, pad_bottom=pb, pad_right=pr,
            data_format=self.data_format, rank=self.rank,
        )

    def output_shape(self, input_shape: Iterable[Any]) -> tuple[int, ...]:
        return self.geometry(input_shape).output_shape

    def _check_index_space(self, n: int, c: int, *axes: tuple[int, int, int, int]) -> None:
        """Refuse a layer whose generated C could compute an index beyond a 32-bit int.

        Every index the kernels compute is a row coordinate times a row stride plus a column
        coordinate times a column stride (plus batch and channel offsets), and a coordinate
        ranges over the padded input plus at most one extra stride or dilation step (loop
        variables step past the last window). So with E = size + padding + stride + dilation
        per axis, `N * C * M * E_h * E_w` bounds the input, the output (out <= padded size),
        the weights (kernel <= padded size), every literal, and each term of an index sum.
        """
        extents = [size + pad + stride + dil for size, pad, stride, dil in axes]
        space = n * c * self.depth_multiplier * extents[0] * extents[1]
        if space > MAX_INDEX_SPACE:
            (h, ph, sh, dh), (w, pw, sw, dw) = axes
            cf = self.data_format == CHANNELS_FIRST
            if self.rank == 1:
                shape = (n, c, w) if cf else (n, w, c)
            else:
                shape = (n, c, h, w) if cf else (n, h, w, c)
            raise LayerSizeError(
                f"the layer on input_shape={shape!r} is too large for the generated C's 32-bit index "
                "arithmetic: batch x channels x depth_multiplier x (height + vertical padding + stride "
                "+ dilation) x (width + horizontal padding + stride + dilation) = "
                f"{n} x {c} x {self.depth_multiplier} x ({h} + {ph} + {sh} + {dh}) x ({w} + {pw} + {sw} + {dw}) "
                f"= {space}; dwgen accepts at most 2^30 = {MAX_INDEX_SPACE}"
            )


def _reject_strided_dilation(strides: Any, dilation: Any, who: str) -> None:
    s_max = max(strides) if isinstance(strides, tuple) else strides
    d_max = max(dilation) if isinstance(dilation, tuple) else dilation
    if s_max > 1 and d_max > 1:
        raise LayerError(
            f"strides={_show(strides)} with dilation_rate={_show(dilation)} is not allowed in {who}: "
            "strides > 1 and dilation_rate > 1 cannot be combined (a .tflite model may "
            "contain that combination; read it with dwgen.tflite_model instead)"
        )


def _check_extra(kwargs: dict, who: str) -> None:
    unknown = sorted(set(kwargs) - _TRAINING_ONLY_KEYS)
    if unknown:
        raise LayerError(
            f"unknown argument(s) {', '.join(map(repr, unknown))} for {who}: it takes "
            "kernel_size, strides, padding, depth_multiplier, data_format, dilation_rate, "
            "activation, use_bias and the training-only initializer/regularizer/constraint arguments"
        )


class DepthwiseConv2D(DepthwiseLayer):
    """`keras.layers.DepthwiseConv2D` with the same arguments and the same checks."""

    def __init__(
        self,
        kernel_size: Any,
        strides: Any = (1, 1),
        padding: str = "valid",
        depth_multiplier: int = 1,
        data_format: str | None = None,
        dilation_rate: Any = (1, 1),
        activation: Any = None,
        use_bias: bool = True,
        **training_only: Any,
    ):
        _check_extra(training_only, "DepthwiseConv2D")
        super().__init__(
            kernel_size=_int_pair("kernel_size", kernel_size),
            strides=_int_pair("strides", strides),
            padding=padding,
            depth_multiplier=depth_multiplier,
            data_format=data_format,
            dilation_rate=_int_pair("dilation_rate", dilation_rate),
            activation=_keras_activation(activation),
            use_bias=use_bias,
            rank=2,
        )
        _reject_strided_dilation(self.strides, self.dilation_rate, "DepthwiseConv2D")


class DepthwiseConv1D(DepthwiseLayer):
    """`keras.layers.DepthwiseConv1D`: a 2-D layer with H == 1, as TFLite runs it."""

    def __init__(
        self,
        kernel_size: Any,
        strides: Any = 1,
        padding: str = "valid",
        depth_multiplier: int = 1,
        data_format: str | None = None,
        dilation_rate: Any = 1,
        activation: Any = None,
        use_bias: bool = True,
        **training_only: Any,
    ):
        _check_extra(training_only, "DepthwiseConv1D")
        if isinstance(padding, str) and padding.lower() == "causal":
            raise LayerError(
                "padding='causal' is not allowed for DepthwiseConv1D: use 'valid' or 'same'"
            )
        k = _int_single("kernel_size", kernel_size)
        s = _int_single("strides", strides)
        d = _int_single("dilation_rate", dilation_rate)
        super().__init__(
            kernel_size=(1, k), strides=(1, s), padding=padding,
            depth_multiplier=depth_multiplier, data_format=data_format,
            dilation_rate=(1, d), activation=_keras_activation(activation),
            use_bias=use_bias, rank=1,
        )
        _reject_strided_dilation(s, d, "DepthwiseConv1D")


_KERAS_CLASSES = {"DepthwiseConv2D": DepthwiseConv2D, "DepthwiseConv1D": DepthwiseConv1D}


def from_keras_config(config: dict, class_name: str | None = None) -> DepthwiseLayer:
    """Build a layer from `layer.get_config()` (tf.keras 2.x or Keras 3).

    `config` may also be the full serialized form `{"class_name": ..., "config": {...}}`.
    The class defaults to DepthwiseConv2D; 1-D configs are recognised by `class_name`.
    """
    if not isinstance(config, dict):
        raise LayerError(f"a Keras layer config must be a dict, not {type(config).__name__}")
    if "config" in config and isinstance(config["config"], dict):
        class_name = class_name if class_name is not None else config.get("class_name")
        config = config["config"]
    class_name = "DepthwiseConv2D" if class_name is None else class_name
    if not isinstance(class_name, str) or class_name not in _KERAS_CLASSES:
        raise LayerError(
            f"class_name={_show(class_name)} is not allowed: use 'DepthwiseConv2D' or 'DepthwiseConv1D'"
        )
    cfg = dict(config)
    if not all(isinstance(k, str) for k in cfg):
        raise LayerError("a Keras layer config's keys must be strings (argument names)")
    groups = cfg.pop("groups", 1)
    if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or groups != 1:
        raise LayerError(f"groups={_show(groups)} is not allowed: a depthwise layer has groups=1")
    if "kernel_size" not in cfg:
        raise LayerError(
            f"the {class_name} config has no 'kernel_size': it is required (a positive integer"
            + (")" if class_name == "DepthwiseConv1D" else " or a pair of them)")
        )
    return _KERAS_CLASSES[class_name](**cfg)


def _as_list(arg: str, value: Any, want: str) -> list:
    try:
        return list(value)
    except TypeError:
        raise LayerError(f"{arg}={_show(value)} is not allowed: give {want}") from None


def from_tf_nn(
    filter_shape: Iterable[int],
    strides: Iterable[int],
    padding: str,
    rate: Iterable[int] | None = None,
    data_format: str = "NHWC",
    activation: str = "none",
) -> DepthwiseLayer:
    """Mirror `tf.nn.depthwise_conv2d(input, filter, strides, padding, data_format, dilations)`.

    `filter_shape` is `[kh, kw, C, M]`; `strides` is `[1, s, s, 1]` (NHWC) or
    `[1, 1, s, s]` (NCHW); `padding` is "SAME" or "VALID"; `rate` is `[rh, rw]`.
    """
    fs = _as_list("filter shape", filter_shape, "[kh, kw, C, M]")
    if len(fs) != 4 or not all(_is_positive_int(v) for v in fs):
        raise LayerError(
            f"filter shape {_show(tuple(fs))} is not allowed: tf.nn.depthwise_conv2d takes "
            "[kh, kw, C, M], four positive integers"
        )
    fmt = str(data_format).upper()
    if fmt not in ("NHWC", "NCHW"):
        raise LayerError(f"data_format={_show(data_format)} is not allowed: use 'NHWC' or 'NCHW'")
    st = _as_list("strides", strides, "[1, s, s, 1] (NHWC) or [1, 1, s, s] (NCHW)")
    if len(st) != 4 or not all(_is_positive_int(v) for v in st):
        raise LayerError(
            f"strides={_show(tuple(st))} is not allowed: give [1, s, s, 1] (NHWC) or [1, 1, s, s] "
            "(NCHW), positive integers"
        )
    batch_ch = (st[0], st[3]) if fmt == "NHWC" else (st[0], st[1])
    hw = (st[1], st[2]) if fmt == "NHWC" else (st[2], st[3])
    if batch_ch != (1, 1):
        raise LayerError(f"strides={_show(tuple(st))} is not allowed: the batch and channel strides must be 1")
    if not isinstance(padding, str) or padding.upper() not in ("SAME", "VALID"):
        raise LayerError(f"padding={_show(padding)} is not allowed: use 'SAME' or 'VALID'")
    if rate is None:
        dil: Any = (1, 1)
    elif isinstance(rate, numbers.Integral):
        dil = rate
    else:
        dil = tuple(_as_list("rate", rate, "one positive integer or a pair [rh, rw]"))
    st_pair, dil_pair = _int_pair("strides", hw), _int_pair("rate", dil)
    if max(st_pair) > 1 and max(dil_pair) > 1:
        raise LayerError(
            f"strides={_show(tuple(st))} with rate={_show(dil)} is not allowed: tf.nn.depthwise_conv2d "
            "needs all strides 1 when a rate is above 1"
        )
    return DepthwiseLayer(
        kernel_size=(fs[0], fs[1]),
        strides=st_pair,
        padding=padding.lower(),
        depth_multiplier=fs[3],
        data_format=CHANNELS_LAST if fmt == "NHWC" else CHANNELS_FIRST,
        dilation_rate=dil_pair,
        activation=activation,
        use_bias=True,
    )


__all__ = [
    "ACTIVATIONS", "CHANNELS_FIRST", "CHANNELS_LAST", "DepthwiseConv1D", "DepthwiseConv2D",
    "DepthwiseLayer", "Geometry", "from_keras_config", "from_tf_nn", "output_size",
    "padding_before_after",
]
