"""Database failures as the core's :class:`~bot.errors.StorageError`, saying what was being done, and the one-statement
helpers built on that (run a statement, read its rows) that storage modules share."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.rows import class_row, dict_row
from psycopg_pool import AsyncConnectionPool

from bot.errors import StorageError


@asynccontextmanager
async def storage_errors(action: str) -> AsyncIterator[None]:
    """Turn a :class:`psycopg.Error` raised in the block into ``StorageError("<action> failed: …")``."""
    try:
        yield
    except psycopg.Error as e:
        raise StorageError(f"{action} failed: {type(e).__name__}: {e}") from e


async def execute(pool: AsyncConnectionPool, query: str, params: Mapping[str, Any], *, failure: str) -> None:
    """Run one statement; a database error becomes ``StorageError("<failure>: …")``."""
    try:
        async with pool.connection() as conn:
            await conn.execute(query, params)
    except psycopg.Error as e:
        raise StorageError(f"{failure}: {e}") from e


async def fetch_one(pool: AsyncConnectionPool, query: str, params: Mapping[str, Any], *, failure: str) -> Any:
    """The first row (a tuple) of one query, or None; errors as in :func:`execute`."""
    try:
        async with pool.connection() as conn:
            return await (await conn.execute(query, params)).fetchone()
    except psycopg.Error as e:
        raise StorageError(f"{failure}: {e}") from e


async def fetch_all(
    pool: AsyncConnectionPool, query: str, params: Mapping[str, Any], *, failure: str, row: type | None = None
) -> list:
    """Every row of one query, as ``row`` instances (dicts when None); errors as in :func:`execute`."""
    try:
        async with pool.connection() as conn:
            cursor = conn.cursor(row_factory=class_row(row) if row else dict_row)
            await cursor.execute(query, params)
            return await cursor.fetchall()
    except psycopg.Error as e:
        raise StorageError(f"{failure}: {e}") from e
