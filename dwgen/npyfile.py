"""Reading untrusted .npy arrays and .npz archives: header first, within a byte budget.

`numpy.load` allocates whatever a header claims and decompresses a whole archive member
before anyone can look at its shape, so a 200-byte file can ask for terabytes and a 1 MB
.npz can inflate to gigabytes. Here the .npy header is parsed on its own (at most
`MAX_HEADER_BYTES`), its dtype and shape are compared with what the caller expects, and
only then are exactly the promised bytes read, never more than `max_bytes` per array
(`MAX_ARRAY_BYTES` by default). An archive's central directory is sized from its end
record before `zipfile` parses it, so an archive listing millions of members is refused
without building them. Every problem is a `DwgenError` saying what is wrong and what
is accepted; no pickle is ever loaded.

    header = read_npy_header(fileobj)                  # NpyHeader(shape, dtype, fortran_order, offset)
    x = load_npy_checked("in.npy", (1, 8, 8, 4), np.int8)
    with NpzArchive("layer.npz") as npz:                # members in archive order: npz.names
        w = npz.load("weights", [(3, 3, 4, 1), (3, 3, 4)], (np.int8, np.float32))
        x = load_npy_checked(npz.member("bias"), (4,), np.int32)
"""

from __future__ import annotations

import ast
import math
import os
import stat
import struct
import zipfile
import zlib
from pathlib import Path
from typing import IO, Any, Iterable, NamedTuple, Sequence

import numpy as np

from .errors import DwgenError

#: Largest array (in bytes) read unless the caller says otherwise.
MAX_ARRAY_BYTES = 64 * 2**20
#: Largest .npy header accepted (numpy.save writes ~128 bytes; version 1.0 allows 65535).
MAX_HEADER_BYTES = 65535
#: Most dimensions an array may have (numpy's own limit is 64).
MAX_NDIM = 32
#: An .npz's central directory may take at most this many bytes and list this many members
#: (numpy.savez writes ~60 bytes per array), so parsing it costs bounded memory.
MAX_DIRECTORY_BYTES = 64 * 1024
MAX_MEMBERS = 256

_MAGIC = b"\x93NUMPY"
_NUMERIC_KINDS = "biufc"
# What zipfile raises on a damaged or hostile archive: NotImplementedError for a compression
# method it lacks, RuntimeError for an encrypted member, struct.error for a short record.
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, RuntimeError,
               NotImplementedError, ValueError, struct.error)
try:  # a member may be LZMA-compressed; some Python builds lack the module
    import lzma

    _ZIP_ERRORS = _ZIP_ERRORS + (lzma.LZMAError,)
except ImportError:  # pragma: no cover
    pass


class NpyHeader(NamedTuple):
    """What a .npy header declares; `offset` is where the data starts."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    offset: int

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize


class ZipMember(NamedTuple):
    """One member of an open archive, as `NpzArchive.member` returns it."""

    archive: zipfile.ZipFile
    info: zipfile.ZipInfo
    label: str  # how messages name it, e.g. "layer.npz: array 'weights'"


def human_bytes(n: int) -> str:
    """`64 MiB`, `9.09 TiB`, or `about 2^200 bytes` for sizes no disk holds."""
    if n < 1024:
        return f"{n} bytes"
    units = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
    power = (n.bit_length() - 1) // 10  # the largest power of 1024 not above n
    if power > len(units):
        return f"about 2^{n.bit_length() - 1} bytes"
    v = f"{n / 1024**power:.2f}".rstrip("0").rstrip(".")
    return f"{v} {units[power - 1]}"


def _dim(d: int) -> str:
    # A header may declare dimensions with thousands of digits: print those by magnitude,
    # so every message stays one short line (and str() never hits the int-digits limit).
    return str(d) if d.bit_length() <= 64 else f"~2^{d.bit_length() - 1}"


def format_shape(shape: Sequence[int]) -> str:
    return "[" + ", ".join(_dim(int(d)) for d in shape) + "]"


def _dtype_name(dt: np.dtype) -> str:
    return str(dt.newbyteorder("=")) if dt.byteorder not in "=|" else str(dt)


def _fail(label: str, msg: str) -> DwgenError:
    return DwgenError(f"{label} {msg}")


def _read_exact(f: IO[bytes], n: int, label: str, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise _fail(label, f"is truncated: it ends inside its {what}")
    return data


def read_npy_header(f: IO[bytes], label: str = "the array") -> NpyHeader:
    """Parse the .npy header at the start of `f` (read position: just past the header).

    The shape must be a tuple of non-negative integers (at most `MAX_NDIM`), the dtype a
    plain numeric one (bool, integers, floats, complex: no objects, records, strings or
    sub-arrays), and `fortran_order` a bool. Nothing is allocated from the declared size.
    """
    magic = f.read(len(_MAGIC))
    if magic != _MAGIC:
        raise _fail(label, "is not a .npy array: it does not start with the \\x93NUMPY magic numpy.save writes")
    major, minor = _read_exact(f, 2, label, ".npy header")
    if (major, minor) not in ((1, 0), (2, 0), (3, 0)):
        raise _fail(label, f"has .npy format version {major}.{minor}: dwgen reads versions 1.0, 2.0 and 3.0")
    width = 2 if major == 1 else 4
    hlen = int.from_bytes(_read_exact(f, width, label, ".npy header"), "little")
    if hlen > MAX_HEADER_BYTES:
        raise _fail(label, f"has a {hlen}-byte .npy header: at most {MAX_HEADER_BYTES} bytes are accepted")
    raw = _read_exact(f, hlen, label, ".npy header")
    offset = len(_MAGIC) + 2 + width + hlen
    try:
        text = raw.decode("utf-8" if major == 3 else "latin-1")
        # literal_eval builds only literals; the length cap above bounds its work, and deep
        # nesting or a huge integer literal raise the exceptions caught here.
        header = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError, UnicodeDecodeError):
        raise _fail(label, "has an unreadable .npy header: it is not the dict numpy.save writes") from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise _fail(label, "has a .npy header without exactly the keys 'descr', 'fortran_order' and 'shape'")
    descr, fortran, shape = header["descr"], header["fortran_order"], header["shape"]
    if not isinstance(fortran, bool):
        raise _fail(label, "has a .npy header whose 'fortran_order' is not True or False")
    if (not isinstance(shape, tuple) or len(shape) > MAX_NDIM
            or not all(type(d) is int and d >= 0 for d in shape)):
        raise _fail(label, f"has a .npy header whose 'shape' is not a tuple of at most {MAX_NDIM} "
                           "non-negative integers")
    if not isinstance(descr, str) or len(descr) > 16:
        raise _fail(label, "has a non-numeric dtype (a record, object or sub-array type): "
                           "dwgen reads bool, integer, float and complex arrays")
    try:
        dtype = np.dtype(descr)
    except (TypeError, ValueError, OverflowError, SyntaxError):
        raise _fail(label, f"has dtype {descr!r}, which numpy does not know") from None
    if dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise _fail(label, f"has dtype {_dtype_name(dtype)}: dwgen reads bool, integer, float and complex arrays")
    return NpyHeader(shape, dtype, fortran, offset)


def _as_shapes(expected: Any) -> list[tuple[int, ...]] | None:
    if expected is None:
        return None
    expected = tuple(expected)
    if all(isinstance(d, (int, np.integer)) for d in expected):
        return [tuple(int(d) for d in expected)]
    return [tuple(int(d) for d in s) for s in expected]


def _as_dtypes(dtype: Any) -> list[np.dtype] | None:
    if dtype is None:
        return None
    if isinstance(dtype, (list, tuple, set, frozenset)):
        return [np.dtype(d) for d in dtype]
    return [np.dtype(dtype)]


def check_header(header: NpyHeader, expected_shape: Any = None, dtype: Any = None,
                 max_bytes: int = MAX_ARRAY_BYTES, label: str = "the array") -> None:
    """Refuse a header whose dtype, shape or size is not what the caller reads.

    `expected_shape` is one shape or a list of accepted shapes; `dtype` one dtype or a list
    (byte order does not matter). The dtype is checked first, then the shape, then the size.
    """
    dtypes = _as_dtypes(dtype)
    if dtypes is not None and header.dtype.newbyteorder("=") not in [d.newbyteorder("=") for d in dtypes]:
        names = ", ".join(str(d) for d in dtypes)
        raise _fail(label, f"has dtype {_dtype_name(header.dtype)}: it must be {names}")
    shapes = _as_shapes(expected_shape)
    if shapes is not None and header.shape not in shapes:
        raise _fail(label, f"has shape {format_shape(header.shape)}: it must be "
                           + " or ".join(format_shape(s) for s in shapes))
    if header.nbytes > max_bytes:
        raise _fail(label, f"holds {human_bytes(header.nbytes)} (shape {format_shape(header.shape)}, "
                           f"{_dtype_name(header.dtype)}): dwgen reads at most {human_bytes(max_bytes)} per array")


def _read_data(f: IO[bytes], header: NpyHeader, label: str) -> np.ndarray:
    buf = bytearray(header.nbytes)
    view, got = memoryview(buf), 0
    while got < len(buf):
        n = f.readinto(view[got:])
        if not n:
            raise _fail(label, f"is truncated: its header declares {human_bytes(header.nbytes)} of data "
                               f"but it holds {human_bytes(got)}")
        got += n
    arr = np.frombuffer(buf, dtype=header.dtype)
    if header.fortran_order:
        arr = arr.reshape(header.shape[::-1]).transpose()
    else:
        arr = arr.reshape(header.shape)
    if header.dtype.byteorder not in "=|":
        arr = arr.astype(header.dtype.newbyteorder("="))
    return arr


def open_regular_file(path: str | os.PathLike, label: str | None = None) -> IO[bytes]:
    """Open `path` for reading if it is a regular file (never blocking on a FIFO or device)."""
    label = str(path) if label is None else label
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise DwgenError(f"{label}: no such file") from None
    except OSError as exc:
        raise DwgenError(f"{label}: cannot open it ({exc.strerror or exc.__class__.__name__})") from None
    except ValueError:  # an embedded NUL byte
        raise DwgenError(f"{label}: not a valid file name") from None
    try:
        mode = os.fstat(fd).st_mode
    except OSError as exc:
        os.close(fd)
        raise DwgenError(f"{label}: cannot open it ({exc.strerror or exc.__class__.__name__})") from None
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise DwgenError(f"{label}: it is {kind}: give the path of a file")
    return os.fdopen(fd, "rb")


def load_npy_checked(source: str | os.PathLike | ZipMember, expected_shape: Any = None, dtype: Any = None,
                     max_bytes: int = MAX_ARRAY_BYTES, label: str | None = None) -> np.ndarray:
    """Read one array from a .npy file or an archive member, checking its header first.

    `expected_shape`/`dtype` as in `check_header` (None: any shape / any numeric dtype);
    `label` is how messages name a .npy file (default: its path).
    The returned array is native-endian and C-contiguous unless the file was Fortran-ordered.
    """
    if isinstance(source, ZipMember):
        return _load_member(source, expected_shape, dtype, max_bytes)
    name = str(source) if label is None else label
    label = f"{name}: the array"
    with open_regular_file(source, name) as f:
        header = read_npy_header(f, label)
        check_header(header, expected_shape, dtype, max_bytes, label)
        size = os.fstat(f.fileno()).st_size
        if size < header.offset + header.nbytes:
            raise _fail(label, f"is truncated: its header declares {human_bytes(header.nbytes)} of data "
                               f"but the file holds {human_bytes(max(size - header.offset, 0))}")
        return _read_data(f, header, label)


def _load_member(m: ZipMember, expected_shape: Any, dtype: Any, max_bytes: int) -> np.ndarray:
    label = m.label
    try:
        with m.archive.open(m.info) as f:
            header = read_npy_header(f, label)
            check_header(header, expected_shape, dtype, max_bytes, label)
            # The directory's size is what zipfile checks the inflated stream against; an
            # array numpy.save wrote fills it exactly, so reading it to the end is bounded
            # by the check above and verifies the CRC.
            if m.info.file_size != header.offset + header.nbytes:
                raise _fail(label, f"is {m.info.file_size} bytes in the archive but its header describes "
                                   f"{header.offset + header.nbytes}: it is not an array numpy.savez wrote")
            arr = _read_data(f, header, label)
            if f.read(1):
                raise _fail(label, "holds more data than its size in the archive: the archive is corrupt")
            return arr
    except DwgenError:
        raise
    except _ZIP_ERRORS as exc:
        raise _fail(label, f"cannot be read from the archive ({exc.__class__.__name__}: {exc})") from None


def _directory_extent(f: IO[bytes], size: int) -> tuple[int, int]:
    """(members, bytes) of a zip's central directory, read from its end records."""
    tail_len = min(size, 22 + 65535)
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    i = tail.rfind(b"PK\x05\x06")
    if i < 0 or len(tail) - i < 22:
        raise zipfile.BadZipFile("no end of central directory record")
    members, cd_size = struct.unpack_from("<H", tail, i + 10)[0], struct.unpack_from("<L", tail, i + 12)[0]
    loc = size - tail_len + i - 20
    if loc >= 0:
        f.seek(loc)
        locator = f.read(20)
        if locator[:4] == b"PK\x06\x07":
            rec_at = struct.unpack_from("<Q", locator, 8)[0]
            if rec_at > size - 56:
                raise zipfile.BadZipFile("the zip64 end record lies outside the file")
            f.seek(rec_at)
            rec = f.read(56)
            if rec[:4] != b"PK\x06\x06":
                raise zipfile.BadZipFile("bad zip64 end record")
            members, cd_size = struct.unpack_from("<QQ", rec, 32)
    return members, cd_size


class NpzArchive:
    """An .npz opened for header-first reads; use as a context manager.

    `names` lists the arrays in archive order (member `x.npy` is array `x`, as in numpy).
    """

    def __init__(self, path: str | os.PathLike, label: str | None = None):
        self.path = Path(path)
        self.label = str(path) if label is None else label
        self._file = open_regular_file(path, self.label)
        try:
            self._zip = self._open()
            self._members: dict[str, zipfile.ZipInfo] = {}
            for info in self._zip.infolist():
                name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                if name in self._members:
                    raise DwgenError(f"{self.label}: it holds two arrays named {name!r}: the archive is corrupt")
                self._members[name] = info
        except BaseException:
            self.close()
            raise

    def _open(self) -> zipfile.ZipFile:
        f, label = self._file, self.label
        head = f.read(len(_MAGIC))
        if head == _MAGIC:
            raise DwgenError(f"{label}: it is a single .npy array, not an .npz archive: save it with "
                             "numpy.savez (or give the arrays an .npz of their own)")
        if head[:2] != b"PK":
            raise DwgenError(f"{label}: it is not an .npz archive (the zip file numpy.savez writes)")
        try:
            size = os.fstat(f.fileno()).st_size
            members, cd_size = _directory_extent(f, size)
            if members > MAX_MEMBERS or cd_size > MAX_DIRECTORY_BYTES:
                raise DwgenError(
                    f"{label}: the archive lists {members} members in a {human_bytes(cd_size)} directory: "
                    f"an .npz dwgen reads has at most {MAX_MEMBERS} arrays ({human_bytes(MAX_DIRECTORY_BYTES)} "
                    "of directory)"
                )
            f.seek(0)
            return zipfile.ZipFile(f)
        except DwgenError:
            raise
        except _ZIP_ERRORS as exc:
            raise DwgenError(f"{label}: cannot read it as an .npz archive ({exc.__class__.__name__}: {exc})") from None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._members)

    def member(self, name: str) -> ZipMember:
        if name not in self._members:
            raise DwgenError(f"{self.label}: it has no array {name!r} (it holds {', '.join(map(repr, self.names))})")
        return ZipMember(self._zip, self._members[name], f"{self.label}: array {name!r}")

    def header(self, name: str) -> NpyHeader:
        m = self.member(name)
        try:
            with m.archive.open(m.info) as f:
                return read_npy_header(f, m.label)
        except DwgenError:
            raise
        except _ZIP_ERRORS as exc:
            raise _fail(m.label, f"cannot be read from the archive ({exc.__class__.__name__}: {exc})") from None

    def load(self, name: str, expected_shape: Any = None, dtype: Any = None,
             max_bytes: int = MAX_ARRAY_BYTES) -> np.ndarray:
        return load_npy_checked(self.member(name), expected_shape, dtype, max_bytes)

    def close(self) -> None:
        z = getattr(self, "_zip", None)
        if z is not None:
            z.close()
        self._file.close()

    def __enter__(self) -> "NpzArchive":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "MAX_ARRAY_BYTES", "MAX_DIRECTORY_BYTES", "MAX_HEADER_BYTES", "MAX_MEMBERS", "MAX_NDIM", "NpyHeader",
    "NpzArchive", "ZipMember", "check_header", "format_shape", "human_bytes", "load_npy_checked",
    "open_regular_file", "read_npy_header",
]
