"""Build the small Keras models behind dwgen's .tflite test fixtures.

Every model is built in Keras, given seeded random weights (batch-norm statistics
included, so folding them into the depthwise weights is not a no-op), and converted
with the TensorFlow Lite converter to a full-integer model: int8 activations and
weights, int32 biases, `inference_input_type = inference_output_type = tf.int8`,
calibrated on a seeded random representative dataset. Inputs have a fixed batch of 1
(as deployed on a microcontroller; with a dynamic batch the converter cannot fuse
dilation, see `dw_dilated_dynamic`). Two more files hold ops dwgen
cannot generate (int16x8 activations from the converter's 16x8 mode, and a float
model), for the reader's "unsupported" listing.

Written to tests/fixtures/ (committed, so CI and users need no TensorFlow):

    dw_configs.tflite         DepthwiseConv2D in several configurations, all fed by one
                              16x16x8 input: 3x3 s1 SAME ReLU6; 5x5 s2 VALID; 3x3
                              dilation 2 SAME ReLU; 3x3 depth_multiplier 2 VALID without
                              bias; 7 (odd) channels 3x3 s2 SAME; 3x5 kernel strides (2,1)
    dw1d.tflite               DepthwiseConv1D x2 (k=5 VALID ReLU; k=3 s2 SAME M=2)
    dw_channels_first.tflite  DepthwiseConv2D(data_format="channels_first"), 3x3 SAME
                              ReLU6, as TRANSPOSE -> DEPTHWISE_CONV_2D -> TRANSPOSE; and
                              two channels_first layers in a row (3x3 s2 VALID, 1x1 M=2)
                              whose inner transposes the converter cancels. (A 1-D
                              channels_first layer does not convert with TF 2.21.)
    kws_dscnn.tflite          DS-CNN keyword spotting (MLPerf Tiny shape: 49x10 MFCC,
                              4 depthwise-separable blocks on 25x5x64)
    mobilenet_tiny.tflite     MobileNetV1-style 32x32x3 net, stride-1 and stride-2 blocks
    dw_dilated_dynamic.tflite dilated DepthwiseConv2D with a dynamic batch: the converter
                              leaves SPACE_TO_BATCH_ND -> DW -> BATCH_TO_SPACE_ND (+ ADD)
    dw_int16x8.tflite         a small DepthwiseConv2D model in int16x8 mode (unsupported)
    dw_float.tflite           the same layers, not quantized (unsupported)

Regenerate (TensorFlow is only needed here; keep it out of the main environment):

    python -m venv /tmp/tfvenv
    /tmp/tfvenv/bin/pip install "tensorflow-cpu>=2.14"    # or: pip install -e '.[models]'
    /tmp/tfvenv/bin/python examples/make_models.py [--out tests/fixtures] [--only NAME ...]

Tested with tensorflow-cpu 2.21 / Keras 3.15 on Python 3.11. The converter's output
depends on its version; the fixtures' tests check structure and numbers read from the
files, not the exact bytes, so regenerated files should still pass.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

SEED = 1234
FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"


def _tf():
    import tensorflow as tf

    return tf


def _keras():
    import keras

    return keras


def _randomize(model, seed: int) -> None:
    """Give every weight a seeded random value (BN variances positive)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        new = []
        for w in layer.weights:
            shape = tuple(w.shape)
            name = w.path if hasattr(w, "path") else w.name
            if "moving_variance" in name:
                v = rng.uniform(0.5, 2.0, size=shape)
            elif "gamma" in name:
                v = rng.uniform(0.5, 1.5, size=shape)
            elif "beta" in name or "moving_mean" in name or "bias" in name:
                v = rng.normal(0.0, 0.2, size=shape)
            else:
                fan_in = max(1, int(np.prod(shape[:-1])))
                v = rng.normal(0.0, 1.0 / np.sqrt(fan_in), size=shape)
            new.append(v.astype("float32"))
        if new:
            layer.set_weights(new)


def _representative(model, seed: int, n: int = 16):
    import numpy as np

    shapes = [tuple(int(d) for d in t.shape[1:]) for t in model.inputs]

    def gen():
        rng = np.random.default_rng(seed)
        for _ in range(n):
            yield [rng.normal(0.0, 1.0, size=(1,) + s).astype("float32") for s in shapes]

    return gen


def convert(model, mode: str = "int8", seed: int = SEED) -> bytes:
    """Convert a Keras model: "int8" (full integer), "int16x8" or "float"."""
    tf = _tf()
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if mode == "float":
        return conv.convert()
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = _representative(model, seed)
    if mode == "int8":
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    elif mode == "int16x8":
        conv.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        ]
        conv.inference_input_type = tf.int16
        conv.inference_output_type = tf.int16
    else:
        raise ValueError(mode)
    return conv.convert()


# -- the models ---------------------------------------------------------------------------
def dw_configs():
    k = _keras()
    L = k.layers
    x = k.Input((16, 16, 8), batch_size=1, name="x")
    outs = [
        L.DepthwiseConv2D(3, padding="same", activation="relu6", name="dw3x3_s1_same_relu6")(x),
        L.DepthwiseConv2D(5, strides=2, padding="valid", name="dw5x5_s2_valid")(x),
        L.DepthwiseConv2D(3, dilation_rate=2, padding="same", activation="relu", name="dw3x3_d2_same_relu")(x),
        L.DepthwiseConv2D(3, depth_multiplier=2, use_bias=False, name="dw3x3_m2_valid_nobias")(x),
    ]
    odd = L.Conv2D(7, 1, name="pw_to_7")(x)
    outs.append(L.DepthwiseConv2D(3, strides=2, padding="same", name="dw3x3_s2_same_c7")(odd))
    outs.append(L.DepthwiseConv2D((3, 5), strides=(2, 1), padding="same", name="dw3x5_s2x1_same")(odd))
    return k.Model(x, outs, name="dw_configs")


def dw1d():
    k = _keras()
    L = k.layers
    x = k.Input((32, 12), batch_size=1, name="x")
    y = L.DepthwiseConv1D(5, padding="valid", activation="relu", name="dw1d_k5_valid_relu")(x)
    y = L.DepthwiseConv1D(3, strides=2, padding="same", depth_multiplier=2, name="dw1d_k3_s2_same_m2")(y)
    return k.Model(x, y, name="dw1d")


def dw_channels_first():
    k = _keras()
    L = k.layers
    x = k.Input((8, 10, 10), batch_size=1, name="x_nchw")
    y = L.DepthwiseConv2D(3, padding="same", activation="relu6", data_format="channels_first",
                          name="dw_cf_3x3_same_relu6")(x)
    # two channels_first layers in a row: the converter cancels the transposes between them
    y2 = L.DepthwiseConv2D(3, strides=2, padding="valid", data_format="channels_first", name="dw_cf_chain_a")(x)
    y2 = L.DepthwiseConv2D(1, depth_multiplier=2, data_format="channels_first", name="dw_cf_chain_b")(y2)
    # (DepthwiseConv1D(data_format="channels_first") is not here: the TF 2.21 converter
    # fails on it with "'tf.Transpose' op x should be of the same rank with y".)
    return k.Model(x, [y, y2], name="dw_channels_first")


def kws_dscnn():
    """DS-CNN (Zhang et al. 2017), the MLPerf Tiny keyword-spotting shape."""
    k = _keras()
    L = k.layers
    x = k.Input((49, 10, 1), batch_size=1, name="mfcc")
    y = L.Conv2D(64, (10, 4), strides=(2, 2), padding="same", use_bias=False, name="conv1")(x)
    y = L.BatchNormalization(name="conv1_bn")(y)
    y = L.ReLU(name="conv1_relu")(y)
    for i in range(1, 5):
        y = L.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"dw{i}")(y)
        y = L.BatchNormalization(name=f"dw{i}_bn")(y)
        y = L.ReLU(name=f"dw{i}_relu")(y)
        y = L.Conv2D(64, 1, use_bias=False, name=f"pw{i}")(y)
        y = L.BatchNormalization(name=f"pw{i}_bn")(y)
        y = L.ReLU(name=f"pw{i}_relu")(y)
    y = L.GlobalAveragePooling2D(name="pool")(y)
    y = L.Dense(12, activation="softmax", name="logits")(y)
    return k.Model(x, y, name="kws_dscnn")


def mobilenet_tiny():
    """MobileNetV1-style: conv s2, then depthwise-separable blocks with ReLU6."""
    k = _keras()
    L = k.layers
    x = k.Input((32, 32, 3), batch_size=1, name="image")
    y = L.Conv2D(8, 3, strides=2, padding="same", use_bias=False, name="conv1")(x)
    y = L.BatchNormalization(name="conv1_bn")(y)
    y = L.ReLU(6.0, name="conv1_relu")(y)
    for i, (stride, filters) in enumerate([(1, 16), (2, 32), (1, 32), (2, 64), (1, 64)], start=1):
        y = L.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"conv_dw_{i}")(y)
        y = L.BatchNormalization(name=f"conv_dw_{i}_bn")(y)
        y = L.ReLU(6.0, name=f"conv_dw_{i}_relu")(y)
        y = L.Conv2D(filters, 1, use_bias=False, name=f"conv_pw_{i}")(y)
        y = L.BatchNormalization(name=f"conv_pw_{i}_bn")(y)
        y = L.ReLU(6.0, name=f"conv_pw_{i}_relu")(y)
    y = L.GlobalAveragePooling2D(name="pool")(y)
    y = L.Dense(2, activation="softmax", name="predictions")(y)
    return k.Model(x, y, name="mobilenet_tiny")


def dw_dilated_dynamic():
    """Dilated layers in a model with a dynamic batch size.

    With an unknown batch the converter does not fuse TensorFlow's dilation lowering:
    a dilated DepthwiseConv2D becomes SPACE_TO_BATCH_ND -> DEPTHWISE_CONV_2D (no
    dilation, batch = block size) -> BATCH_TO_SPACE_ND, and the Keras 3 bias/activation
    is left as a separate ADD (or RELU) op. dwgen reports that as pattern "dilated".
    """
    k = _keras()
    L = k.layers
    x = k.Input((16, 16, 8), name="x")  # batch None on purpose
    a = L.DepthwiseConv2D(3, dilation_rate=2, padding="same", activation="relu", name="dwd_2_same_relu")(x)
    b = L.DepthwiseConv2D(3, dilation_rate=(2, 3), padding="valid", use_bias=False, name="dwd_2x3_valid_nobias")(x)
    return k.Model(x, [a, b], name="dw_dilated_dynamic")


def dw_small():
    """Two DepthwiseConv2D layers, for the int16x8 and float variants."""
    k = _keras()
    L = k.layers
    x = k.Input((8, 8, 4), batch_size=1, name="x")
    y = L.DepthwiseConv2D(3, padding="same", activation="relu", name="dw_a")(x)
    y = L.DepthwiseConv2D(3, strides=2, padding="valid", depth_multiplier=2, name="dw_b")(y)
    return k.Model(x, y, name="dw_small")


MODELS = {
    "dw_configs": (dw_configs, "int8"),
    "dw1d": (dw1d, "int8"),
    "dw_channels_first": (dw_channels_first, "int8"),
    "kws_dscnn": (kws_dscnn, "int8"),
    "mobilenet_tiny": (mobilenet_tiny, "int8"),
    "dw_dilated_dynamic": (dw_dilated_dynamic, "int8"),
    "dw_int16x8": (dw_small, "int16x8"),
    "dw_float": (dw_small, "float"),
}


def build(name: str, out: Path) -> Path:
    k = _keras()
    factory, mode = MODELS[name]
    k.utils.set_random_seed(SEED)
    model = factory()
    _randomize(model, SEED)
    data = convert(model, mode)
    path = out / f"{name}.tflite"
    path.write_bytes(data)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=FIXTURES, help="output folder (default: tests/fixtures)")
    ap.add_argument("--only", nargs="*", choices=sorted(MODELS), help="build only these models")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.only or MODELS:
        path = build(name, args.out)
        print(f"{path}: {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
