"""The layer spec: Keras argument forms, shape inference, Keras/tf.nn front ends, errors.

Every expected number below is worked out by hand from TFLite's output-size and padding rules (out = ceil(in / s)
for SAME, ceil((in - eff + 1) / s) for VALID, eff = (k-1)*d + 1, total padding
max((out-1)*s + eff - in, 0) with the odd pixel at the bottom/right), not recomputed
with dwgen's own helpers.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from dwgen.errors import DwgenError, LayerError
from dwgen.layer import (
    CHANNELS_FIRST,
    CHANNELS_LAST,
    DepthwiseConv1D,
    DepthwiseConv2D,
    DepthwiseLayer,
    from_keras_config,
    from_tf_nn,
    output_size,
    padding_before_after,
)


def raises(msg: str):
    """pytest.raises for a LayerError with exactly this (whole) message."""
    return pytest.raises(LayerError, match="^" + re.escape(msg) + "$")


# ---------------------------------------------------------------------------------------
# Keras argument forms
# ---------------------------------------------------------------------------------------
class TestKerasArguments:
    def test_defaults(self):
        layer = DepthwiseConv2D(3)
        assert layer.kernel_size == (3, 3)
        assert layer.strides == (1, 1)
        assert layer.dilation_rate == (1, 1)
        assert layer.padding == "valid"
        assert layer.depth_multiplier == 1
        assert layer.data_format == CHANNELS_LAST
        assert layer.activation == "none"
        assert layer.use_bias is True
        assert layer.rank == 2

    @pytest.mark.parametrize(
        "kernel, strides, dilation, want",
        [
            (3, 2, 1, ((3, 3), (2, 2), (1, 1))),
            ((3, 5), (1, 2), (1, 1), ((3, 5), (1, 2), (1, 1))),
            ([5, 3], [2, 1], [1, 1], ((5, 3), (2, 1), (1, 1))),
            (3, 1, 2, ((3, 3), (1, 1), (2, 2))),
            ((1, 3), (1, 1), (3, 2), ((1, 3), (1, 1), (3, 2))),
            (np.int64(3), np.int32(2), 1, ((3, 3), (2, 2), (1, 1))),
        ],
    )
    def test_int_or_pair(self, kernel, strides, dilation, want):
        layer = DepthwiseConv2D(kernel, strides=strides, dilation_rate=dilation)
        assert (layer.kernel_size, layer.strides, layer.dilation_rate) == want
        assert all(type(v) is int for pair in want for v in pair)
        assert all(type(v) is int for v in layer.kernel_size + layer.strides + layer.dilation_rate)

    @pytest.mark.parametrize("padding, want", [
        ("valid", "valid"), ("VALID", "valid"), ("Valid", "valid"),
        ("same", "same"), ("SAME", "same"), ("sAmE", "same"),
    ])
    def test_padding_case_insensitive(self, padding, want):
        assert DepthwiseConv2D(3, padding=padding).padding == want
        assert DepthwiseConv1D(3, padding=padding).padding == want

    @pytest.mark.parametrize("fmt, want", [
        (None, CHANNELS_LAST), ("channels_last", CHANNELS_LAST),
        ("channels_first", CHANNELS_FIRST), ("Channels_First", CHANNELS_FIRST),
    ])
    def test_data_format(self, fmt, want):
        assert DepthwiseConv2D(3, data_format=fmt).data_format == want
        assert DepthwiseConv1D(3, data_format=fmt).data_format == want

    @pytest.mark.parametrize("act, want", [
        (None, "none"), ("linear", "none"), ("relu", "relu"), ("relu6", "relu6"),
        ("ReLU", "relu"),
        # Keras 3 serializes a plain function as {"class_name": "function", "config": name}
        ({"module": "builtins", "class_name": "function", "config": "relu6",
          "registered_name": "function"}, "relu6"),
    ])
    def test_activation(self, act, want):
        assert DepthwiseConv2D(3, activation=act).activation == want
        assert DepthwiseConv1D(3, activation=act).activation == want

    def test_depth_multiplier_and_use_bias(self):
        layer = DepthwiseConv2D(3, depth_multiplier=4, use_bias=False)
        assert layer.depth_multiplier == 4 and layer.use_bias is False

    def test_training_only_arguments_are_ignored(self):
        plain = DepthwiseConv2D(3, padding="same")
        layer = DepthwiseConv2D(
            3, padding="same",
            depthwise_initializer="he_normal",
            depthwise_regularizer={"class_name": "L2", "config": {"l2": 1e-4}},
            bias_initializer="zeros", bias_regularizer=None, activity_regularizer=None,
            depthwise_constraint=None, bias_constraint=None, name="dw", trainable=False,
        )
        assert layer == plain and hash(layer) == hash(plain)

    def test_conv1d_forms(self):
        layer = DepthwiseConv1D(5, strides=2, padding="same", depth_multiplier=3)
        assert layer.rank == 1
        assert layer.kernel_size == (1, 5)
        assert layer.strides == (1, 2)
        assert layer.dilation_rate == (1, 1)
        assert layer.depth_multiplier == 3
        # the one-element tuple Keras stores in get_config()
        assert DepthwiseConv1D((5,), strides=(2,), dilation_rate=[1]).kernel_size == (1, 5)
        assert DepthwiseConv1D(3, dilation_rate=4).dilation_rate == (1, 4)

    def test_plain_layer_allows_stride_with_dilation(self):
        # TFLite runs it, so a .tflite model may hold it: only the Keras front ends reject it.
        layer = DepthwiseLayer((3, 3), strides=(2, 2), dilation_rate=(2, 2), padding="same")
        assert layer.strides == (2, 2) and layer.dilation_rate == (2, 2)
        g = layer.geometry((9, 9, 4))
        # out = ceil(9/2) = 5; eff = 5; total = 4*2 + 5 - 9 = 4 -> 2/2
        assert (g.out_h, g.pad_top, g.pad_bottom) == (5, 2, 2)
        one_d = DepthwiseLayer((1, 3), strides=(1, 2), dilation_rate=(1, 2), rank=1)
        assert one_d.rank == 1

    def test_plain_layer_activations(self):
        for act in ("none", "relu", "relu6", "relu_n1_to_1"):
            assert DepthwiseLayer((3, 3), activation=act).activation == act

    def test_equality_and_repr(self):
        a = DepthwiseConv2D(3, strides=2, padding="SAME", activation="relu6")
        b = DepthwiseConv2D((3, 3), strides=(2, 2), padding="same", activation="relu6")
        assert a == b and hash(a) == hash(b)
        assert a != DepthwiseConv2D(3, strides=2, padding="same", activation="relu")
        assert a != DepthwiseConv2D(3, strides=2, padding="same", activation="relu6", use_bias=False)
        assert DepthwiseConv1D(3) != DepthwiseConv2D((1, 3))  # rank differs
        assert repr(DepthwiseConv1D(5, strides=2)) == (
            "DepthwiseConv1D(kernel_size=5, strides=2, padding='valid', depth_multiplier=1, "
            "data_format='channels_last', dilation_rate=1, activation='none', use_bias=True)"
        )
        assert repr(a).startswith("DepthwiseConv2D(kernel_size=(3, 3), strides=(2, 2), padding='same'")

    def test_describe_is_json(self):
        d = DepthwiseConv1D(5, depth_multiplier=2, activation="relu").describe()
        assert json.loads(json.dumps(d)) == {
            "class_name": "DepthwiseConv1D", "kernel_size": [1, 5], "strides": [1, 1],
            "dilation_rate": [1, 1], "padding": "valid", "depth_multiplier": 2,
            "data_format": "channels_last", "activation": "relu", "use_bias": True,
        }


# ---------------------------------------------------------------------------------------
# Shape inference
# ---------------------------------------------------------------------------------------
def _g(g):
    return (g.out_h, g.out_w, g.pad_top, g.pad_bottom, g.pad_left, g.pad_right)


class TestGeometry:
    # (layer kwargs, input (H, W, C), (out_h, out_w, pad_top, pad_bottom, pad_left, pad_right))
    CASES = [
        # KWS DS-CNN: 25x5, 3x3 SAME stride 1 -> total 2 -> 1/1
        (dict(kernel_size=3, padding="same"), (25, 5, 64), (25, 5, 1, 1, 1, 1)),
        # stride-2 SAME on even input: out 24, total = 23*2 + 3 - 48 = 1 -> 0 top/left, 1 bottom/right
        (dict(kernel_size=3, strides=2, padding="same"), (48, 48, 8), (24, 24, 0, 1, 0, 1)),
        # stride-2 SAME on odd input: out 4, total = 3*2 + 3 - 7 = 2 -> 1/1
        (dict(kernel_size=3, strides=2, padding="same"), (7, 7, 2), (4, 4, 1, 1, 1, 1)),
        # even kernel SAME stride 1: total 1 -> 0/1
        (dict(kernel_size=(2, 4), padding="same"), (6, 6, 1), (6, 6, 0, 1, 1, 2)),
        # VALID, sizes not divisible by the stride: ceil((10-3+1)/3) = 3, ceil((7-2+1)/2) = 3
        (dict(kernel_size=(3, 2), strides=(3, 2)), (10, 7, 4), (3, 3, 0, 0, 0, 0)),
        # VALID stride 2: ceil((9-3+1)/2) = 4 ; ceil((8-3+1)/2) = 3
        (dict(kernel_size=3, strides=2), (9, 8, 1), (4, 3, 0, 0, 0, 0)),
        # dilation 2: eff 5; VALID out 10-5+1 = 6
        (dict(kernel_size=3, dilation_rate=2), (10, 10, 3), (6, 6, 0, 0, 0, 0)),
        # dilation 2 SAME: total = 9 + 5 - 10 = 4 -> 2/2 ; dilation 3 along W: eff 7, total 6 -> 3/3
        (dict(kernel_size=3, dilation_rate=(2, 3), padding="same"), (10, 8, 3), (10, 8, 2, 2, 3, 3)),
        # image smaller than the kernel, SAME: 2x2 input, 5x5 kernel: total = 1 + 5 - 2 = 4 -> 2/2
        (dict(kernel_size=5, padding="same"), (2, 2, 3), (2, 2, 2, 2, 2, 2)),
        # 1x1 image, 4x3 kernel SAME: total 3 -> 1/2 ; total 2 -> 1/1
        (dict(kernel_size=(4, 3), padding="same"), (1, 1, 1), (1, 1, 1, 2, 1, 1)),
        # smaller than the kernel with stride 2: out ceil(3/2) = 2, total = 2 + 5 - 3 = 4 -> 2/2
        (dict(kernel_size=5, strides=2, padding="same"), (3, 3, 2), (2, 2, 2, 2, 2, 2)),
        # kernel exactly the input size, VALID
        (dict(kernel_size=(3, 5)), (3, 5, 2), (1, 1, 0, 0, 0, 0)),
        # 1x1 kernel stride 2 VALID: ceil(5/2) = 3
        (dict(kernel_size=1, strides=2), (5, 6, 2), (3, 3, 0, 0, 0, 0)),
    ]

    @pytest.mark.parametrize("kwargs, hwc, want", CASES)
    def test_nhwc(self, kwargs, hwc, want):
        layer = DepthwiseConv2D(**kwargs)
        g = layer.geometry(hwc)
        assert _g(g) == want
        assert (g.batch, g.in_h, g.in_w, g.in_c) == (1, *hwc)
        assert g.output_shape == (1, want[0], want[1], hwc[2])
        assert layer.output_shape(hwc) == (1, want[0], want[1], hwc[2])

    @pytest.mark.parametrize("kwargs, hwc, want", CASES)
    def test_nchw(self, kwargs, hwc, want):
        layer = DepthwiseConv2D(data_format="channels_first", depth_multiplier=2, **kwargs)
        h, w, c = hwc
        g = layer.geometry((3, c, h, w))
        assert _g(g) == want
        assert (g.batch, g.in_h, g.in_w, g.in_c, g.out_c) == (3, h, w, c, 2 * c)
        assert g.channels_first
        assert g.input_shape == (3, c, h, w)
        assert g.output_shape == (3, 2 * c, want[0], want[1])

    def test_batch_given_or_not(self):
        layer = DepthwiseConv2D(3, padding="same", depth_multiplier=2)
        assert layer.geometry((12, 10, 4)).batch == 1
        assert layer.geometry((None, 12, 10, 4)).batch == 1
        g = layer.geometry((5, 12, 10, 4))
        assert g.batch == 5
        assert g.input_shape == (5, 12, 10, 4)
        assert g.output_shape == (5, 12, 10, 8)
        assert g.input_size == 5 * 12 * 10 * 4
        assert g.output_size == 5 * 12 * 10 * 8
        assert g.macs == 5 * 12 * 10 * 8 * 9
        assert layer.geometry([np.int64(2), 12, 10, 4]).batch == 2

    def test_conv1d_is_h1(self):
        # 49 frames x 40 channels, k 5 stride 2 SAME: out 25, total = 24*2 + 5 - 49 = 4 -> 2/2
        layer = DepthwiseConv1D(5, strides=2, padding="same", depth_multiplier=2)
        for shape in ((49, 40), (None, 49, 40), (1, 49, 40)):
            g = layer.geometry(shape)
            assert (g.in_h, g.in_w, g.in_c, g.out_h, g.out_w, g.out_c) == (1, 49, 40, 1, 25, 80)
            assert (g.kernel_h, g.kernel_w, g.stride_h, g.stride_w) == (1, 5, 1, 2)
            assert (g.pad_top, g.pad_bottom, g.pad_left, g.pad_right) == (0, 0, 2, 2)
            assert g.input_shape == (1, 49, 40)
            assert g.output_shape == (1, 25, 80)
            assert g.rank == 1

    def test_conv1d_valid_dilated_channels_first(self):
        # k 10, dilation 2: eff 19; VALID out = 98 - 19 + 1 = 80
        layer = DepthwiseConv1D(10, dilation_rate=2, data_format="channels_first")
        g = layer.geometry((4, 64, 98))
        assert (g.batch, g.in_c, g.in_w, g.out_w) == (4, 64, 98, 80)
        assert g.input_shape == (4, 64, 98)
        assert g.output_shape == (4, 64, 80)

    def test_input_row_col(self):
        g = DepthwiseConv2D(3, strides=2, dilation_rate=1, padding="same").geometry((7, 7, 1))
        # pad_top = pad_left = 1
        assert g.input_row(0, 0) == -1 and g.input_row(3, 2) == 7
        assert g.input_col(1, 1) == 2
        g = DepthwiseConv2D(3, dilation_rate=(2, 3), padding="same").geometry((10, 8, 3))
        assert g.input_row(0, 2) == -2 + 4 and g.input_col(0, 2) == -3 + 6

    @pytest.mark.parametrize("size, k, s, d, pad, out", [
        (10, 3, 1, 1, "valid", 8), (10, 3, 3, 1, "valid", 3), (10, 3, 3, 1, "same", 4),
        (5, 3, 1, 2, "valid", 1), (4, 3, 1, 2, "valid", 0), (1, 9, 4, 1, "same", 1),
    ])
    def test_output_size(self, size, k, s, d, pad, out):
        assert output_size(size, k, s, d, pad) == out

    @pytest.mark.parametrize("size, out, k, s, d, want", [
        (48, 24, 3, 2, 1, (0, 1)), (7, 4, 3, 2, 1, (1, 1)), (10, 3, 3, 3, 1, (0, 0)),
        (1, 1, 4, 1, 1, (1, 2)), (10, 10, 3, 1, 3, (3, 3)),
    ])
    def test_padding_before_after(self, size, out, k, s, d, want):
        assert padding_before_after(size, out, k, s, d) == want


# ---------------------------------------------------------------------------------------
# from_keras_config
# ---------------------------------------------------------------------------------------
# What tf.keras 2.x (2.12) DepthwiseConv2D.get_config() returns: Conv's config minus
# filters/kernel_*, plus the depthwise_* entries.
TF2_DW2D = {
    "name": "depthwise_conv2d_3",
    "trainable": True,
    "dtype": "float32",
    "batch_input_shape": (None, 48, 48, 8),
    "kernel_size": (3, 3),
    "strides": (2, 2),
    "padding": "same",
    "data_format": "channels_last",
    "dilation_rate": (1, 1),
    "groups": 1,
    "activation": "relu6",
    "use_bias": False,
    "bias_initializer": {"class_name": "Zeros", "config": {}},
    "bias_regularizer": None,
    "activity_regularizer": None,
    "bias_constraint": None,
    "depth_multiplier": 1,
    "depthwise_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
    "depthwise_regularizer": {"class_name": "L2", "config": {"l2": 3.999999989900971e-05}},
    "depthwise_constraint": None,
}

# tf.keras 2.13+ adds module/registered_name to serialized objects.
TF213_DW1D = {
    "name": "depthwise_conv1d",
    "trainable": True,
    "dtype": "float32",
    "kernel_size": (5,),
    "strides": (1,),
    "padding": "valid",
    "data_format": "channels_last",
    "dilation_rate": (2,),
    "groups": 1,
    "activation": "linear",
    "use_bias": True,
    "bias_initializer": {"module": "keras.initializers", "class_name": "Zeros",
                         "config": {}, "registered_name": None},
    "bias_regularizer": None,
    "activity_regularizer": None,
    "bias_constraint": None,
    "depth_multiplier": 2,
    "depthwise_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform",
                              "config": {"seed": None}, "registered_name": None},
    "depthwise_regularizer": None,
    "depthwise_constraint": None,
}

# Keras 3 (3.3): dtype is a serialized DTypePolicy, no groups, lists after a JSON round trip.
K3_DTYPE = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"},
            "registered_name": None}
K3_DW2D = {
    "name": "depthwise_conv2d",
    "trainable": True,
    "dtype": K3_DTYPE,
    "depth_multiplier": 2,
    "kernel_size": [3, 5],
    "strides": [1, 1],
    "padding": "valid",
    "data_format": "channels_first",
    "dilation_rate": [2, 1],
    "activation": "relu",
    "use_bias": True,
    "depthwise_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform",
                              "config": {"seed": None}, "registered_name": None},
    "bias_initializer": {"module": "keras.initializers", "class_name": "Zeros", "config": {},
                         "registered_name": None},
    "depthwise_regularizer": None,
    "bias_regularizer": None,
    "activity_regularizer": None,
    "depthwise_constraint": None,
    "bias_constraint": None,
}
K3_DW1D_FULL = {
    "module": "keras.layers",
    "class_name": "DepthwiseConv1D",
    "config": {
        "name": "dw1d",
        "trainable": True,
        "dtype": K3_DTYPE,
        "depth_multiplier": 1,
        "kernel_size": [15],
        "strides": [2],
        "padding": "same",
        "data_format": "channels_last",
        "dilation_rate": [1],
        "activation": "relu",
        "use_bias": True,
        "depthwise_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform",
                                  "config": {"seed": None}, "registered_name": None},
        "bias_initializer": {"module": "keras.initializers", "class_name": "Zeros", "config": {},
                             "registered_name": None},
        "depthwise_regularizer": None,
        "bias_regularizer": None,
        "activity_regularizer": None,
        "depthwise_constraint": None,
        "bias_constraint": None,
    },
    "registered_name": None,
    "build_config": {"input_shape": [None, 100, 40]},
}


class TestFromKerasConfig:
    def test_tf2_depthwise_conv2d(self):
        layer = from_keras_config(TF2_DW2D)
        assert type(layer) is DepthwiseConv2D
        assert layer == DepthwiseConv2D(3, strides=2, padding="same", activation="relu6", use_bias=False)
        g = layer.geometry(TF2_DW2D["batch_input_shape"])
        assert _g(g) == (24, 24, 0, 1, 0, 1)

    def test_tf2_config_is_not_modified(self):
        before = json.dumps(TF2_DW2D, sort_keys=True)
        from_keras_config(TF2_DW2D)
        assert json.dumps(TF2_DW2D, sort_keys=True) == before

    def test_tf213_depthwise_conv1d_by_class_name(self):
        layer = from_keras_config(TF213_DW1D, class_name="DepthwiseConv1D")
        assert type(layer) is DepthwiseConv1D
        assert layer == DepthwiseConv1D(5, dilation_rate=2, depth_multiplier=2)
        g = layer.geometry((None, 98, 40))
        # eff = 9: out = 98 - 9 + 1 = 90
        assert (g.out_w, g.out_c) == (90, 80)

    def test_keras3_depthwise_conv2d(self):
        layer = from_keras_config(K3_DW2D)
        assert layer == DepthwiseConv2D((3, 5), dilation_rate=(2, 1), depth_multiplier=2,
                                        data_format="channels_first", activation="relu")
        g = layer.geometry((None, 4, 12, 12))
        # H: eff 5 -> 8 ; W: eff 5 -> 8
        assert g.output_shape == (1, 8, 8, 8)

    def test_keras3_full_form_json_round_trip(self):
        cfg = json.loads(json.dumps(K3_DW1D_FULL))
        layer = from_keras_config(cfg)
        assert type(layer) is DepthwiseConv1D
        assert layer == DepthwiseConv1D(15, strides=2, padding="same", activation="relu")
        # out ceil(100/2) = 50, total = 49*2 + 15 - 100 = 13 -> 6 left, 7 right
        g = layer.geometry(cfg["build_config"]["input_shape"])
        assert (g.out_w, g.pad_left, g.pad_right) == (50, 6, 7)

    def test_full_form_tf2(self):
        layer = from_keras_config({"class_name": "DepthwiseConv2D", "config": TF2_DW2D})
        assert layer == from_keras_config(TF2_DW2D)

    def test_explicit_class_name_wins_over_default(self):
        cfg = {"kernel_size": 3, "padding": "same"}
        assert type(from_keras_config(cfg)) is DepthwiseConv2D
        assert type(from_keras_config(cfg, class_name="DepthwiseConv1D")) is DepthwiseConv1D

    def test_minimal_config(self):
        assert from_keras_config({"kernel_size": [3, 3]}) == DepthwiseConv2D(3)

    def test_groups_one_accepted(self):
        assert from_keras_config({"kernel_size": 3, "groups": 1}) == DepthwiseConv2D(3)


# ---------------------------------------------------------------------------------------
# from_tf_nn
# ---------------------------------------------------------------------------------------
class TestFromTfNn:
    def test_nhwc(self):
        layer = from_tf_nn([3, 3, 8, 2], [1, 2, 2, 1], "SAME")
        assert layer.kernel_size == (3, 3) and layer.strides == (2, 2)
        assert layer.depth_multiplier == 2 and layer.padding == "same"
        assert layer.data_format == CHANNELS_LAST and layer.dilation_rate == (1, 1)
        assert layer.activation == "none" and layer.use_bias is True
        g = layer.geometry((1, 48, 48, 8))
        assert _g(g) == (24, 24, 0, 1, 0, 1) and g.out_c == 16

    def test_nchw_strides(self):
        layer = from_tf_nn((5, 3, 4, 1), (1, 1, 1, 2), "VALID", data_format="NCHW")
        assert layer.kernel_size == (5, 3) and layer.strides == (1, 2)
        assert layer.data_format == CHANNELS_FIRST and layer.padding == "valid"
        g = layer.geometry((2, 4, 9, 9))
        # H: 9-5+1 = 5 ; W: ceil((9-3+1)/2) = 4
        assert g.output_shape == (2, 4, 5, 4)

    def test_nhwc_asymmetric_strides(self):
        layer = from_tf_nn([3, 3, 1, 1], [1, 1, 2, 1], "valid", data_format="nhwc")
        assert layer.strides == (1, 2) and layer.padding == "valid"

    def test_rate(self):
        layer = from_tf_nn([3, 3, 4, 1], [1, 1, 1, 1], "SAME", rate=[2, 3])
        assert layer.dilation_rate == (2, 3)
        assert from_tf_nn([3, 3, 4, 1], [1, 1, 1, 1], "SAME", rate=(2, 2)).dilation_rate == (2, 2)
        assert from_tf_nn([3, 3, 4, 1], [1, 1, 1, 1], "SAME", rate=2).dilation_rate == (2, 2)
        assert from_tf_nn([3, 3, 4, 1], [1, 1, 1, 1], "SAME", rate=None).dilation_rate == (1, 1)
        g = layer.geometry((10, 8, 4))
        assert _g(g) == (10, 8, 2, 2, 3, 3)

    def test_activation_and_numpy_sizes(self):
        layer = from_tf_nn(np.array([3, 3, 4, 2]), np.array([1, 1, 1, 1]), "SAME", activation="relu6")
        assert layer.activation == "relu6" and layer.depth_multiplier == 2

    def test_equivalent_to_keras(self):
        assert from_tf_nn([3, 3, 8, 1], [1, 2, 2, 1], "SAME") == DepthwiseConv2D(3, strides=2, padding="same")


# ---------------------------------------------------------------------------------------
# Every LayerError, with its exact message
# ---------------------------------------------------------------------------------------
TAKES = (
    "kernel_size, strides, padding, depth_multiplier, data_format, dilation_rate, "
    "activation, use_bias and the training-only initializer/regularizer/constraint arguments"
)
STRIDED_DILATION = (
    "strides > 1 and dilation_rate > 1 cannot be combined (a .tflite model may "
    "contain that combination; read it with dwgen.tflite_model instead)"
)


class TestLayerErrors:
    def test_is_a_value_error_and_dwgen_error(self):
        with pytest.raises(ValueError):
            DepthwiseConv2D(3, padding="causal")
        with pytest.raises(DwgenError):
            DepthwiseConv2D(3, padding="causal")

    # -- padding ---------------------------------------------------------------------------
    @pytest.mark.parametrize("pad", ["causal", "CAUSAL"])
    def test_causal_2d(self, pad):
        with raises("padding='causal' is not allowed for a depthwise convolution: use 'valid' or 'same'"):
            DepthwiseConv2D(3, padding=pad)

    @pytest.mark.parametrize("pad", ["causal", "Causal"])
    def test_causal_1d(self, pad):
        with raises("padding='causal' is not allowed for DepthwiseConv1D: use 'valid' or 'same'"):
            DepthwiseConv1D(3, padding=pad)

    def test_causal_from_keras_config(self):
        with raises("padding='causal' is not allowed for DepthwiseConv1D: use 'valid' or 'same'"):
            from_keras_config({**TF213_DW1D, "padding": "causal"}, class_name="DepthwiseConv1D")

    def test_causal_plain_layer(self):
        with raises("padding='causal' is not allowed for a depthwise convolution: use 'valid' or 'same'"):
            DepthwiseLayer((1, 3), padding="causal", rank=1)

    @pytest.mark.parametrize("pad, shown", [("full", "'full'"), (1, "1"), (None, "None")])
    def test_unknown_padding(self, pad, shown):
        with raises(f"padding={shown} is not allowed: use 'valid' or 'same'"):
            DepthwiseConv2D(3, padding=pad)
        with raises(f"padding={shown} is not allowed: use 'valid' or 'same'"):
            DepthwiseConv1D(3, padding=pad)

    # -- stride with dilation ----------------------------------------------------------------
    @pytest.mark.parametrize("strides, dilation, shown", [
        (2, 2, "strides=(2, 2) with dilation_rate=(2, 2)"),
        ((1, 2), (2, 1), "strides=(1, 2) with dilation_rate=(2, 1)"),
    ])
    def test_strided_dilation_2d(self, strides, dilation, shown):
        with raises(f"{shown} is not allowed in DepthwiseConv2D: {STRIDED_DILATION}"):
            DepthwiseConv2D(3, strides=strides, dilation_rate=dilation)

    def test_strided_dilation_1d(self):
        with raises(f"strides=2 with dilation_rate=3 is not allowed in DepthwiseConv1D: {STRIDED_DILATION}"):
            DepthwiseConv1D(3, strides=2, dilation_rate=3)

    def test_strided_dilation_keras_config(self):
        with raises(f"strides=(2, 2) with dilation_rate=(2, 2) is not allowed in DepthwiseConv2D: {STRIDED_DILATION}"):
            from_keras_config({**K3_DW2D, "strides": [2, 2], "dilation_rate": [2, 2]})

    def test_strided_dilation_tf_nn(self):
        with raises(
            "strides=(1, 2, 2, 1) with rate=(2, 2) is not allowed: tf.nn.depthwise_conv2d "
            "needs all strides 1 when a rate is above 1"
        ):
            from_tf_nn([3, 3, 4, 1], [1, 2, 2, 1], "SAME", rate=[2, 2])
        with raises(
            "strides=(1, 1, 1, 2) with rate=3 is not allowed: tf.nn.depthwise_conv2d "
            "needs all strides 1 when a rate is above 1"
        ):
            from_tf_nn([3, 3, 4, 1], [1, 1, 1, 2], "SAME", rate=3, data_format="NCHW")

    # -- sizes -------------------------------------------------------------------------------
    @pytest.mark.parametrize("arg", ["kernel_size", "strides", "dilation_rate"])
    @pytest.mark.parametrize("value, shown", [
        (0, "0"), (-1, "-1"), (3.0, "3.0"), (True, "True"), ("3", "'3'"), (None, "None"),
    ])
    def test_bad_int_2d(self, arg, value, shown):
        kwargs = {"kernel_size": 3, arg: value}
        with raises(f"{arg}={shown} is not allowed: it must be a positive integer"):
            DepthwiseConv2D(**kwargs)

    @pytest.mark.parametrize("arg", ["kernel_size", "strides", "dilation_rate"])
    @pytest.mark.parametrize("value, shown", [(0, "0"), (2.5, "2.5"), (False, "False")])
    def test_bad_int_1d(self, arg, value, shown):
        kwargs = {"kernel_size": 3, arg: value}
        with raises(f"{arg}={shown} is not allowed: it must be a positive integer"):
            DepthwiseConv1D(**kwargs)

    @pytest.mark.parametrize("value, shown", [
        ((3, 3, 3), "(3, 3, 3)"), ([3], "[3]"), ((), "()"), ((3, 0), "(3, 0)"),
        ([3, 1.5], "[3, 1.5]"), ((True, 3), "(True, 3)"),
    ])
    def test_bad_pair(self, value, shown):
        for arg in ("kernel_size", "strides", "dilation_rate"):
            kwargs = {"kernel_size": 3, arg: value}
            with raises(f"{arg}={shown} is not allowed: give one positive integer or a pair of them"):
                DepthwiseConv2D(**kwargs)

    def test_bad_pair_plain_layer(self):
        with raises("kernel_size=(3, 3, 3) is not allowed: give one positive integer or a pair of them"):
            DepthwiseLayer((3, 3, 3))

    @pytest.mark.parametrize("value, shown", [
        ((3, 3), "(3, 3)"), ([], "[]"), ([0], "[0]"), ((2.0,), "(2.0,)"),
    ])
    def test_bad_single_1d(self, value, shown):
        for arg in ("kernel_size", "strides", "dilation_rate"):
            kwargs = {"kernel_size": 3, arg: value}
            with raises(f"{arg}={shown} is not allowed: a 1-D layer takes one positive integer"):
                DepthwiseConv1D(**kwargs)

    @pytest.mark.parametrize("value, shown", [(0, "0"), (-2, "-2"), (1.0, "1.0"), (True, "True")])
    def test_bad_depth_multiplier(self, value, shown):
        with raises(f"depth_multiplier={shown} is not allowed: it must be a positive integer"):
            DepthwiseConv2D(3, depth_multiplier=value)
        with raises(f"depth_multiplier={shown} is not allowed: it must be a positive integer"):
            DepthwiseConv1D(3, depth_multiplier=value)

    def test_bad_use_bias(self):
        with raises("use_bias=1 is not allowed: use True or False"):
            DepthwiseConv2D(3, use_bias=1)
        with raises("use_bias='yes' is not allowed: use True or False"):
            DepthwiseConv1D(3, use_bias="yes")

    # -- activation ----------------------------------------------------------------------
    SUPPORTED = "supported are None, 'linear', 'relu' and 'relu6'"

    @pytest.mark.parametrize("act, shown", [
        ("tanh", "'tanh'"), ("gelu", "'gelu'"), ("relu_n1_to_1", "'relu_n1_to_1'"),
        ("softmax", "'softmax'"), (3, "3"),
        ({"class_name": "LeakyReLU", "config": {"negative_slope": 0.3}},
         "{'class_name': 'LeakyReLU', 'config': {'negative_slope': 0.3}}"),
        # a serialized function with an unsupported name is reported by that name
        ({"module": "keras.activations", "class_name": "function", "config": "gelu",
          "registered_name": "function"}, "'gelu'"),
    ])
    def test_unknown_keras_activation(self, act, shown):
        msg = f"activation={shown} cannot be fused into an int8 depthwise kernel: {self.SUPPORTED}"
        with raises(msg):
            DepthwiseConv2D(3, activation=act)
        with raises(msg):
            DepthwiseConv1D(3, activation=act)

    def test_unknown_activation_in_keras_config(self):
        with raises(f"activation='swish' cannot be fused into an int8 depthwise kernel: {self.SUPPORTED}"):
            from_keras_config({**TF2_DW2D, "activation": "swish"})

    @pytest.mark.parametrize("act, shown", [("tanh", "'tanh'"), (None, "None"), ("linear", "'linear'")])
    def test_unknown_plain_activation(self, act, shown):
        with raises(f"activation={shown} is not allowed: use one of none, relu, relu6, relu_n1_to_1"):
            DepthwiseLayer((3, 3), activation=act)

    def test_unknown_tf_nn_activation(self):
        with raises("activation='tanh' is not allowed: use one of none, relu, relu6, relu_n1_to_1"):
            from_tf_nn([3, 3, 1, 1], [1, 1, 1, 1], "SAME", activation="tanh")

    # -- data format ---------------------------------------------------------------------
    @pytest.mark.parametrize("fmt, shown", [("NHWC", "'NHWC'"), ("channels", "'channels'"), (1, "1")])
    def test_unknown_data_format(self, fmt, shown):
        msg = (
            f"data_format={shown} is not allowed: use 'channels_last' (NHWC, the default) "
            "or 'channels_first' (NCHW)"
        )
        with raises(msg):
            DepthwiseConv2D(3, data_format=fmt)
        with raises(msg):
            DepthwiseConv1D(3, data_format=fmt)

    # -- plain layer -----------------------------------------------------------------------
    @pytest.mark.parametrize("rank", [0, 3, "2"])
    def test_bad_rank(self, rank):
        with raises(f"rank={rank!r} is not allowed: use 1 or 2"):
            DepthwiseLayer((3, 3), rank=rank)

    def test_rank1_needs_h1(self):
        with raises(
            "kernel_size=(3, 3), strides=(1, 1), dilation_rate=(1, 1) is not allowed with rank=1: "
            "a 1-D layer has kernel, stride and dilation 1 along H (the first of each pair)"
        ):
            DepthwiseLayer((3, 3), rank=1)
        with raises(
            "kernel_size=(1, 3), strides=(2, 1), dilation_rate=(1, 1) is not allowed with rank=1: "
            "a 1-D layer has kernel, stride and dilation 1 along H (the first of each pair)"
        ):
            DepthwiseLayer((1, 3), strides=(2, 1), rank=1)
        with raises(
            "kernel_size=(1, 3), strides=(1, 1), dilation_rate=(2, 2) is not allowed with rank=1: "
            "a 1-D layer has kernel, stride and dilation 1 along H (the first of each pair)"
        ):
            DepthwiseLayer((1, 3), dilation_rate=2, rank=1)

    # -- Keras config --------------------------------------------------------------------
    def test_unknown_keras_keys(self):
        with raises(f"unknown argument(s) 'filters', 'kernel_sise' for DepthwiseConv2D: it takes {TAKES}"):
            from_keras_config({**TF2_DW2D, "filters": 8, "kernel_sise": 3})
        with raises(f"unknown argument(s) 'padding_mode' for DepthwiseConv1D: it takes {TAKES}"):
            from_keras_config({**TF213_DW1D, "padding_mode": "zeros"}, class_name="DepthwiseConv1D")
        with raises(f"unknown argument(s) 'foo' for DepthwiseConv2D: it takes {TAKES}"):
            DepthwiseConv2D(3, foo=1)
        with raises(f"unknown argument(s) 'bar' for DepthwiseConv1D: it takes {TAKES}"):
            DepthwiseConv1D(3, bar=None)

    @pytest.mark.parametrize("groups", [2, 8, 0])
    def test_groups(self, groups):
        with raises(f"groups={groups} is not allowed: a depthwise layer has groups=1"):
            from_keras_config({**TF2_DW2D, "groups": groups})

    def test_missing_kernel_size(self):
        cfg = {k: v for k, v in TF2_DW2D.items() if k != "kernel_size"}
        with raises(
            "the DepthwiseConv2D config has no 'kernel_size': it is required (a positive integer "
            "or a pair of them)"
        ):
            from_keras_config(cfg)
        full = json.loads(json.dumps(K3_DW1D_FULL))
        del full["config"]["kernel_size"]
        with raises("the DepthwiseConv1D config has no 'kernel_size': it is required (a positive integer)"):
            from_keras_config(full)

    def test_not_a_dict(self):
        with raises("a Keras layer config must be a dict, not list"):
            from_keras_config([("kernel_size", 3)])
        with raises("a Keras layer config must be a dict, not str"):
            from_keras_config('{"kernel_size": 3}')

    def test_wrong_class_name(self):
        with raises("class_name='Conv2D' is not allowed: use 'DepthwiseConv2D' or 'DepthwiseConv1D'"):
            from_keras_config({"class_name": "Conv2D", "config": {"kernel_size": 3}})
        with raises("class_name='SeparableConv2D' is not allowed: use 'DepthwiseConv2D' or 'DepthwiseConv1D'"):
            from_keras_config({"kernel_size": 3}, class_name="SeparableConv2D")

    def test_keras_config_bad_kernel(self):
        with raises("kernel_size=(3, 3) is not allowed: a 1-D layer takes one positive integer"):
            from_keras_config({"kernel_size": (3, 3)}, class_name="DepthwiseConv1D")

    # -- input shapes ----------------------------------------------------------------------
    @pytest.mark.parametrize("layer, shape, want", [
        (DepthwiseConv2D(3), (5, 5), "(H, W, C) or (N, H, W, C)"),
        (DepthwiseConv2D(3), (1, 5, 5, 3, 1), "(H, W, C) or (N, H, W, C)"),
        (DepthwiseConv2D(3, data_format="channels_first"), (3, 5), "(C, H, W) or (N, C, H, W)"),
        (DepthwiseConv1D(3), (5,), "(W, C) or (N, W, C)"),
        (DepthwiseConv1D(3), (1, 5, 5, 3), "(W, C) or (N, W, C)"),
        (DepthwiseConv1D(3, data_format="channels_first"), (), "(C, W) or (N, C, W)"),
    ])
    def test_input_shape_rank(self, layer, shape, want):
        with raises(
            f"input_shape={shape!r} is not allowed: a {layer.keras_class} with "
            f"{layer.data_format} takes {want}"
        ):
            layer.geometry(shape)

    def test_input_shape_rank_from_generator(self):
        # the message shows the shape even when it came from a one-shot iterable
        with raises(
            "input_shape=(5, 5) is not allowed: a DepthwiseConv2D with channels_last takes "
            "(H, W, C) or (N, H, W, C)"
        ):
            DepthwiseConv2D(3).geometry(iter([5, 5]))

    def test_input_shape_not_iterable(self):
        with raises("input_shape=5 is not allowed: give a tuple of sizes"):
            DepthwiseConv2D(3).geometry(5)

    @pytest.mark.parametrize("shape", [
        (5, 0, 3), (None, 5, 5, 0), (5, -5, 3), (5, 5.0, 3), (None, 5, 3), (2, None, 5, 3),
        (5, True, 3), ("5", 5, 3),
    ])
    def test_input_shape_sizes(self, shape):
        with raises(
            f"input_shape={shape!r} is not allowed: every size must be a positive integer "
            "(only the batch may be None)"
        ):
            DepthwiseConv2D(1).geometry(shape)

    # -- kernel larger than the input with VALID ------------------------------------------
    def test_kernel_larger_than_input_valid(self):
        with raises(
            "kernel_size=(5, 5) with dilation_rate=(1, 1) spans 5 pixels but the input height "
            "is 4 with padding='valid': the kernel must fit inside the input (or use padding='same')"
        ):
            DepthwiseConv2D(5).geometry((4, 10, 3))
        with raises(
            "kernel_size=(3, 3) with dilation_rate=(1, 3) spans 7 pixels but the input width "
            "is 6 with padding='valid': the kernel must fit inside the input (or use padding='same')"
        ):
            DepthwiseConv2D(3, dilation_rate=(1, 3)).geometry((6, 6, 3))
        with raises(
            "kernel_size=10 with dilation_rate=2 spans 19 pixels but the input width is 18 "
            "with padding='valid': the kernel must fit inside the input (or use padding='same')"
        ):
            DepthwiseConv1D(10, dilation_rate=2).geometry((18, 40))
        # exactly fitting is fine, and SAME never fails
        assert DepthwiseConv1D(10, dilation_rate=2).geometry((19, 40)).out_w == 1
        assert DepthwiseConv2D(5, padding="same").geometry((4, 10, 3)).out_h == 4

    # -- tf.nn -------------------------------------------------------------------------------
    @pytest.mark.parametrize("fs, shown", [
        ([3, 3, 8], "(3, 3, 8)"), ([3, 3, 8, 1, 1], "(3, 3, 8, 1, 1)"),
        ([3, 0, 8, 1], "(3, 0, 8, 1)"), ([3, 3, 0, 1], "(3, 3, 0, 1)"),
        ([3, 3, 8, 0], "(3, 3, 8, 0)"), ([3.0, 3, 8, 1], "(3.0, 3, 8, 1)"),
    ])
    def test_tf_nn_bad_filter(self, fs, shown):
        with raises(
            f"filter shape {shown} is not allowed: tf.nn.depthwise_conv2d takes "
            "[kh, kw, C, M], four positive integers"
        ):
            from_tf_nn(fs, [1, 1, 1, 1], "SAME")

    def test_tf_nn_filter_not_a_list(self):
        with raises("filter shape=3 is not allowed: give [kh, kw, C, M]"):
            from_tf_nn(3, [1, 1, 1, 1], "SAME")

    @pytest.mark.parametrize("st, shown", [
        ([1, 2, 2], "(1, 2, 2)"), ([1, 0, 0, 1], "(1, 0, 0, 1)"), ([1, 2.0, 2, 1], "(1, 2.0, 2, 1)"),
    ])
    def test_tf_nn_bad_strides(self, st, shown):
        with raises(
            f"strides={shown} is not allowed: give [1, s, s, 1] (NHWC) or [1, 1, s, s] (NCHW), "
            "positive integers"
        ):
            from_tf_nn([3, 3, 1, 1], st, "SAME")

    def test_tf_nn_strides_not_a_list(self):
        with raises("strides=2 is not allowed: give [1, s, s, 1] (NHWC) or [1, 1, s, s] (NCHW)"):
            from_tf_nn([3, 3, 1, 1], 2, "SAME")

    @pytest.mark.parametrize("st, fmt, shown", [
        ([2, 1, 1, 1], "NHWC", "(2, 1, 1, 1)"), ([1, 1, 1, 2], "NHWC", "(1, 1, 1, 2)"),
        ([1, 2, 2, 1], "NCHW", "(1, 2, 2, 1)"),
    ])
    def test_tf_nn_batch_channel_strides(self, st, fmt, shown):
        with raises(f"strides={shown} is not allowed: the batch and channel strides must be 1"):
            from_tf_nn([3, 3, 1, 1], st, "SAME", data_format=fmt)

    @pytest.mark.parametrize("pad, shown", [("FULL", "'FULL'"), ("causal", "'causal'"), (None, "None")])
    def test_tf_nn_bad_padding(self, pad, shown):
        with raises(f"padding={shown} is not allowed: use 'SAME' or 'VALID'"):
            from_tf_nn([3, 3, 1, 1], [1, 1, 1, 1], pad)

    @pytest.mark.parametrize("fmt, shown", [("NWC", "'NWC'"), ("channels_last", "'channels_last'"), (None, "None")])
    def test_tf_nn_bad_data_format(self, fmt, shown):
        with raises(f"data_format={shown} is not allowed: use 'NHWC' or 'NCHW'"):
            from_tf_nn([3, 3, 1, 1], [1, 1, 1, 1], "SAME", data_format=fmt)

    @pytest.mark.parametrize("rate, shown", [([2, 2, 2], "(2, 2, 2)"), ([0, 1], "(0, 1)"), ((1.5, 1), "(1.5, 1)")])
    def test_tf_nn_bad_rate(self, rate, shown):
        with raises(f"rate={shown} is not allowed: give one positive integer or a pair of them"):
            from_tf_nn([3, 3, 1, 1], [1, 1, 1, 1], "SAME", rate=rate)

    def test_tf_nn_rate_not_a_list(self):
        with raises("rate=1.5 is not allowed: give one positive integer or a pair [rh, rw]"):
            from_tf_nn([3, 3, 1, 1], [1, 1, 1, 1], "SAME", rate=1.5)
        with raises("rate=0 is not allowed: it must be a positive integer"):
            from_tf_nn([3, 3, 1, 1], [1, 1, 1, 1], "SAME", rate=0)
