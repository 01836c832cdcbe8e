"""Schema migrations: idempotent, safe with concurrent starters, and guarding the embedding dimension."""

from __future__ import annotations

import threading

import psycopg
import pytest
from psycopg import sql

from bot.errors import ConfigError
from bot.storage.migrate import discover, migrate
from tests.conftest import with_database


@pytest.fixture
def empty_db(pg_server_uri: str):
    name = "lorebot_migrate_test"
    with psycopg.connect(pg_server_uri, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_database(pg_server_uri, name)


def test_migrate_applies_every_file_once(empty_db: str) -> None:
    versions = [m.version for m in discover()]
    assert migrate(empty_db, embedding_dim=384) == versions
    assert migrate(empty_db, embedding_dim=384) == []


def test_two_processes_migrating_at_once_apply_each_file_exactly_once(empty_db: str) -> None:
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(migrate(empty_db, embedding_dim=384))
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(results, key=len) == [[], [m.version for m in discover()]]


def test_start_with_another_embedding_dimension_is_refused(empty_db: str) -> None:
    migrate(empty_db, embedding_dim=384)
    with pytest.raises(ConfigError, match=r"stores 384-dimensional embeddings .* produces 768"):
        migrate(empty_db, embedding_dim=768)


def test_chunks_table_has_hnsw_and_gin_indexes(empty_db: str) -> None:
    migrate(empty_db, embedding_dim=384)
    with psycopg.connect(empty_db) as conn:
        indexes = dict(conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'chunks'"))
    assert "hnsw" in indexes["chunks_embedding_hnsw"] and "vector_cosine_ops" in indexes["chunks_embedding_hnsw"]
    assert "gin" in indexes["chunks_tsv_gin"]
