"""The ingestion pipeline: bytes, text, files or URLs → load → chunk → embed → atomic store (per document, or per
window of documents in bulk).

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
from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import httpx
import numpy as np
from psycopg_pool import AsyncConnectionPool

from bot.domain import Chunk, IngestResult
from bot.embeddings import Embedder
from bot.errors import IngestError, LorebotError
from bot.ingest.chunking import chunk_document
from bot.ingest.fetch import fetch_url
from bot.ingest.loaders import LoadedDocument, clean_title, load_document
from bot.settings import Settings
from bot.storage import documents

log = logging.getLogger(__name__)

SCOPE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
"""Mirrors the CHECK constraint on ``scopes.name`` so a bad name is an :class:`IngestError`, not a SQL error."""
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True, slots=True)
class TextSource:
    """Raw text to add in bulk (see :meth:`Ingestor.add_many`), like :meth:`Ingestor.add_text`'s arguments."""

    text: str
    title: str = ""
    source_uri: str | None = None


IngestSource = Path | str | TextSource
"""What :meth:`Ingestor.add_many` adds: a local file, a URL (as :func:`expand_sources` gives them) or text."""

EMBED_WINDOW_BATCHES = 8
"""Model batches per embedding call in :meth:`Ingestor.add_many`. The model sorts a call's texts by length before
batching, so a call of several batches pads far less than one of a single batch of mixed lengths."""


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A document loaded and chunked, not yet embedded or stored."""

    loaded: LoadedDocument
    chunks: list[Chunk]
    scope: str
    source_uri: str
    content_hash: str
    size: int
    added_by: str
    chunk_ms: float


_Done = tuple[IngestSource, IngestResult | LorebotError]
_Outcome = tuple[IngestSource, IngestResult | LorebotError | _Prepared]
_Embedded = tuple[dict[int, np.ndarray], float]
"""Vectors of a window's prepared documents by ``id``, and the embedding time per document in ms."""


class Ingestor:
    """Adds documents to a scope; re-adding a source replaces it, identical content is skipped.

    Every document goes through the same two steps: *prepare* (cheap checks, load, chunk, the unchanged-hash
    check; no embedding) and *store* (embed, then one atomic :func:`documents.replace_documents`). The
    single-document methods run both for one document; :meth:`add_many` embeds the chunks of a window of
    prepared documents in one call and stores them in one transaction.
    """

    def __init__(self, pool: AsyncConnectionPool, embedder: Embedder, settings: Settings) -> None:
        self.pool = pool
        self.embedder = embedder
        self.settings = settings

    async def add_text(
        self, text: str, *, title: str, scope: str, source_uri: str | None, added_by: str
    ) -> IngestResult:
        """Add raw text; without ``source_uri`` the source is ``text:<title>`` (or ``text:<hash>`` untitled)."""
        return await self._index(await self._prepare_text(text, title, scope, source_uri, added_by))

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
        return await self._index(await self._prepare_bytes(data, filename, scope, source_uri, added_by, declared_mime))

    async def add_path(self, path: Path, *, scope: str, added_by: str) -> IngestResult:
        """Add a local file; its ``file://`` URI is the source, so re-adding the path replaces it."""
        return await self._index(await self._prepare_path(path, scope, added_by))

    async def add_url(self, url: str, *, scope: str, added_by: str) -> IngestResult:
        """Fetch ``url`` through the guarded fetcher (see :mod:`bot.ingest.fetch`); the URL is the source."""
        return await self._index(await self._prepare_url(url, scope, added_by))

    async def add_many(
        self, items: Iterable[IngestSource], *, scope: str, added_by: str
    ) -> AsyncIterator[tuple[IngestSource, IngestResult | LorebotError]]:
        """Add many sources, yielding ``(item, result or error)`` for each, in order, as windows complete.

        Results are those of the single-document methods (same checks, limits, statuses and errors), but the
        chunks of a window of prepared documents (up to ``EMBED_WINDOW_BATCHES`` full model batches) are embedded
        in one call and stored in one transaction; the next window is prepared while that runs, and embedded while
        the previous one is stored. A failing document only fails itself (its window is then stored one by one).
        """
        window: list[_Outcome] = []
        pending: set[str] = set()  # sources prepared but not stored yet (this window and the one in flight)
        chunk_total = 0
        limit = self.settings.embedding_batch_size * EMBED_WINDOW_BATCHES
        embedding: asyncio.Task[_Embedded] | None = None  # the last full window's vectors, being computed
        storing: asyncio.Task[list[_Done]] | None = None  # that window, stored once embedded and the one before
        try:
            for item in items:
                try:
                    outcome: IngestResult | LorebotError | _Prepared = await self._prepare(item, scope, added_by)
                except LorebotError as e:
                    outcome = e
                if isinstance(outcome, _Prepared) and outcome.source_uri in pending:
                    # The same source twice: store the first before deciding about the second, as one by one would.
                    for done in [*(await storing if storing else []), *await self._flush(window)]:
                        yield done
                    embedding, storing, window, pending, chunk_total = None, None, [], set(), 0
                    unchanged = await self._unchanged(scope, outcome.source_uri, outcome.content_hash)
                    outcome = unchanged or outcome
                window.append((item, outcome))
                if isinstance(outcome, _Prepared):
                    pending.add(outcome.source_uri)
                    chunk_total += len(outcome.chunks)
                if chunk_total >= limit or len(window) >= limit:
                    if embedding is not None:
                        await embedding  # one embedding at a time; the window before may still be storing
                    previous = storing
                    embedding = asyncio.create_task(self._embed_window(window))
                    storing = asyncio.create_task(self._store_window(window, embedding, after=previous))
                    pending = {o.source_uri for _, o in window if isinstance(o, _Prepared)}
                    window, chunk_total = [], 0
                    for done in await previous if previous else []:
                        yield done
            for done in [*(await storing if storing else []), *await self._flush(window)]:
                yield done
            embedding = storing = None
        finally:
            for task in (embedding, storing):
                if task is not None:
                    task.cancel()

    async def _flush(self, window: list[_Outcome]) -> list[_Done]:
        """Embed every prepared document of ``window`` in one call, then store each one on its own."""
        return await self._store_window(window, self._embed_window(window), after=None)

    async def _embed_window(self, window: list[_Outcome]) -> _Embedded:
        """The vectors of every prepared document of ``window``, from one embedding call (keyed by ``id``), and
        the call's time per document; ``{}`` when that call failed (then each document is embedded alone)."""
        prepared = [outcome for _, outcome in window if isinstance(outcome, _Prepared)]
        if not prepared:
            return {}, 0.0
        started = time.perf_counter()
        try:
            embeddings = await self._embed([chunk for p in prepared for chunk in p.chunks])
        except LorebotError as e:
            # One call failed for all of them: embed each on its own so the errors stay per document.
            log.warning("batched embedding of %d documents failed (%s); embedding one by one", len(prepared), e)
            return {}, 0.0
        vectors: dict[int, np.ndarray] = {}
        offset = 0
        for p in prepared:
            vectors[id(p)] = embeddings[offset : offset + len(p.chunks)]
            offset += len(p.chunks)
        return vectors, (time.perf_counter() - started) * 1000 / len(prepared)

    async def _store_window(
        self, window: list[_Outcome], embedded: Awaitable[_Embedded], *, after: Awaitable[object] | None
    ) -> list[_Done]:
        """Store the prepared documents of ``window`` once their vectors are there and the window ``after`` is
        stored (so windows are stored in order, one at a time, while the next one is being embedded): all in one
        transaction, or each in its own when that fails, so that a failing document only fails itself."""
        vectors, embed_ms = await embedded
        if after is not None:
            await after
        together = [o for _, o in window if isinstance(o, _Prepared) and id(o) in vectors]
        stored: dict[int, IngestResult] = {}
        if together:
            try:
                results = await self._store(together, [vectors[id(p)] for p in together], embed_ms)
                stored = {id(p): result for p, result in zip(together, results, strict=True)}
            except LorebotError as e:
                log.warning("storing %d documents together failed (%s); storing one by one", len(together), e)
        done: list[_Done] = []
        for item, outcome in window:
            if isinstance(outcome, _Prepared):
                try:
                    if id(outcome) in stored:
                        outcome = stored[id(outcome)]
                    elif id(outcome) in vectors:
                        (outcome,) = await self._store([outcome], [vectors[id(outcome)]], embed_ms)
                    else:
                        outcome = await self._index(outcome)
                except LorebotError as e:
                    outcome = e
            done.append((item, outcome))
        return done

    # --- prepare: checks, load, chunk, unchanged check (no embedding) ------------------------------------

    async def _prepare(self, item: IngestSource, scope: str, added_by: str) -> IngestResult | _Prepared:
        if isinstance(item, TextSource):
            return await self._prepare_text(item.text, item.title, scope, item.source_uri, added_by)
        if isinstance(item, Path):
            return await self._prepare_path(item, scope, added_by)
        return await self._prepare_url(item, scope, added_by)

    async def _prepare_text(
        self, text: str, title: str, scope: str, source_uri: str | None, added_by: str
    ) -> IngestResult | _Prepared:
        data = text.encode("utf-8")
        content_hash = _hash(data)
        title = clean_title(title) if title.strip() else ""
        source_uri = source_uri or f"text:{title or content_hash[:16]}"
        self._check(scope, len(data), source_uri)
        if not text.strip():
            raise IngestError("document has no text: the text is empty or whitespace only")
        unchanged = await self._unchanged(scope, source_uri, content_hash)
        if unchanged:
            return unchanged
        first_line = text.strip().splitlines()[0]
        loaded = LoadedDocument(title or clean_title(first_line), text.replace("\x00", "").strip(), "text/plain")
        return await self._chunk(loaded, scope, source_uri, content_hash, len(data), added_by)

    async def _prepare_bytes(
        self, data: bytes, filename: str, scope: str, source_uri: str, added_by: str, declared_mime: str | None
    ) -> IngestResult | _Prepared:
        self._check(scope, len(data), source_uri)
        content_hash = _hash(data)
        unchanged = await self._unchanged(scope, source_uri, content_hash)
        if unchanged:
            return unchanged
        loaded = await asyncio.to_thread(load_document, data, filename=filename, declared_mime=declared_mime)
        return await self._chunk(loaded, scope, source_uri, content_hash, len(data), added_by)

    async def _prepare_path(self, path: Path, scope: str, added_by: str) -> IngestResult | _Prepared:
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
        return await self._prepare_bytes(data, path.name, scope, source_uri, added_by, None)

    async def _prepare_url(self, url: str, scope: str, added_by: str) -> IngestResult | _Prepared:
        self._check(scope, 0, url)
        fetched = await fetch_url(url, self.settings)
        filename = PurePosixPath(httpx.URL(fetched.final_url).path).name
        return await self._prepare_bytes(fetched.data, filename, scope, url.strip(), added_by, fetched.content_type)

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

    async def _chunk(
        self, loaded: LoadedDocument, scope: str, source_uri: str, content_hash: str, size: int, added_by: str
    ) -> _Prepared:
        started = time.perf_counter()
        chunks = await asyncio.to_thread(chunk_document, loaded.text, title=loaded.title, settings=self.settings)
        chunk_ms = (time.perf_counter() - started) * 1000
        return _Prepared(loaded, chunks, scope, source_uri, content_hash, size, added_by, chunk_ms)

    # --- store: embed, then one atomic replace ------------------------------------------------------------

    async def _index(self, prepared: IngestResult | _Prepared) -> IngestResult:
        """Embed and store one prepared document (an unchanged one is returned as it is)."""
        if isinstance(prepared, IngestResult):
            return prepared
        started = time.perf_counter()
        embeddings = await self._embed(prepared.chunks)
        (result,) = await self._store([prepared], [embeddings], (time.perf_counter() - started) * 1000)
        return result

    async def _embed(self, chunks: Sequence[Chunk]) -> np.ndarray:
        return await asyncio.to_thread(self.embedder.embed_documents, [chunk.text for chunk in chunks])

    async def _store(
        self, batch: Sequence[_Prepared], embeddings: Sequence[np.ndarray], embed_ms: float
    ) -> list[IngestResult]:
        """Store ``batch`` (documents of distinct sources) in one transaction; ``embed_ms`` per document, logged."""
        started = time.perf_counter()
        writes = [
            documents.DocumentWrite(
                scope=p.scope,
                source_uri=p.source_uri,
                title=p.loaded.title,
                mime_type=p.loaded.mime_type,
                content_hash=p.content_hash,
                size_bytes=p.size,
                added_by=p.added_by,
                chunks=p.chunks,
                embeddings=vectors,
            )
            for p, vectors in zip(batch, embeddings, strict=True)
        ]
        results = await documents.replace_documents(self.pool, writes)
        store_ms = (time.perf_counter() - started) * 1000 / len(batch)
        for p, result in zip(batch, results, strict=True):
            log.info(
                "%s document=%d scope=%s type=%s bytes=%d chunks=%d chunk_ms=%d embed_ms=%d store_ms=%d",
                result.status,
                result.document.id,
                p.scope,
                p.loaded.mime_type,
                p.size,
                len(p.chunks),
                p.chunk_ms,
                embed_ms,
                store_ms,
            )
        return results


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
