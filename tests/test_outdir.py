"""The output directory: bad directories are one-line errors, writes are all or nothing, and
concurrent emits into one directory add up (issue 9, items 5 and 6)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dwgen import outdir as od
from dwgen.cli import main
from dwgen.errors import DwgenError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "kws_dw.json"
MODEL = ROOT / "tests" / "fixtures" / "kws_dscnn.tflite"


def _fails(capsys, argv, message: str) -> str:
    """Exit 2 with exactly `dwgen: error: <message>` on one line."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"dwgen: error: {message}\n", err
    return err


def _no_leftovers(directory: Path) -> None:
    """No staging, backup or lock entries in `directory`."""
    if directory.is_dir():
        left = [p.name for p in directory.iterdir() if p.name.startswith(".dwgen")]
        assert not left, left


def _snapshot(d: Path) -> dict:
    return {p.name: (p.read_bytes() if p.is_file() else "dir") for p in sorted(d.iterdir())}


def _can_mount() -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    probe = Path(os.environ.get("TMPDIR", "/tmp")) / f"dwgen-mount-probe-{os.getpid()}"
    probe.mkdir(exist_ok=True)
    try:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)],
                            capture_output=True).returncode == 0
        if ok:
            subprocess.run(["umount", str(probe)], check=True)
        return ok
    finally:
        probe.rmdir()


CAN_MOUNT = _can_mount()


@pytest.fixture
def mount(tmp_path):
    """mount(path, options): a small tmpfs at `path`, unmounted afterwards."""
    mounted = []

    def do(path: Path, options: str = "size=4m") -> Path:
        path.mkdir(exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)
        mounted.append(path)
        return path

    yield do
    for p in reversed(mounted):
        subprocess.run(["umount", str(p)], check=False)


# -- bad directories -------------------------------------------------------------------------
def test_symlink_loop(tmp_path, capsys):
    loop = tmp_path / "loop"
    os.symlink("loop", loop)
    _fails(capsys, ["emit", str(EXAMPLE), "-o", str(loop)],
           f"cannot write to {loop}: too many levels of symbolic links (a symlink loop?)")
    _fails(capsys, ["emit", str(EXAMPLE), "-o", str(loop / "sub")],
           f"cannot write to {loop / 'sub'}: too many levels of symbolic links (a symlink loop?)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loop"]


def test_dangling_symlink(tmp_path, capsys):
    link = tmp_path / "out"
    os.symlink("nowhere", link)
    _fails(capsys, ["emit", str(EXAMPLE), "-o", str(link)],
           f"cannot write to {link}: it is a symbolic link to nowhere, which does not exist")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_file_where_a_directory_is_expected(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    _fails(capsys, ["emit", str(EXAMPLE), "-o", str(f)], f"{f} exists and is not a directory")
    _fails(capsys, ["emit", str(EXAMPLE), "-o", str(f / "sub")],
           f"cannot write to {f / 'sub'}: a component of the path is not a directory")
    _fails(capsys, ["emit", str(EXAMPLE), "-o", str(tmp_path / "no" / "sub")],
           f"cannot create {tmp_path / 'no' / 'sub'}: its parent directory {tmp_path / 'no'} does not exist")
    assert f.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_name_too_long(tmp_path, capsys):
    long = tmp_path / ("x" * 300)
    _fails(capsys, ["emit", str(EXAMPLE), "-o", str(long)], f"cannot write to {long}: file name too long")
    # A 250-byte name is fine: the staging directory beside it has a short name of its own.
    ok = tmp_path / ("y" * 250)
    assert main(["emit", str(EXAMPLE), "-o", str(ok)]) == 0
    assert sorted(p.name for p in ok.iterdir()) == ["kws_dw1.c", "kws_dw1.h"]
    _no_leftovers(tmp_path)


def test_unprintable_path_stays_on_one_line(tmp_path, capsys):
    bad = tmp_path / "a\nb" / "out"
    _fails(capsys, ["emit", str(EXAMPLE), "-o", str(bad)],
           f"cannot create {str(bad)!r}: its parent directory {str(bad.parent)!r} does not exist")


@pytest.fixture
def read_only(tmp_path, mount, monkeypatch):
    """A read-only directory, and the reason the OS gives for it.

    Unprivileged: chmod 0555. Root ignores permissions, so as root: a read-only tmpfs. Where
    neither works (root without mount rights), the OS error is injected in-process."""
    d = tmp_path / "ro"
    d.mkdir()
    if os.geteuid() != 0:
        d.chmod(0o555)
        yield d, "permission denied"
        d.chmod(0o755)
    elif CAN_MOUNT:
        yield mount(d, "ro,size=1m"), "read-only file system"
    else:
        real_mkdir = os.mkdir

        def mkdir(path, *a, **kw):
            if Path(path).parent == d:
                raise OSError(errno.EROFS, "Read-only file system", str(path))
            return real_mkdir(path, *a, **kw)

        monkeypatch.setattr(od.os, "mkdir", mkdir)
        yield d, "read-only file system"


def test_read_only_directory(read_only, capsys):
    d, reason = read_only
    _fails(capsys, ["emit", str(EXAMPLE), "-o", str(d)], f"cannot write to {d}: {reason}")
    _fails(capsys, ["emit", str(EXAMPLE), "-o", str(d / "new")], f"cannot create {d / 'new'}: {reason}")
    assert list(d.iterdir()) == []


@pytest.fixture
def mount_point(tmp_path, mount, monkeypatch):
    """An output directory on another file system than its parent.

    As root with mount rights: a real tmpfs. Elsewhere the device boundary is simulated: every
    rename or hard link with exactly one side under the directory fails with EXDEV, as the
    kernel makes it fail across file systems."""
    mnt = tmp_path / "mnt"
    if CAN_MOUNT:
        return mount(mnt)
    mnt.mkdir()

    def inside(p) -> bool:
        return Path(os.path.abspath(p)).is_relative_to(mnt)

    def guarded(real):
        def call(src, dst, *a, **kw):
            if inside(src) != inside(dst):
                raise OSError(errno.EXDEV, "Invalid cross-device link", str(src))
            return real(src, dst, *a, **kw)
        return call

    for fn in ("rename", "replace", "link"):
        monkeypatch.setattr(od.os, fn, guarded(getattr(os, fn)))
    return mnt


def test_output_directory_that_is_a_mount_point(tmp_path, mount_point, capsys):
    """dwgen 0.1 staged beside OUTDIR, so a mount point as OUTDIR gave EXDEV (errno 18)."""
    mnt = mount_point
    assert main(["emit", str(EXAMPLE), "-o", str(mnt), "--test-vectors"]) == 0
    assert sorted(p.name for p in mnt.iterdir()) == ["dwgen_test_main.c", "kws_dw1.c", "kws_dw1.h",
                                                    "kws_dw1_vectors.h"]
    assert main(["emit", str(EXAMPLE), "-o", str(mnt), "--force"]) == 0
    _no_leftovers(mnt)
    _no_leftovers(tmp_path)


# -- all or nothing -------------------------------------------------------------------------
@pytest.fixture
def existing(tmp_path):
    """OUTDIR with an old kws_dw1.c / kws_dw1.h and a file of the user's."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "kws_dw1.c").write_text("old c")
    (out / "kws_dw1.h").write_text("old h")
    (out / "keep.txt").write_text("mine")
    return out


def test_force_where_a_target_is_a_directory(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "kws_dw1.c").write_text("old c")
    (out / "kws_dw1.h").mkdir()
    before = _snapshot(out)
    for force in ([], ["--force"]):
        _fails(capsys, ["emit", str(EXAMPLE), "-o", str(out), *force],
               f"cannot replace {out / 'kws_dw1.h'}: it is a directory, and dwgen only replaces files; "
               "nothing was written")
        assert _snapshot(out) == before
    _no_leftovers(out)


def test_force_where_a_target_is_a_fifo(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / "kws_dw1.h")
    _fails(capsys, ["emit", str(EXAMPLE), "-o", str(out), "--force"],
           f"cannot replace {out / 'kws_dw1.h'}: it is not a regular file; nothing was written")
    assert sorted(p.name for p in out.iterdir()) == ["kws_dw1.h"]


def _failing_replace(monkeypatch, fail_on: str, exc: BaseException, also_fail_restore: bool = False):
    """os.replace as dwgen.outdir sees it, failing when it moves a staged file onto `fail_on`
    (and, optionally, when it puts a backup back)."""
    real = os.replace

    def replace(src, dst, *a, **kw):
        src, dst = Path(src), Path(dst)
        staged = src.parent.name.startswith(od.STAGE_PREFIX)
        if staged and dst.name == fail_on:
            raise exc
        if also_fail_restore and src.parent.name == f"{od.STAGE_PREFIX}backup":
            raise OSError(errno.EIO, "Input/output error", str(dst))
        return real(src, dst, *a, **kw)

    monkeypatch.setattr(od.os, "replace", replace)


def test_rollback_when_a_rename_fails(existing, monkeypatch, capsys):
    """The .c is already replaced when moving the .h fails: the .c is put back."""
    before = _snapshot(existing)
    _failing_replace(monkeypatch, "kws_dw1.h", OSError(errno.EXDEV, "Invalid cross-device link"))
    _fails(capsys, ["emit", str(EXAMPLE), "-o", str(existing), "--force"],
           f"cannot write to {existing / 'kws_dw1.h'}: the rename would cross file systems; nothing was changed")
    assert _snapshot(existing) == before
    _no_leftovers(existing)


def test_rollback_removes_new_files(existing, monkeypatch, capsys):
    (existing / "kws_dw1.c").unlink()
    before = _snapshot(existing)
    _failing_replace(monkeypatch, "kws_dw1_vectors.h", OSError(errno.ENOSPC, "No space left on device"))
    _fails(capsys, ["emit", str(EXAMPLE), "-o", str(existing), "--force", "--test-vectors"],
           f"cannot write to {existing / 'kws_dw1_vectors.h'}: no space left on device; nothing was changed")
    assert _snapshot(existing) == before


def test_interrupt_rolls_back(existing, monkeypatch, capsys):
    before = _snapshot(existing)
    _failing_replace(monkeypatch, "kws_dw1.h", KeyboardInterrupt())
    assert main(["emit", str(EXAMPLE), "-o", str(existing), "--force"]) == 130
    assert _snapshot(existing) == before
    _no_leftovers(existing)


def test_failed_rollback_says_where_the_originals_are(existing, monkeypatch, capsys):
    _failing_replace(monkeypatch, "kws_dw1.h", OSError(errno.EIO, "Input/output error"), also_fail_restore=True)
    assert main(["emit", str(EXAMPLE), "-o", str(existing), "--force"]) == 2
    err = capsys.readouterr().err
    kept = [p for p in existing.iterdir() if p.name.startswith(".dwgen-backup-")]
    assert len(kept) == 1
    assert err == (f"dwgen: error: cannot write to {existing / 'kws_dw1.h'}: input/output error; could not "
                   f"restore kws_dw1.c: the originals are in {kept[0]}\n")
    assert (kept[0] / "kws_dw1.c").read_text() == "old c"


def test_staging_write_failure_changes_nothing(existing, monkeypatch, capsys):
    before = _snapshot(existing)
    real_open = open

    def failing_open(path, mode="r", *a, **kw):
        if "x" in mode and Path(path).name == "kws_dw1.h":
            raise OSError(errno.EDQUOT, "Disk quota exceeded")
        return real_open(path, mode, *a, **kw)

    monkeypatch.setattr(od, "open", failing_open, raising=False)
    _fails(capsys, ["emit", str(EXAMPLE), "-o", str(existing), "--force"],
           f"cannot write to {existing}: disk quota exceeded; nothing was changed")
    assert _snapshot(existing) == before
    _no_leftovers(existing)


def test_new_directory_gets_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        assert main(["emit", str(EXAMPLE), "-o", str(tmp_path / "new")]) == 0
    finally:
        os.umask(old)
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o755
    _no_leftovers(tmp_path)


def test_stale_staging_of_a_killed_run_is_removed(existing):
    dead, live = existing / f"{od.STAGE_PREFIX}dead", existing / f"{od.STAGE_PREFIX}young"
    for d in (dead, live):
        d.mkdir()
        (d / "x.c").write_text("partial")
    old = time.time() - 2 * od.STALE_AFTER
    os.utime(dead, (old, old))
    assert main(["emit", str(EXAMPLE), "-o", str(existing), "--force"]) == 0
    assert not dead.exists() and live.exists()


def test_directory_replaced_while_locking_is_retried(existing, monkeypatch):
    calls = []
    real = od._DirLock.still_current

    def once_stale(self):
        calls.append(1)
        return False if len(calls) == 1 else real(self)

    monkeypatch.setattr(od._DirLock, "still_current", once_stale)
    od.write_files(existing, {"a.c": "a"})
    assert len(calls) == 2 and (existing / "a.c").read_text() == "a"
    _no_leftovers(existing)


# -- locking ---------------------------------------------------------------------------------
def test_lock_timeout_names_the_cause(existing, monkeypatch):
    import fcntl

    monkeypatch.setattr(od, "LOCK_TIMEOUT", 0.3)
    fd = os.open(existing, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(DwgenError) as e:
            od.write_files(existing, {"a.c": "a"})
    finally:
        os.close(fd)
    assert str(e.value) == f"{existing} is locked by another dwgen run (waited 0.3 s): try again when it has finished"
    assert not (existing / "a.c").exists()


def test_lock_file_fallback_timeout(existing, monkeypatch):
    monkeypatch.setattr(od, "fcntl", None)
    monkeypatch.setattr(od, "LOCK_TIMEOUT", 0.3)
    (existing / od.LOCK_FILE).write_text("12345\n")
    with pytest.raises(DwgenError) as e:
        od.write_files(existing, {"a.c": "a"})
    lock = existing / od.LOCK_FILE
    assert str(e.value) == (f"{existing} is locked by another dwgen run (waited 0.3 s; if no dwgen is running, "
                            f"remove {lock}): try again when it has finished")


@pytest.mark.parametrize("mechanism", ["flock", "lockfile"])
@pytest.mark.parametrize("fresh", [True, False], ids=["new-dir", "existing-dir"])
def test_concurrent_writers_in_process(tmp_path, monkeypatch, mechanism, fresh):
    """Eight threads write one file each plus an index of the directory, computed under the
    lock: the last index lists everyone, whichever thread created the directory."""
    if mechanism == "lockfile":
        monkeypatch.setattr(od, "fcntl", None)
    for rnd in range(5):
        out = tmp_path / f"r{rnd}"
        if not fresh:
            out.mkdir()
        barrier = threading.Barrier(8)
        errors = []

        def index(directory, me):
            present = sorted(p.name for p in directory.glob("k*.c")) if directory else []
            return od.Index({"index.txt": " ".join(sorted(set(present) | {me}))}, {"index.txt"})

        def work(i):
            try:
                barrier.wait()
                me = f"k{i}.c"
                od.write_files(out, {me: str(i)}, index=lambda d: index(d, me))
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert (out / "index.txt").read_text() == " ".join(f"k{i}.c" for i in range(8))
        _no_leftovers(out)
        _no_leftovers(tmp_path)


def test_concurrent_emits_into_one_directory(tmp_path):
    """Issue 9 item 6: four `dwgen emit --test-vectors` at once into one directory (three ops
    of a model and a layer file), new or existing, several rounds: every run exits 0, the
    test main lists all four kernels and the manifest and umbrella all three ops."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    runs = [[str(MODEL), "--only", "1"], [str(MODEL), "--only", "3"], [str(MODEL), "--only", "5"], [str(EXAMPLE)]]
    kernels = ["dw1_1", "dw2_1", "dw3_1", "kws_dw1"]
    for rnd in range(4):
        out = tmp_path / f"round{rnd}"
        if rnd % 2:
            out.mkdir()
        procs = [subprocess.Popen([sys.executable, "-m", "dwgen.cli", "emit", *r, "-o", str(out), "--test-vectors"],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for r in runs]
        for p in procs:
            _, err = p.communicate(timeout=300)
            assert p.returncode == 0, err
        main_c = (out / "dwgen_test_main.c").read_text()
        assert [k for k in kernels if f'#include "{k}_vectors.h"' in main_c] == kernels, f"round {rnd}"
        assert f"#define DWGEN_TEST_KERNELS {len(kernels)}" in main_c
        manifest = json.loads((out / "manifest.json").read_text())
        assert [k["op_index"] for k in manifest["kernels"]] == [1, 3, 5], f"round {rnd}"
        assert all((out / f).is_file() for k in manifest["kernels"] for f in k["files"])
        umbrella = (out / "dwgen_kernels.h").read_text()
        assert "#define DWGEN_KERNEL_COUNT 3" in umbrella
        assert all(f'#include "{k}.h"' in umbrella for k in kernels[:3])
        _no_leftovers(out)
        _no_leftovers(tmp_path)


# -- the model index ---------------------------------------------------------------------------
def test_model_emits_add_up_and_other_models_join_them(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["emit", str(MODEL), "-o", str(out), "--only", "3"]) == 0
    assert main(["emit", str(MODEL), "-o", str(out), "--only", "1,7"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert [k["op_index"] for k in manifest["kernels"]] == [1, 3, 7]
    assert "#define DWGEN_KERNEL_COUNT 3" in (out / "dwgen_kernels.h").read_text()
    capsys.readouterr()
    # Another model (here: the same file under another name) joins them, without --force...
    other = tmp_path / "other.tflite"
    shutil.copy(MODEL, other)
    assert main(["emit", str(other), "-o", str(out), "--only", "5"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert [(m["model"], m["kernels"]) for m in manifest["models"]] == [
        ("kws_dscnn.tflite", ["dw1_1", "dw2_1", "dw4_1"]), ("other.tflite", ["dw3_1"])]
    assert "#define DWGEN_KERNEL_COUNT 4" in (out / "dwgen_kernels.h").read_text()
    capsys.readouterr()
    # ... but may not take a kernel name the first one uses, even with --force
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    for force in ([], ["--force"]):
        _fails(capsys, ["emit", str(other), "-o", str(out), "--only", "3", *force],
               f"kernel 'dw2_1' of 'other.tflite' would replace the kernel of that name of 'kws_dscnn.tflite' in "
               f"{out}: emit one of them with another --prefix (e.g. --prefix other_) or "
               "into another directory; nothing was written")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_manifest_entries_of_deleted_kernels_are_dropped(tmp_path):
    out = tmp_path / "out"
    assert main(["emit", str(MODEL), "-o", str(out), "--only", "1,3"]) == 0
    (out / "dw1_1.c").unlink()
    assert main(["emit", str(MODEL), "-o", str(out), "--only", "5"]) == 0
    assert [k["op_index"] for k in json.loads((out / "manifest.json").read_text())["kernels"]] == [3, 5]


def test_foreign_manifest_is_never_merged(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text('{"kernels": [{"name": "../../etc/passwd"}]}')
    _fails(capsys, ["emit", str(MODEL), "-o", str(out), "--only", "1"],
           f"{out} already has manifest.json: pass --force to overwrite")
    assert main(["emit", str(MODEL), "-o", str(out), "--only", "1", "--force"]) == 0
    assert [k["name"] for k in json.loads((out / "manifest.json").read_text())["kernels"]] == ["dw1_1"]


def test_one_model_manifest_of_earlier_versions_is_read(tmp_path, capsys):
    """The manifest format before several models shared a directory: its kernels are kept
    as entries of its model; one whose prefix is no identifier is foreign."""
    out = tmp_path / "out"
    assert main(["emit", str(MODEL), "-o", str(out), "--only", "1"]) == 0
    doc = json.loads((out / "manifest.json").read_text())
    old = {"model": "kws_dscnn.tflite", "dwgen_version": "0.0.9", "target": "generic",
           "kernels": [{k: v for k, v in e.items() if k not in ("model", "prefix", "target")} for e in doc["kernels"]]}
    (out / "manifest.json").write_text(json.dumps(old))
    assert main(["emit", str(MODEL), "-o", str(out), "--only", "3", "--target", "cortex-m4"]) == 0
    doc = json.loads((out / "manifest.json").read_text())
    assert doc["models"] == [{"model": "kws_dscnn.tflite", "prefix": "", "header": None, "kernels": ["dw1_1", "dw2_1"]}]
    assert [(k["name"], k["target"]) for k in doc["kernels"]] == [("dw1_1", "generic"), ("dw2_1", "cortex-m4")]
    doc["kernels"][0]["prefix"] = "x */\n#include <evil>"
    (out / "manifest.json").write_text(json.dumps(doc))
    capsys.readouterr()
    _fails(capsys, ["emit", str(MODEL), "-o", str(out), "--only", "5"],
           f"{out} already has dwgen_kernels.h, manifest.json: pass --force to overwrite")
