"""Shared fixtures, grouped by resource: Postgres (embedded server or DATABASE_URL), settings, pool.

Every test that needs a database gets a fresh one cloned from a migrated template, so tests never see each
other's rows and need no cleanup.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from bot.settings import Settings
from bot.storage.embedded import start_throwaway_server
from bot.storage.migrate import migrate
from bot.storage.pool import open_pool

pytest_plugins = [
    "tests.fixtures.llm",
    "tests.fixtures.embeddings",
    "tests.fixtures.http",
    "tests.fixtures.ingest",
    "tests.fixtures.slack",
    "tests.fixtures.discord",
    "tests.fixtures.sft",
    "tests.fixtures.embedded",
]

SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"
TEMPLATE_DB = "lorebot_test_template"
_db_counter = itertools.count()


def with_database(uri: str, dbname: str) -> str:
    """The same server URI pointing at another database."""
    return psycopg.conninfo.make_conninfo(uri, dbname=dbname)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` beside the checkout (data sets); tests that need it skip when it is absent."""
    if not SHARED_DIR.is_dir():
        pytest.skip("../shared is not present")
    return SHARED_DIR


@pytest.fixture(scope="session")
def pg_server_uri() -> str:
    """An admin URI: the test server from TEST_DATABASE_URL, else an embedded one for this session."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    # Outside pytest's temp root: other pytest runs reset that to mode 0700, locking out the `pgserver` OS user.
    return start_throwaway_server("lorebot-pg-")


@pytest.fixture(scope="session")
def template_db(pg_server_uri: str) -> str:
    """A migrated database that per-test databases are cloned from."""
    with psycopg.connect(pg_server_uri, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(TEMPLATE_DB)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE_DB)))
    migrate(with_database(pg_server_uri, TEMPLATE_DB), embedding_dim=384)
    return TEMPLATE_DB


@pytest.fixture
def database_url(pg_server_uri: str, template_db: str) -> Iterator[str]:
    """A fresh, migrated, empty database for one test."""
    name = f"lorebot_t{os.getpid()}_{next(_db_counter)}"
    with psycopg.connect(pg_server_uri, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template_db))
        )
    yield with_database(pg_server_uri, name)
    with psycopg.connect(pg_server_uri, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings for one test: its own database and data dir, nothing read from the developer's ``.env``."""
    return Settings(_env_file=None, database_url=database_url, data_dir=tmp_path / "data")


@pytest.fixture
async def pool(database_url: str, settings: Settings) -> AsyncIterator:
    pool = await open_pool(database_url, settings)
    yield pool
    await pool.close()
