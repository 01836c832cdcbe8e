"""Files that several processes may create at once (a model assembled or exported on first start)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def published(target: Path) -> Iterator[Path]:
    """A path beside ``target`` that only this process writes (a file or a folder), renamed onto ``target`` when
    the block completes; whatever is left of it is removed either way.

    Two processes starting on a fresh data directory each write their own copy; the rename is atomic, so
    ``target`` only ever names a complete one (whichever came last). Renaming a folder onto one that another
    process published first fails with :class:`OSError`, and that one serves.
    """
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        yield partial
        partial.replace(target)
    finally:
        if partial.is_dir():
            shutil.rmtree(partial, ignore_errors=True)
        else:
            partial.unlink(missing_ok=True)
