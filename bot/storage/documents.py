"""Documents and their chunks: atomic replace with binary COPY, lookup, listing and removal.

A document's chunks are only ever swapped inside one transaction (upsert the document row, delete the old chunks,
COPY the new ones), so readers see either the old document or the new one, never half of each. The upsert locks
the document row, which also serialises two concurrent replaces of the same source.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from psycopg.rows import class_row, dict_row
from psycopg_pool import AsyncConnectionPool

from bot.domain import Chunk, Document, IngestResult
from bot.storage.errors import storage_errors
from bot.text import lexemes

log = logging.getLogger(__name__)

_DOCUMENT_COLUMNS = "id, scope, source_uri, title, mime_type, content_hash, size_bytes, chunk_count, added_by, added_at"

ENSURE_SCOPE = "INSERT INTO scopes (name) VALUES (%(scope)s) ON CONFLICT (name) DO NOTHING"

UPSERT_DOCUMENT = f"""
INSERT INTO documents (scope, source_uri, title, mime_type, content_hash, size_bytes, chunk_count, added_by)
VALUES (%(scope)s, %(source_uri)s, %(title)s, %(mime_type)s, %(content_hash)s, %(size_bytes)s, %(chunk_count)s,
        %(added_by)s)
ON CONFLICT (scope, source_uri) DO UPDATE SET
    title = EXCLUDED.title, mime_type = EXCLUDED.mime_type, content_hash = EXCLUDED.content_hash,
    size_bytes = EXCLUDED.size_bytes, chunk_count = EXCLUDED.chunk_count, added_by = EXCLUDED.added_by,
    updated_at = now()
RETURNING {_DOCUMENT_COLUMNS}, (xmax = 0) AS inserted
"""

DELETE_CHUNKS = "DELETE FROM chunks WHERE document_id = %(document_id)s"

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


async def replace_document(
    pool: AsyncConnectionPool,
    *,
    scope: str,
    source_uri: str,
    title: str,
    mime_type: str,
    content_hash: str,
    size_bytes: int,
    added_by: str,
    chunks: Sequence[Chunk],
    embeddings: np.ndarray,
) -> IngestResult:
    """Insert or replace the document at (``scope``, ``source_uri``) with ``chunks`` in one transaction.

    ``embeddings[i]`` belongs to ``chunks[i]``. On any failure nothing changes; raises :class:`StorageError`.
    """
    if len(chunks) != len(embeddings):
        raise ValueError(f"{len(chunks)} chunks but {len(embeddings)} embeddings")
    params = {
        "scope": scope,
        "source_uri": source_uri,
        "title": title,
        "mime_type": mime_type,
        "content_hash": content_hash,
        "size_bytes": size_bytes,
        "chunk_count": len(chunks),
        "added_by": added_by,
    }
    async with (
        storage_errors("storing the document"),
        pool.connection() as conn,
        conn.transaction(),
        conn.cursor(row_factory=dict_row) as cur,
    ):
        await cur.execute(ENSURE_SCOPE, params)
        await cur.execute(UPSERT_DOCUMENT, params)
        row = await cur.fetchone()
        assert row is not None, "an upsert with RETURNING always returns its row"
        inserted = row.pop("inserted")
        document = Document(**row)
        await cur.execute(DELETE_CHUNKS, {"document_id": document.id})
        async with cur.copy(COPY_CHUNKS) as copy:
            copy.set_types(COPY_CHUNK_TYPES)
            for chunk, embedding in zip(chunks, embeddings, strict=True):
                await copy.write_row(
                    (
                        document.id,
                        scope,
                        chunk.ordinal,
                        chunk.heading,
                        chunk.text,
                        lexemes(chunk.text),
                        chunk.token_count,
                        embedding,
                    )
                )
    return IngestResult(document, "added" if inserted else "replaced")


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
