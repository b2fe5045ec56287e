"""dwgen: specialized, TFLite-bit-exact int8 depthwise-convolution kernels for Cortex-M."""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("dwgen-mcu")  # the distribution name (the package is dwgen)
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

from .errors import DwgenError, LayerError, ModelError, QuantizationError  # noqa: E402
from .layer import (  # noqa: E402
    DepthwiseConv1D,
    DepthwiseConv2D,
    DepthwiseLayer,
    Geometry,
    from_keras_config,
    from_tf_nn,
)
from .qlayer import QuantizedLayer  # noqa: E402
from .quant import Quantization, quantize_multiplier  # noqa: E402
from .reference import depthwise_conv as reference  # noqa: E402

__all__ = [
    "DepthwiseConv1D", "DepthwiseConv2D", "DepthwiseLayer", "DwgenError", "Geometry",
    "LayerError", "ModelError", "QuantizationError", "Quantization", "QuantizedLayer",
    "__version__", "from_keras_config", "from_tf_nn", "quantize_multiplier", "reference",
]
