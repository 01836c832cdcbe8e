"""Documents and their chunks: atomic replace with binary COPY, lookup, listing and removal.

A document's chunks are only ever swapped inside one transaction (upsert the document row, delete the old chunks,
COPY the new ones), so readers see either the old document or the new one, never half of each. The upsert locks
the document row, which also serialises two concurrent replaces of the same source. Bulk ingestion swaps a window
of documents in one such transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from psycopg.rows import class_row, dict_row
from psycopg_pool import AsyncConnectionPool

from bot.domain import Chunk, Document, IngestResult
from bot.storage.errors import storage_errors
from bot.text import lexemes

log = logging.getLogger(__name__)

_DOCUMENT_COLUMNS = "id, scope, source_uri, title, mime_type, content_hash, size_bytes, chunk_count, added_by, added_at"

ENSURE_SCOPES = "INSERT INTO scopes (name) SELECT unnest(%(scopes)s::text[]) ON CONFLICT (name) DO NOTHING"

_UPSERTED = ("scope", "source_uri", "title", "mime_type", "content_hash", "size_bytes", "added_by")

UPSERT_DOCUMENTS = f"""
INSERT INTO documents (scope, source_uri, title, mime_type, content_hash, size_bytes, chunk_count, added_by)
SELECT * FROM unnest(%(scope)s::text[], %(source_uri)s::text[], %(title)s::text[], %(mime_type)s::text[],
                     %(content_hash)s::text[], %(size_bytes)s::bigint[], %(chunk_count)s::int[], %(added_by)s::text[])
ON CONFLICT (scope, source_uri) DO UPDATE SET
    title = EXCLUDED.title, mime_type = EXCLUDED.mime_type, content_hash = EXCLUDED.content_hash,
    size_bytes = EXCLUDED.size_bytes, chunk_count = EXCLUDED.chunk_count, added_by = EXCLUDED.added_by,
    updated_at = now()
RETURNING {_DOCUMENT_COLUMNS}, (xmax = 0) AS inserted
"""

DELETE_CHUNKS = "DELETE FROM chunks WHERE document_id = ANY(%(document_ids)s::bigint[])"

COPY_CHUNKS = """
COPY chunks (document_id, scope, ordinal, heading, text, lexemes, token_count, embedding)
FROM STDIN WITH (FORMAT BINARY)
"""
COPY_CHUNK_TYPES = ("int8", "text", "int4", "text", "text", "text", "int4", "vector")

FIND_UNCHANGED = f"""
SELECT {_DOCUMENT_COLUMNS} FROM documents
WHERE scope = %(scope)s AND source_uri = %(source_uri)s AND content_hash = %(content_hash)s
"""

LIST_DOCUMENTS = f"""
SELECT {_DOCUMENT_COLUMNS} FROM documents WHERE scope = ANY(%(scopes)s) ORDER BY updated_at DESC, id DESC
"""

GET_DOCUMENT = f"SELECT {_DOCUMENT_COLUMNS} FROM documents WHERE id = %(document_id)s"

DELETE_DOCUMENT = f"""
DELETE FROM documents WHERE id = %(document_id)s AND scope = ANY(%(scopes)s) RETURNING {_DOCUMENT_COLUMNS}
"""


@dataclass(frozen=True, slots=True)
class DocumentWrite:
    """A document to store at (``scope``, ``source_uri``): its row, and its chunks with their embeddings
    (``embeddings[i]`` belongs to ``chunks[i]``)."""

    scope: str
    source_uri: str
    title: str
    mime_type: str
    content_hash: str
    size_bytes: int
    added_by: str
    chunks: Sequence[Chunk]
    embeddings: np.ndarray


async def replace_documents(pool: AsyncConnectionPool, writes: Sequence[DocumentWrite]) -> list[IngestResult]:
    """Insert or replace every document of ``writes`` with its chunks, all in one transaction; results in order.

    One statement per step for the whole batch (scopes, document upsert, old chunks' delete, one COPY) instead of
    six round trips and two statistics-trigger runs per document: bulk ingestion stores a window of documents
    at once. On any failure nothing changes; raises :class:`StorageError` (:class:`ValueError` when a source
    appears twice or a document's chunks and embeddings differ in number).
    """
    keys = [(w.scope, w.source_uri) for w in writes]
    if len(set(keys)) != len(keys):
        raise ValueError("a source appears twice in one batch; store the first before the second")
    for write in writes:
        if len(write.chunks) != len(write.embeddings):
            raise ValueError(f"{len(write.chunks)} chunks but {len(write.embeddings)} embeddings")
    if not writes:
        return []
    order = sorted(range(len(writes)), key=keys.__getitem__)  # rows locked in one order: no deadlocks
    columns = {column: [getattr(writes[i], column) for i in order] for column in _UPSERTED}
    action = "storing the document" if len(writes) == 1 else f"storing {len(writes)} documents"
    async with (
        storage_errors(action),
        pool.connection() as conn,
        conn.transaction(),
        conn.cursor(row_factory=dict_row) as cur,
    ):
        await cur.execute(ENSURE_SCOPES, {"scopes": sorted({w.scope for w in writes})})
        await cur.execute(UPSERT_DOCUMENTS, {**columns, "chunk_count": [len(writes[i].chunks) for i in order]})
        stored = {(row["scope"], row["source_uri"]): row for row in await cur.fetchall()}
        results = []
        for key in keys:
            row = dict(stored[key])
            inserted = row.pop("inserted")
            results.append(IngestResult(Document(**row), "added" if inserted else "replaced"))
        await cur.execute(DELETE_CHUNKS, {"document_ids": [r.document.id for r in results]})
        async with cur.copy(COPY_CHUNKS) as copy:
            copy.set_types(COPY_CHUNK_TYPES)
            for write, result in zip(writes, results, strict=True):
                for chunk, embedding in zip(write.chunks, write.embeddings, strict=True):
                    await copy.write_row(
                        (
                            result.document.id,
                            write.scope,
                            chunk.ordinal,
                            chunk.heading,
                            chunk.text,
                            lexemes(chunk.text),
                            chunk.token_count,
                            embedding,
                        )
                    )
    return results


async def find_unchanged(pool: AsyncConnectionPool, scope: str, source_uri: str, content_hash: str) -> Document | None:
    """The stored document at this source when its content hash is ``content_hash`` (re-adding is a no-op)."""
    params = {"scope": scope, "source_uri": source_uri, "content_hash": content_hash}
    return await _fetch_one(pool, FIND_UNCHANGED, params, "looking up the document")


async def list_documents(pool: AsyncConnectionPool, scopes: Sequence[str]) -> list[Document]:
    """Documents in ``scopes``, most recently added or replaced first."""
    async with (
        storage_errors("listing documents"),
        pool.connection() as conn,
        conn.cursor(row_factory=class_row(Document)) as cur,
    ):
        await cur.execute(LIST_DOCUMENTS, {"scopes": list(scopes)})
        return await cur.fetchall()


async def get_document(pool: AsyncConnectionPool, document_id: int) -> Document | None:
    return await _fetch_one(pool, GET_DOCUMENT, {"document_id": document_id}, "reading the document")


async def delete_document(pool: AsyncConnectionPool, document_id: int, scopes: Sequence[str]) -> Document | None:
    """Delete a document (its chunks cascade) if it lies in ``scopes``; None when there is no such document."""
    params = {"document_id": document_id, "scopes": list(scopes)}
    document = await _fetch_one(pool, DELETE_DOCUMENT, params, "deleting the document")
    if document is not None:
        log.info("deleted document=%d scope=%s chunks=%d", document.id, document.scope, document.chunk_count)
    return document


async def _fetch_one(pool: AsyncConnectionPool, query: str, params: dict, action: str) -> Document | None:
    async with (
        storage_errors(action),
        pool.connection() as conn,
        conn.cursor(row_factory=class_row(Document)) as cur,
    ):
        await cur.execute(query, params)
        return await cur.fetchone()
