"""The async connection pool, created by the entry point and injected into the core."""

from __future__ import annotations

import logging

import psycopg
from pgvector.psycopg import register_vector_async
from psycopg_pool import AsyncConnectionPool

from bot.errors import StorageError
from bot.settings import Settings
from bot.storage.embedded import start_embedded_server

log = logging.getLogger(__name__)


def resolve_database_url(settings: Settings) -> str:
    """``DATABASE_URL`` when set, else the embedded server's URI (starting it if needed)."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    return start_embedded_server(settings.data_dir, shared_buffers=settings.embedded_pg_shared_buffers)


async def _configure(conn: psycopg.AsyncConnection) -> None:
    await register_vector_async(conn)


async def open_pool(conninfo: str, settings: Settings) -> AsyncConnectionPool:
    """Open a pool whose connections know the ``vector`` type; raise :class:`StorageError` if unreachable."""
    pool = AsyncConnectionPool(
        conninfo,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        configure=_configure,
        kwargs={"autocommit": True},
        open=False,
        name="lorebot",
    )
    try:
        await pool.open(wait=True, timeout=15)
    except psycopg.Error as e:  # PoolTimeout is an OperationalError
        await pool.close()
        raise StorageError(f"cannot connect to the database: {e}") from e
    return pool
