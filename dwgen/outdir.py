"""Writing generated files into OUTDIR: all or nothing, one dwgen at a time.

Files are rendered completely in memory first. Then:

* **OUTDIR does not exist**: every file is written into a fresh directory beside it, which is
  renamed to OUTDIR in one step, so OUTDIR appears complete or not at all. When another run
  creates OUTDIR first, the rename fails and this run goes the way below instead.
* **OUTDIR exists**: dwgen takes an exclusive lock on it (``flock`` on the directory itself,
  so nothing is added to it; where that is unavailable, an ``O_EXCL`` lock file
  ``.dwgen.lock`` inside it) and holds it for the whole write. Under the lock it computes the
  files that depend on what the directory holds (``index``: the test main listing every
  kernel with vectors, the model manifest), checks every target (a directory or a device
  where a file goes is refused; an existing file needs ``force`` unless the index
  regenerates it), stages every file in a temporary directory *inside* OUTDIR (same file
  system, so no rename crosses devices), and renames them into place. Each file it replaces
  is kept as a hard link (or moved aside) until the end; if any rename fails, the files
  already moved are put back, and the directory is as it was.

Operating-system errors become one-line `DwgenError`s naming the path and the reason.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional

from .errors import DwgenError

try:
    import fcntl
except ImportError:  # Windows: fall back to a lock file
    fcntl = None

#: Seconds to wait for another dwgen run to finish writing into the same directory.
LOCK_TIMEOUT = 60.0
LOCK_FILE = ".dwgen.lock"
STAGE_PREFIX = ".dwgen-stage-"  # inside OUTDIR, only while its lock is held
NEW_PREFIX = ".dwgen-new-"  # beside a new OUTDIR
#: A staging directory older than this is the remains of a killed run (the lock excludes a live one).
STALE_AFTER = 3600.0

_REASONS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.ELOOP: "too many levels of symbolic links (a symlink loop?)",
    errno.ENAMETOOLONG: "file name too long",
    errno.ENOTDIR: "a component of the path is not a directory",
    errno.ENOENT: "a directory on the path does not exist",
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EXDEV: "the rename would cross file systems",
    errno.EBUSY: "device or resource busy (a mount point?)",
    errno.EISDIR: "it is a directory",
    errno.EIO: "input/output error",
}


@dataclass
class Index:
    """Files computed from the directory's current contents (under its lock)."""

    files: dict = field(default_factory=dict)  # name -> str | bytes
    regenerated: set = field(default_factory=set)  # of those, the ones replaced without --force


#: Called with OUTDIR (locked) or None (a new, empty directory).
IndexFn = Callable[[Optional[Path]], Index]


def show(path: str | Path) -> str:
    """A path for a one-line message: as is when printable, else quoted with escapes."""
    s = str(path)
    return s if s.isprintable() else repr(s)


def os_error(path: str | Path, exc: OSError, action: str = "write to") -> DwgenError:
    reason = _REASONS.get(exc.errno) or str(exc.strerror or exc.__class__.__name__).lower()
    return DwgenError(f"cannot {action} {show(path)}: {reason}")


def read_head(path: str | Path, limit: int) -> bytes | None:
    """Up to `limit` bytes of the regular file `path`, or None for anything else (missing,
    unreadable, a directory, a FIFO or device, which a plain open() could block on)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks, left = [], limit
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def write_files(
    outdir: str | Path,
    files: Mapping[str, str | bytes],
    force: bool = False,
    index: IndexFn | None = None,
) -> list[Path]:
    """Write `files` (plain name -> content) into `outdir`, all or nothing (see the module)."""
    outdir = Path(outdir)
    files = dict(files)
    _check_names(files)
    # Each retry follows a concurrent change (OUTDIR created, or replaced, by someone else).
    for _ in range(8):
        if not _is_directory(outdir):
            written = _create(outdir, files, index)
        else:
            written = _update(outdir, files, force, index)
        if written is not None:
            return written
    raise DwgenError(f"{show(outdir)} keeps changing while dwgen writes into it: nothing was written")


def _check_names(files: Mapping[str, object]) -> None:
    for name in files:
        if (not isinstance(name, str) or Path(name).name != name or name in ("", ".", "..")
                or name.startswith((STAGE_PREFIX, NEW_PREFIX)) or name == LOCK_FILE):
            raise DwgenError(f"refusing to write {name!r}: generated file names are plain names")


def _is_directory(outdir: Path) -> bool:
    """True for an existing directory, False for nothing there; anything else is an error."""
    try:
        st = os.stat(outdir)
    except FileNotFoundError:
        if os.path.islink(outdir):
            raise DwgenError(f"cannot write to {show(outdir)}: it is a symbolic link to "
                             f"{show(os.readlink(outdir))}, which does not exist") from None
        return False
    except OSError as exc:
        raise os_error(outdir, exc) from None
    if not stat.S_ISDIR(st.st_mode):
        raise DwgenError(f"{show(outdir)} exists and is not a directory")
    return True


def _mkdir_unique(parent: Path, prefix: str) -> Path:
    # os.mkdir honours the umask, so a new OUTDIR gets the usual permissions (mkdtemp's are 0700).
    for _ in range(100):
        p = parent / f"{prefix}{secrets.token_hex(4)}"
        try:
            os.mkdir(p, 0o777)
            return p
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "cannot find a free staging name", str(parent))


def _write_all(directory: Path, files: Mapping[str, str | bytes]) -> None:
    for name, content in files.items():
        data = content.encode("ascii") if isinstance(content, str) else bytes(content)
        with open(directory / name, "xb") as f:
            f.write(data)


def _create(outdir: Path, files: dict, index: IndexFn | None) -> list[Path] | None:
    """A new OUTDIR, complete in one rename; None when it appeared meanwhile."""
    parent = outdir.parent
    try:
        pst = os.stat(parent)
    except FileNotFoundError:
        raise DwgenError(f"cannot create {show(outdir)}: its parent directory {show(parent)} does not exist") from None
    except OSError as exc:
        raise os_error(outdir, exc, "create") from None
    if not stat.S_ISDIR(pst.st_mode):
        raise DwgenError(f"cannot create {show(outdir)}: {show(parent)} is not a directory")
    extra = index(None) if index is not None else Index()
    _check_names(extra.files)
    everything = {**files, **extra.files}
    try:
        staging = _mkdir_unique(parent, NEW_PREFIX)
    except OSError as exc:
        raise os_error(outdir, exc, "create") from None
    try:
        _write_all(staging, everything)
        try:
            os.rename(staging, outdir)
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
                return None  # another run (or user) created it: go the locked way
            raise
    except OSError as exc:
        raise os_error(outdir, exc, "create") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return [outdir / n for n in everything]


def _update(outdir: Path, files: dict, force: bool, index: IndexFn | None) -> list[Path] | None:
    """Write into an existing OUTDIR under its lock; None when it was replaced meanwhile."""
    with _DirLock(outdir) as lock:
        _remove_stale(outdir)
        extra = index(outdir) if index is not None else Index()
        _check_names(extra.files)
        everything = {**files, **extra.files}
        clashes = []
        for name in everything:
            target = outdir / name
            try:
                st = os.lstat(target)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise os_error(target, exc, "replace") from None
            if stat.S_ISDIR(st.st_mode):
                raise DwgenError(f"cannot replace {show(target)}: it is a directory, and dwgen only replaces "
                                 "files; nothing was written")
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                raise DwgenError(f"cannot replace {show(target)}: it is not a regular file; nothing was written")
            if name not in extra.regenerated:
                clashes.append(name)
        if clashes and not force:
            raise DwgenError(f"{show(outdir)} already has {', '.join(sorted(clashes))}: pass --force to overwrite")
        try:
            staging = _mkdir_unique(outdir, STAGE_PREFIX)
        except OSError as exc:
            raise os_error(outdir, exc) from None
        try:
            # Only now, with OUTDIR non-empty, can nobody rename another directory over it.
            if not lock.still_current():
                return None
            try:
                _write_all(staging, everything)
            except OSError as exc:
                raise DwgenError(f"{os_error(outdir, exc).args[0]}; nothing was changed") from None
            _move_into_place(outdir, staging, list(everything))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return [outdir / n for n in everything]


def _move_into_place(outdir: Path, staging: Path, names: list[str]) -> None:
    """Rename staged files over their targets; on failure put every replaced file back."""
    backups = staging / f"{STAGE_PREFIX}backup"  # _check_names keeps generated files off this name
    done: list[list] = []  # [name, backup path or None, target moved aside?, replaced?]
    current = None
    try:
        os.mkdir(backups)
        for name in names:
            current = target = outdir / name
            entry = [name, None, False, False]
            if os.path.lexists(target):
                backup = backups / name
                try:  # a second link keeps the old file without a moment where the target is missing
                    os.link(target, backup, follow_symlinks=False)
                except (OSError, NotImplementedError):  # no hard links here (file system or OS)
                    os.rename(target, backup)
                    entry[2] = True
                entry[1] = backup
            done.append(entry)
            os.replace(staging / name, target)
            entry[3] = True
    except BaseException as exc:
        failed = []
        for name, backup, moved, replaced in reversed(done):
            try:
                if backup is not None and (replaced or moved):
                    os.replace(backup, outdir / name)
                elif replaced:
                    os.unlink(outdir / name)
            except OSError:
                failed.append(name)
        if failed:  # keep the originals out of reach of the staging directory's removal
            kept = outdir / f".dwgen-backup-{secrets.token_hex(4)}"
            try:
                os.rename(backups, kept)
            except OSError:
                kept = backups
        if not isinstance(exc, OSError):
            raise  # KeyboardInterrupt and the like, after the rollback
        msg = os_error(current or outdir, exc).args[0]
        if failed:
            raise DwgenError(f"{msg}; could not restore {', '.join(sorted(failed))}: the originals are in "
                             f"{show(kept)}") from None
        raise DwgenError(f"{msg}; nothing was changed") from None


def _remove_stale(outdir: Path) -> None:
    try:
        entries = [e for e in os.scandir(outdir) if e.name.startswith(STAGE_PREFIX)]
    except OSError:
        return
    now = time.time()
    for e in entries:
        try:
            if e.is_dir(follow_symlinks=False) and now - e.stat(follow_symlinks=False).st_mtime > STALE_AFTER:
                shutil.rmtree(e.path, ignore_errors=True)
        except OSError:
            continue


class _DirLock:
    """An exclusive lock on a directory for the duration of a `with` block."""

    def __init__(self, outdir: Path, timeout: float | None = None):
        self.outdir = outdir
        self.timeout = LOCK_TIMEOUT if timeout is None else timeout
        self.fd: int | None = None
        self.lockfile: Path | None = None

    def __enter__(self) -> "_DirLock":
        if fcntl is not None:
            flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
            try:
                fd = os.open(self.outdir, flags)
            except OSError as exc:
                raise os_error(self.outdir, exc) from None
            try:
                locked = self._flock(fd)
            except BaseException:
                os.close(fd)
                raise
            if locked:
                self.fd = fd
                return self
            os.close(fd)
        self._create_lockfile()
        return self

    def _wait(self, deadline: float, delay: float, what: str) -> float:
        if time.monotonic() > deadline:
            raise DwgenError(f"{show(self.outdir)} is locked by another dwgen run (waited {self.timeout:g} s"
                             f"{what}): try again when it has finished")
        time.sleep(delay)
        return min(delay * 2, 0.1)

    def _flock(self, fd: int) -> bool:
        """True once locked; False where flock is not supported on this file system."""
        deadline, delay = time.monotonic() + self.timeout, 0.005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                delay = self._wait(deadline, delay, "")
            except OSError as exc:
                if exc.errno in (errno.EBADF, errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                    return False  # e.g. some network file systems: use a lock file
                raise os_error(self.outdir, exc) from None

    def _create_lockfile(self) -> None:
        path = self.outdir / LOCK_FILE
        deadline, delay = time.monotonic() + self.timeout, 0.005
        while True:
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                delay = self._wait(deadline, delay, f"; if no dwgen is running, remove {show(path)}")
                continue
            except OSError as exc:
                raise os_error(self.outdir, exc) from None
            try:
                os.write(fd, f"{os.getpid()}\n".encode())
            finally:
                os.close(fd)
            self.lockfile = path
            return

    def still_current(self) -> bool:
        """False when OUTDIR's path now names another directory than the one locked."""
        if self.fd is None:
            return True
        try:
            a, b = os.fstat(self.fd), os.stat(self.outdir)
        except OSError:
            return False
        return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases the flock
            self.fd = None
        if self.lockfile is not None:
            try:
                os.unlink(self.lockfile)
            except OSError:
                pass
            self.lockfile = None


__all__ = ["Index", "LOCK_FILE", "LOCK_TIMEOUT", "os_error", "read_head", "show", "write_files"]
