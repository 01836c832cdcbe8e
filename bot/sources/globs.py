"""File filters for ``folder`` and ``git`` sources: one glob dialect for both (``**`` crosses folders)."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import PurePosixPath

from bot.ingest.loaders import READABLE_SUFFIXES


@lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern[str]:
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            parts.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            parts.append(".*")
            i += 2
        elif pattern[i] == "*":
            parts.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            parts.append("[^/]")
            i += 1
        else:
            parts.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(parts))


def path_filter(pattern: str) -> Callable[[str], bool]:
    """A test for relative POSIX paths: the glob ``pattern``, or (empty) every file our loaders can read."""
    if not pattern:
        return lambda path: PurePosixPath(path).suffix.lower() in READABLE_SUFFIXES
    compiled = _compiled(pattern)
    return lambda path: compiled.fullmatch(path) is not None
