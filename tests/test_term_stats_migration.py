"""Migrations 0002 and 0006 on a database that already holds chunks: term and scope statistics are backfilled
exactly."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql

from bot.storage.migrate import MIGRATIONS_DIR, migrate
from tests.conftest import with_database

RECOUNTED = "SELECT t.lexeme, count(*) FROM chunks c, unnest(c.tsv) t GROUP BY t.lexeme ORDER BY t.lexeme"


def test_term_and_scope_statistics_are_backfilled_for_chunks_stored_before_the_migrations(
    pg_server_uri: str, tmp_path: Path
) -> None:
    name = "lorebot_term_stats_backfill"
    with psycopg.connect(pg_server_uri, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_database(pg_server_uri, name)
    shutil.copy(MIGRATIONS_DIR / "0001_initial.sql", tmp_path)
    migrate(url, embedding_dim=384, directory=tmp_path)
    with psycopg.connect(url, autocommit=True) as conn:
        register_vector(conn)
        conn.execute("INSERT INTO scopes (name) VALUES ('default')")
        document = conn.execute(
            "INSERT INTO documents (scope, source_uri, title, mime_type, content_hash, size_bytes, added_by) "
            "VALUES ('default', 'test://a', 'A', 'text/plain', 'h', 1, 'test') RETURNING id"
        ).fetchone()[0]
        for ordinal, text in enumerate(["The printer jams.", "Printer error E4711.", "打印机过热"]):
            conn.execute(
                "INSERT INTO chunks (document_id, scope, ordinal, text, lexemes, embedding) "
                "VALUES (%s, 'default', %s, %s, %s, %s)",
                [document, ordinal, text, "打印 印机 机过 过热" if ordinal == 2 else "", np.ones(384, np.float32)],
            )

    applied = migrate(url, embedding_dim=384)

    with psycopg.connect(url) as conn:
        stats = conn.execute("SELECT term, df FROM term_stats ORDER BY term").fetchall()
        recounted = conn.execute(RECOUNTED).fetchall()
        scopes = conn.execute("SELECT scope, chunks FROM scope_stats").fetchall()
    assert applied[0] == "0002" and "0006" in applied
    assert stats == recounted and ("printer", 2) in stats and ("e4711", 1) in stats
    assert scopes == [("default", 3)]
