"""The one exception family dwgen raises for bad input.

Everything a user can get wrong (a layer argument, a quantization parameter, a model
file, a CLI flag) ends in a `DwgenError` with a message that says what is wrong and
what is accepted. The CLI prints it as one line and exits with status 2.
"""


class DwgenError(Exception):
    """Base class of every error dwgen reports to a user."""


class LayerError(DwgenError, ValueError):
    """An invalid layer configuration (Keras raises ValueError for the same cases)."""


class LayerSizeError(LayerError):
    """A valid layer too large for the generated C's 32-bit index arithmetic."""


class QuantizationError(DwgenError, ValueError):
    """Invalid quantization parameters, weights or bias."""


class ModelError(DwgenError):
    """A .tflite file that cannot be read or does not hold what dwgen needs."""


class BuildError(DwgenError):
    """A compiler or toolchain problem while building generated code."""


class OracleUnavailable(DwgenError):
    """No TFLite interpreter (or TFLite Micro) is installed."""


def show_value(value: object, limit: int = 100) -> str:
    """`repr(value)` for an error message, kept short: messages are one line, and a
    layer file may put a long list (or, through the API, a huge integer) anywhere."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # an int past Python's digit limit, a deep nest
        return f"<a {type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
