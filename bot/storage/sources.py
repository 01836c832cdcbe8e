"""Connected sources, the documents each one brought in, and the per-source advisory lock of a sync.

A source's documents are ordinary rows of ``documents``; ``source_items`` links them to the source with the cheap
change marker of their last sync. Removing documents gone upstream deletes only those no other source links to.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import class_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from bot.storage.errors import storage_errors

log = logging.getLogger(__name__)

SYNC_LOCK_CLASS = 0x50_C3
"""First key of the two-key advisory lock ``(SYNC_LOCK_CLASS, source id)`` held while a source syncs; the two-key
space never overlaps the one-key locks of migrations and term statistics."""

_COLUMNS = """s.id, s.kind, s.target, s.scope, s.every_s, s.options, s.created_by, s.created_at, s.last_sync_at,
    s.last_status, s.last_error, s.last_counts, s.revision, s.next_run_at,
    (SELECT count(*) FROM source_items i WHERE i.source_id = s.id) AS documents"""

ENSURE_SCOPE = "INSERT INTO scopes (name) VALUES (%(scope)s) ON CONFLICT (name) DO NOTHING"

INSERT_SOURCE = f"""
WITH s AS (
    INSERT INTO sources (kind, target, scope, every_s, options, created_by, next_run_at)
    VALUES (%(kind)s, %(target)s, %(scope)s, %(every_s)s, %(options)s, %(created_by)s,
            CASE WHEN %(every_s)s::integer IS NULL THEN NULL ELSE now() END)
    ON CONFLICT (kind, target, scope) DO NOTHING
    RETURNING *
)
SELECT {_COLUMNS} FROM s
"""

LIST_SOURCES = f"SELECT {_COLUMNS} FROM sources s ORDER BY s.id"

GET_SOURCE = f"SELECT {_COLUMNS} FROM sources s WHERE s.id = %(id)s"

DUE_SOURCES = "SELECT id FROM sources WHERE next_run_at <= now() ORDER BY next_run_at, id"

STILL_DUE = "SELECT next_run_at <= now() FROM sources WHERE id = %(id)s"

ITEMS = "SELECT uri, document_id, version FROM source_items WHERE source_id = %(source_id)s"

RECORD_ITEM = """
INSERT INTO source_items (source_id, uri, document_id, version, revision)
VALUES (%(source_id)s, %(uri)s, %(document_id)s, %(version)s, %(revision)s)
ON CONFLICT (source_id, uri) DO UPDATE SET
    document_id = EXCLUDED.document_id, version = EXCLUDED.version, revision = EXCLUDED.revision, synced_at = now()
"""

# Documents of this source's items at `uris` that no other source links to; the items go with them (cascade) or,
# for shared documents, on their own below.
DELETE_ITEM_DOCUMENTS = """
DELETE FROM documents d USING source_items i
WHERE i.source_id = %(source_id)s AND i.uri = ANY(%(uris)s) AND d.id = i.document_id
  AND NOT EXISTS (SELECT 1 FROM source_items o WHERE o.document_id = d.id AND o.source_id <> %(source_id)s)
"""
DELETE_ITEMS = "DELETE FROM source_items WHERE source_id = %(source_id)s AND uri = ANY(%(uris)s)"
ALL_URIS = "SELECT uri FROM source_items WHERE source_id = %(source_id)s"

DELETE_SOURCE = f"""
WITH s AS (DELETE FROM sources WHERE id = %(id)s RETURNING *)
SELECT {_COLUMNS.replace("(SELECT count(*) FROM source_items i WHERE i.source_id = s.id)", "0::bigint")} FROM s
"""

DOCUMENT_CHUNKS = "SELECT id, heading, text FROM chunks WHERE document_id = %(document_id)s ORDER BY ordinal"
STORE_LINK = """
INSERT INTO chunk_links (chunk_id, url) VALUES (%s, %s) ON CONFLICT (chunk_id) DO UPDATE SET url = EXCLUDED.url
"""

RECORD_SYNC = """
UPDATE sources SET
    last_sync_at = now(), last_status = %(status)s, last_error = %(error)s, last_counts = %(counts)s,
    revision = CASE WHEN %(revision)s = '' THEN revision ELSE %(revision)s END,
    next_run_at = CASE WHEN every_s IS NULL THEN NULL ELSE now() + every_s * interval '1 second' END
WHERE id = %(id)s
"""


@dataclass(frozen=True, slots=True)
class SourceRow:
    id: int
    kind: str
    target: str
    scope: str
    every_s: int | None
    options: dict[str, Any]
    created_by: str
    created_at: datetime
    last_sync_at: datetime | None
    last_status: str
    last_error: str
    last_counts: dict[str, int]
    revision: str
    next_run_at: datetime | None
    documents: int


@dataclass(frozen=True, slots=True)
class StoredItem:
    """A document a source brought in, with the change marker of its last sync."""

    uri: str
    document_id: int
    version: str


async def insert_source(
    pool: AsyncConnectionPool,
    *,
    kind: str,
    target: str,
    scope: str,
    every_s: int | None,
    options: dict[str, Any],
    created_by: str,
) -> SourceRow | None:
    """The new source (due at once when scheduled); None when the same kind, target and scope exists already."""
    params = {
        "kind": kind,
        "target": target,
        "scope": scope,
        "every_s": every_s,
        "options": Jsonb(options),
        "created_by": created_by,
    }
    async with (
        storage_errors("adding the source"),
        pool.connection() as conn,
        conn.transaction(),
        conn.cursor(row_factory=class_row(SourceRow)) as cur,
    ):
        await cur.execute(ENSURE_SCOPE, params)
        await cur.execute(INSERT_SOURCE, params)
        return await cur.fetchone()


async def list_sources(pool: AsyncConnectionPool) -> list[SourceRow]:
    async with (
        storage_errors("listing sources"),
        pool.connection() as conn,
        conn.cursor(row_factory=class_row(SourceRow)) as cur,
    ):
        await cur.execute(LIST_SOURCES)
        return await cur.fetchall()


async def get_source(pool: AsyncConnectionPool, source_id: int) -> SourceRow | None:
    async with (
        storage_errors("reading the source"),
        pool.connection() as conn,
        conn.cursor(row_factory=class_row(SourceRow)) as cur,
    ):
        await cur.execute(GET_SOURCE, {"id": source_id})
        return await cur.fetchone()


async def delete_source(pool: AsyncConnectionPool, source_id: int, *, keep_documents: bool) -> tuple[SourceRow, int]:
    """Delete the source and, unless ``keep_documents``, the documents only it brought in, in one transaction;
    returns the deleted source and how many documents went with it. Raises ``LookupError`` for an unknown id."""
    params = {"id": source_id, "source_id": source_id}
    async with (
        storage_errors("removing the source"),
        pool.connection() as conn,
        conn.transaction(),
        conn.cursor() as cur,
    ):
        removed = 0
        if not keep_documents:
            await cur.execute(ALL_URIS, params)
            params["uris"] = [row[0] for row in await cur.fetchall()]
            await cur.execute(DELETE_ITEM_DOCUMENTS, params)
            removed = cur.rowcount
        async with conn.cursor(row_factory=class_row(SourceRow)) as rows:
            await rows.execute(DELETE_SOURCE, params)
            row = await rows.fetchone()
    if row is None:
        raise LookupError(source_id)
    return row, removed


async def items(pool: AsyncConnectionPool, source_id: int) -> dict[str, StoredItem]:
    """The documents the source brought in, by upstream URI."""
    async with (
        storage_errors("reading the source's documents"),
        pool.connection() as conn,
        conn.cursor(row_factory=class_row(StoredItem)) as cur,
    ):
        await cur.execute(ITEMS, {"source_id": source_id})
        return {item.uri: item for item in await cur.fetchall()}


async def record_item(
    pool: AsyncConnectionPool, source_id: int, *, uri: str, document_id: int, version: str, revision: str
) -> None:
    params = {"source_id": source_id, "uri": uri, "document_id": document_id, "version": version, "revision": revision}
    async with storage_errors("recording the source's document"), pool.connection() as conn:
        await conn.execute(RECORD_ITEM, params)


async def document_chunks(pool: AsyncConnectionPool, document_id: int) -> list[tuple[int, str, str]]:
    """(chunk id, heading, text) of a stored document, in order."""
    async with storage_errors("reading the document's chunks"), pool.connection() as conn:
        return await (await conn.execute(DOCUMENT_CHUNKS, {"document_id": document_id})).fetchall()


async def store_links(pool: AsyncConnectionPool, links: Sequence[tuple[int, str]]) -> None:
    """Record where each chunk (id, URL) lives upstream, for citations."""
    async with storage_errors("storing the chunks' links"), pool.connection() as conn, conn.cursor() as cur:
        await cur.executemany(STORE_LINK, links)


async def remove_items(pool: AsyncConnectionPool, source_id: int, uris: Sequence[str]) -> int:
    """Forget the source's documents at ``uris`` and delete those no other source has (one transaction); returns
    how many documents were deleted."""
    params = {"source_id": source_id, "uris": list(uris)}
    async with storage_errors("removing the source's documents"), pool.connection() as conn, conn.transaction():
        deleted = (await conn.execute(DELETE_ITEM_DOCUMENTS, params)).rowcount
        await conn.execute(DELETE_ITEMS, params)
    log.info("source=%d removed %d document(s) gone upstream", source_id, deleted)
    return deleted


async def record_sync(
    pool: AsyncConnectionPool, source_id: int, *, status: str, error: str, counts: dict[str, int], revision: str
) -> None:
    """Store the outcome of a sync and schedule the next one (``every_s`` from now)."""
    params = {"id": source_id, "status": status, "error": error, "counts": Jsonb(counts), "revision": revision}
    async with storage_errors("recording the sync"), pool.connection() as conn:
        await conn.execute(RECORD_SYNC, params)


async def due_sources(pool: AsyncConnectionPool) -> list[int]:
    """Ids of the scheduled sources whose next run has come, oldest first."""
    async with storage_errors("reading due sources"), pool.connection() as conn:
        return [row[0] for row in await (await conn.execute(DUE_SOURCES)).fetchall()]


@asynccontextmanager
async def sync_lock(pool: AsyncConnectionPool, source_id: int) -> AsyncIterator[bool]:
    """Try to take the source's sync lock without waiting; yields whether this process holds it. The lock lives
    on one pooled connection for the whole block, so it is freed even if the process dies (connection closed)."""
    async with storage_errors("locking the source"), pool.connection() as conn:
        cur = await conn.execute("SELECT pg_try_advisory_lock(%s::int4, %s::int4)", (SYNC_LOCK_CLASS, source_id))
        held = bool((await cur.fetchone())[0])
        try:
            yield held
        finally:
            if held:
                await conn.execute("SELECT pg_advisory_unlock(%s::int4, %s::int4)", (SYNC_LOCK_CLASS, source_id))


async def still_due(pool: AsyncConnectionPool, source_id: int) -> bool:
    """Whether the source is (still) due: another replica may have synced it since it was listed as due."""
    async with storage_errors("reading the source's schedule"), pool.connection() as conn:
        row = await (await conn.execute(STILL_DUE, {"id": source_id})).fetchone()
    return bool(row and row[0])
