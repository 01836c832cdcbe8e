"""Files that several processes may create at once (a model assembled or exported on first start)."""

from __future__ import annotations

import os
from pathlib import Path


def private_partial(target: Path) -> Path:
    """A sibling of ``target`` that only this process writes, to be renamed onto ``target`` when complete.

    Two processes starting on a fresh data directory each write their own copy; the rename is atomic, so
    ``target`` only ever names a complete one (whichever came last).
    """
    return target.with_name(f".{target.name}.{os.getpid()}.partial")
