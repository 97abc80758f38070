"""Writing files atomically: a crash or an error never leaves half a file behind."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator, Optional


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb", encoding: Optional[str] = None) -> Iterator[IO]:
    """Yield a temporary file in ``path``'s folder; it replaces ``path`` in one step when the block succeeds.

    If the block raises, the temporary file is removed and ``path`` keeps its
    previous content (or stays absent).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        newline = None if "b" in mode else "\n"
        with os.fdopen(fd, mode, encoding=encoding, newline=newline) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the new name points at them
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; give the usual mode of a user's file
        os.replace(tmp, path)  # atomic: readers see the old file or the new one, never half of one
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
