"""Forward-only SQL migrations from ``migrations/NNNN_name.sql``, applied under a Postgres advisory lock.

Two processes starting at once both call :func:`migrate`; the advisory lock makes the second wait and then
find nothing left to do. Each file runs in its own transaction together with its ``schema_migrations`` row.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

from bot.errors import ConfigError, StorageError

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
MIGRATION_LOCK_ID = 0x10_7E_B0_7  # arbitrary, constant: "lorebot" migrations
_FILE_PATTERN = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""
APPLIED_VERSIONS = "SELECT version FROM schema_migrations"
RECORD_VERSION = "INSERT INTO schema_migrations (version) VALUES (%(version)s)"
STORED_DIMENSION = "SELECT value FROM lorebot_meta WHERE key = 'embedding_dim'"


@dataclass(frozen=True, slots=True)
class Migration:
    version: str
    path: Path

    def sql(self, embedding_dim: int) -> str:
        return self.path.read_text(encoding="utf-8").replace("{{EMBEDDING_DIM}}", str(int(embedding_dim)))


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Migration files in version order; a misnamed ``.sql`` file is an error, not silently skipped."""
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_PATTERN.match(path.name)
        if not match:
            raise ConfigError(f"migration file {path.name!r} does not match NNNN_name.sql")
        migrations.append(Migration(match.group(1), path))
    return migrations


def migrate(conninfo: str, *, embedding_dim: int, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations and check the embedding dimension; return the versions applied now.

    Raises :class:`ConfigError` when the database was created for another embedding dimension and
    :class:`StorageError` when the database cannot be reached or a migration fails (that migration is rolled
    back as a whole).
    """
    applied_now: list[str] = []
    try:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_ID,))
            try:
                conn.execute(CREATE_LEDGER)
                done = {row[0] for row in conn.execute(APPLIED_VERSIONS)}
                for migration in discover(directory):
                    if migration.version in done:
                        continue
                    with conn.transaction():
                        conn.execute(migration.sql(embedding_dim))
                        conn.execute(RECORD_VERSION, {"version": migration.version})
                    log.info("applied migration %s", migration.path.name)
                    applied_now.append(migration.version)
                check_embedding_dim(conn, embedding_dim)
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_ID,))
    except psycopg.Error as e:
        raise StorageError(f"migration failed: {e}") from e
    return applied_now


def check_embedding_dim(conn: psycopg.Connection, embedding_dim: int) -> None:
    """Refuse to run with a model whose dimension differs from the one the database was built for."""
    row = conn.execute(STORED_DIMENSION).fetchone()
    stored = int(row[0]) if row else None
    if stored is not None and stored != embedding_dim:
        raise ConfigError(
            f"this database stores {stored}-dimensional embeddings but the configured embedding model "
            f"produces {embedding_dim}; use the model the database was built with, or a new database "
            f"(DATABASE_URL / data_dir) and re-ingest"
        )
