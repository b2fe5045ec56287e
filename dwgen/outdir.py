"""Writing generated files: all or nothing, never clobbering without --force.

Files are rendered completely in memory first, then written into a temporary directory
beside the destination and moved into place. A failing run leaves the destination as it
was; a new destination directory appears in one rename.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Mapping

from .errors import DwgenError


def write_files(outdir: str | Path, files: Mapping[str, str | bytes], force: bool = False) -> list[Path]:
    outdir = Path(outdir)
    for name in files:
        if Path(name).name != name or name in ("", ".", ".."):
            raise DwgenError(f"refusing to write {name!r}: generated file names are plain names")
    if outdir.exists() and not outdir.is_dir():
        raise DwgenError(f"{outdir} exists and is not a directory")
    clashes = sorted(n for n in files if (outdir / n).exists())
    if clashes and not force:
        raise DwgenError(
            f"{outdir} already has {', '.join(clashes)}: pass --force to overwrite"
        )
    parent = outdir.resolve().parent
    if not parent.is_dir():
        raise DwgenError(f"cannot create {outdir}: its parent directory {parent} does not exist")
    staging = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.dwgen-", dir=parent))
    try:
        for name, content in files.items():
            data = content.encode("ascii") if isinstance(content, str) else content
            (staging / name).write_bytes(data)
        if not outdir.exists():
            os.replace(staging, outdir)
            staging = None
        else:
            for name in files:
                os.replace(staging / name, outdir / name)
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    return [outdir / n for n in files]


__all__ = ["write_files"]
