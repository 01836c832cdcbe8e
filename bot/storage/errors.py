"""Database failures as the core's :class:`~bot.errors.StorageError`, saying what was being done."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg

from bot.errors import StorageError


@asynccontextmanager
async def storage_errors(action: str) -> AsyncIterator[None]:
    """Turn a :class:`psycopg.Error` raised in the block into ``StorageError("<action> failed: …")``."""
    try:
        yield
    except psycopg.Error as e:
        raise StorageError(f"{action} failed: {type(e).__name__}: {e}") from e
