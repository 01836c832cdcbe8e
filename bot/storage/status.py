"""What ``lorebot doctor`` reads from a database: the server version, pgvector, the stored embedding dimension."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from bot.errors import StorageError

SERVER_VERSION = "SHOW server_version"
VECTOR_VERSION = "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
VECTOR_AVAILABLE = "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector')"
META_TABLE = "SELECT to_regclass('lorebot_meta') IS NOT NULL"
STORED_DIM = "SELECT value FROM lorebot_meta WHERE key = 'embedding_dim'"
CONNECT_TIMEOUT_S = 5


@dataclass(frozen=True, slots=True)
class DatabaseStatus:
    server_version: str
    vector_version: str | None
    """The created pgvector extension's version; None when it is not created (yet)."""
    vector_available: bool
    embedding_dim: int | None
    """What the schema stores; None before the first migration."""


def database_status(conninfo: str) -> DatabaseStatus:
    """Read the status with one short-lived connection; raises :class:`StorageError` when that fails."""
    try:
        with psycopg.connect(conninfo, connect_timeout=CONNECT_TIMEOUT_S) as conn:
            version = conn.execute(SERVER_VERSION).fetchone()
            vector = conn.execute(VECTOR_VERSION).fetchone()
            available = conn.execute(VECTOR_AVAILABLE).fetchone()
            migrated = conn.execute(META_TABLE).fetchone()
            dim = conn.execute(STORED_DIM).fetchone() if migrated and migrated[0] else None
    except psycopg.Error as e:
        raise StorageError(f"cannot read the database status: {e}") from e
    return DatabaseStatus(
        server_version=version[0] if version else "?",
        vector_version=vector[0] if vector else None,
        vector_available=bool(available and available[0]),
        embedding_dim=int(dim[0]) if dim else None,
    )
