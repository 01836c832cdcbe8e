"""The ingestion pipeline: bytes, text, files or URLs → load → chunk → embed → one atomic store.

Cheap refusals come first (size, scope name, unchanged content hash) so that a too-large or already-known
document costs neither parsing nor embedding. CPU-bound stages run in worker threads to keep the event loop
(and the chat connections on it) responsive.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import httpx
from psycopg_pool import AsyncConnectionPool

from bot.domain import IngestResult
from bot.embeddings import Embedder
from bot.errors import IngestError
from bot.ingest.chunking import chunk_document
from bot.ingest.fetch import fetch_url
from bot.ingest.loaders import LoadedDocument, load_document
from bot.settings import Settings
from bot.storage import documents

log = logging.getLogger(__name__)

SCOPE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
"""Mirrors the CHECK constraint on ``scopes.name`` so a bad name is an :class:`IngestError`, not a SQL error."""
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class Ingestor:
    """Adds documents to a scope; re-adding a source replaces it, identical content is skipped."""

    def __init__(self, pool: AsyncConnectionPool, embedder: Embedder, settings: Settings) -> None:
        self.pool = pool
        self.embedder = embedder
        self.settings = settings

    async def add_text(
        self, text: str, *, title: str, scope: str, source_uri: str | None, added_by: str
    ) -> IngestResult:
        """Add raw text; without ``source_uri`` the source is ``text:<title>`` (or ``text:<hash>`` untitled)."""
        data = text.encode("utf-8")
        content_hash = _hash(data)
        source_uri = source_uri or f"text:{title.strip() or content_hash[:16]}"
        self._check(scope, len(data), source_uri)
        if not text.strip():
            raise IngestError("document has no text: the text is empty or whitespace only")
        unchanged = await self._unchanged(scope, source_uri, content_hash)
        if unchanged:
            return unchanged
        first_line = text.strip().splitlines()[0]
        loaded = LoadedDocument(title.strip() or first_line[:200], text.replace("\x00", "").strip(), "text/plain")
        return await self._index(loaded, scope, source_uri, content_hash, len(data), added_by)

    async def add_bytes(
        self,
        data: bytes,
        *,
        filename: str,
        scope: str,
        source_uri: str,
        added_by: str,
        declared_mime: str | None = None,
    ) -> IngestResult:
        """Add an uploaded file; its format is detected from the bytes (see :mod:`bot.ingest.loaders`)."""
        self._check(scope, len(data), source_uri)
        content_hash = _hash(data)
        unchanged = await self._unchanged(scope, source_uri, content_hash)
        if unchanged:
            return unchanged
        loaded = await asyncio.to_thread(load_document, data, filename=filename, declared_mime=declared_mime)
        return await self._index(loaded, scope, source_uri, content_hash, len(data), added_by)

    async def add_path(self, path: Path, *, scope: str, added_by: str) -> IngestResult:
        """Add a local file; its ``file://`` URI is the source, so re-adding the path replaces it."""
        path = Path(path).expanduser()
        try:
            size = path.stat().st_size
        except OSError as e:
            raise IngestError(f"cannot read {path}: {e.strerror or e}") from e
        if not path.is_file():
            raise IngestError(f"{path} is not a regular file")
        source_uri = path.resolve().as_uri()
        self._check(scope, size, source_uri)
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except OSError as e:
            raise IngestError(f"cannot read {path}: {e.strerror or e}") from e
        return await self.add_bytes(data, filename=path.name, scope=scope, source_uri=source_uri, added_by=added_by)

    async def add_url(self, url: str, *, scope: str, added_by: str) -> IngestResult:
        """Fetch ``url`` through the guarded fetcher (see :mod:`bot.ingest.fetch`); the URL is the source."""
        self._check(scope, 0, url)
        fetched = await fetch_url(url, self.settings)
        filename = PurePosixPath(httpx.URL(fetched.final_url).path).name
        return await self.add_bytes(
            fetched.data,
            filename=filename,
            scope=scope,
            source_uri=url.strip(),
            added_by=added_by,
            declared_mime=fetched.content_type,
        )

    def _check(self, scope: str, size: int, source: str) -> None:
        if not SCOPE_NAME.match(scope):
            raise IngestError(f"invalid scope name {scope!r}: use 1-64 letters, digits, '_', '.', ':' or '-'")
        limit = self.settings.max_document_bytes
        if size > limit:
            raise IngestError(f"{source} is {size} bytes, more than the {limit}-byte limit (MAX_DOCUMENT_BYTES)")

    async def _unchanged(self, scope: str, source_uri: str, content_hash: str) -> IngestResult | None:
        document = await documents.find_unchanged(self.pool, scope, source_uri, content_hash)
        if document is None:
            return None
        log.info("unchanged document=%d scope=%s chunks=%d", document.id, scope, document.chunk_count)
        return IngestResult(document, "unchanged")

    async def _index(
        self, loaded: LoadedDocument, scope: str, source_uri: str, content_hash: str, size: int, added_by: str
    ) -> IngestResult:
        started = time.perf_counter()
        chunks = await asyncio.to_thread(chunk_document, loaded.text, title=loaded.title, settings=self.settings)
        chunked = time.perf_counter()
        embeddings = await asyncio.to_thread(self.embedder.embed_documents, [chunk.text for chunk in chunks])
        embedded = time.perf_counter()
        result = await documents.replace_document(
            self.pool,
            scope=scope,
            source_uri=source_uri,
            title=loaded.title,
            mime_type=loaded.mime_type,
            content_hash=content_hash,
            size_bytes=size,
            added_by=added_by,
            chunks=chunks,
            embeddings=embeddings,
        )
        log.info(
            "%s document=%d scope=%s type=%s bytes=%d chunks=%d chunk_ms=%d embed_ms=%d store_ms=%d",
            result.status,
            result.document.id,
            scope,
            loaded.mime_type,
            size,
            len(chunks),
            (chunked - started) * 1000,
            (embedded - chunked) * 1000,
            (time.perf_counter() - embedded) * 1000,
        )
        return result


def expand_sources(items: Sequence[str], pattern: str = "*") -> list[str | Path]:
    """What ``lorebot ingest`` should add: URLs as given, files as-is, folders walked recursively for files
    matching ``pattern`` (hidden files and folders skipped). Raises :class:`IngestError` for missing paths."""
    sources: list[str | Path] = []
    for item in items:
        if _URL.match(item):
            sources.append(item)
            continue
        path = Path(item).expanduser()
        if path.is_file():
            sources.append(path)
        elif path.is_dir():
            sources.extend(
                found
                for found in sorted(path.rglob(pattern))
                if found.is_file() and not any(part.startswith(".") for part in found.relative_to(path).parts)
            )
        else:
            raise IngestError(f"no such file or folder: {item}")
    return list(dict.fromkeys(sources))


def _hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
