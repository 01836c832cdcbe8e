"""One sync of one source: list upstream, skip what did not change, replace what did, remove what is gone.

Documents are replaced whole, a batch of them per transaction (:func:`bot.storage.documents.replace_documents`), so
a sync that stops half way leaves each document either old or new. The change marker is recorded only after its
document is stored, so an interrupted sync re-reads rather than skips. Documents are removed only after a listing
that was whole (:attr:`SourceLoader.complete`) and not empty: a failed fetch, a failed, truncated or empty listing
never deletes. A failed listing raises from the loader; the sync is then recorded as failed with nothing removed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from psycopg_pool import AsyncConnectionPool

from bot.domain import IngestResult
from bot.errors import LorebotError
from bot.ingest.pipeline import Ingestor, TextSource
from bot.settings import Settings
from bot.sources.anchors import line_links, page_link
from bot.sources.kinds import loader_for
from bot.sources.model import Source, SyncCounts, SyncReport, short_error
from bot.storage import sources as store
from bot.validation import clean_text

if TYPE_CHECKING:
    from langchain_core.documents import Document

log = logging.getLogger(__name__)

STORE_BATCH = 32
"""Fetched documents handed to :meth:`Ingestor.add_many` at once (their chunks are embedded together)."""
MAX_REPORTED_FAILURES = 50

OnItem = Callable[[str, str], None]
"""Progress: called with (upstream URI, ``added`` | ``updated`` | ``unchanged`` | ``failed`` | ``removed``)."""
_STATUS = {"added": "added", "replaced": "updated", "unchanged": "unchanged"}


@dataclass
class _Tally:
    on_item: OnItem | None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SyncCounts().as_json(), 0))
    failures: list[tuple[str, str]] = field(default_factory=list)

    def count(self, uri: str, outcome: str, n: int = 1) -> None:
        self.counts[outcome] += n
        if self.on_item:
            self.on_item(uri, outcome)

    def fail(self, uri: str, error: str) -> None:
        if len(self.failures) < MAX_REPORTED_FAILURES:
            self.failures.append((uri, short_error(error)))
        self.count(uri, "failed")


class SourceSync:
    """Syncs sources into their scope with the shared :class:`Ingestor`; the caller holds the source's lock."""

    def __init__(self, pool: AsyncConnectionPool, ingestor: Ingestor, settings: Settings) -> None:
        self.pool = pool
        self.ingestor = ingestor
        self.settings = settings

    async def run(self, source: Source, on_item: OnItem | None = None) -> SyncReport:
        started = time.perf_counter()
        stored = await store.items(self.pool, source.id)
        loader = loader_for(source, self.settings, {uri: item.version for uri, item in stored.items()})
        tally = _Tally(on_item)
        seen: set[str] = set()
        batch: list[Document] = []
        try:
            async for document in loader.alazy_load():
                uri = document.metadata["source"]
                if uri in seen:
                    continue
                seen.add(uri)
                state = document.metadata["state"]
                if state == "unchanged":
                    tally.count(uri, "unchanged")
                elif state == "failed":
                    tally.fail(uri, document.metadata["error"])
                else:
                    batch.append(document)
                    if len(batch) >= STORE_BATCH:
                        await self._store(source, loader.revision, batch, tally)
                        batch = []
            await self._store(source, loader.revision, batch, tally)
        except LorebotError as e:
            log.warning("source=%d sync failed: %s", source.id, e)
            report = self._report(source, "failed", tally, started, error=short_error(str(e)))
            await self._record(report)
            return report
        gone = [uri for uri in stored if uri not in seen]
        if gone and not seen:  # an unmounted folder, a robots.txt turned hostile: emptiness is not an answer
            loader.notes.append(f"upstream listed nothing; the {len(gone)} stored document(s) are kept")
        skipped = bool(gone) and (not loader.complete or not seen)
        if gone and not skipped:
            tally.counts["removed"] = await store.remove_items(self.pool, source.id, gone)
            if on_item:
                for uri in gone:
                    on_item(uri, "removed")
        status = "partial" if tally.counts["failed"] or skipped else "ok"
        error = "; ".join(loader.notes)
        report = self._report(
            source, status, tally, started, error=short_error(error), revision=loader.revision, removals_skipped=skipped
        )
        await self._record(report)
        return report

    async def _store(self, source: Source, revision: str, batch: Sequence[Document], tally: _Tally) -> None:
        if not batch:
            return
        texts = [
            TextSource(clean_text(d.page_content), clean_text(d.metadata["title"]), d.metadata["source"]) for d in batch
        ]
        by_uri = {d.metadata["source"]: d for d in batch}
        async for item, outcome in self.ingestor.add_many(texts, scope=source.scope, added_by=f"source:{source.id}"):
            assert isinstance(item, TextSource) and item.source_uri is not None
            if isinstance(outcome, IngestResult):
                document = by_uri[item.source_uri]
                if outcome.status != "unchanged":
                    await self._link(outcome.document.id, document)
                await store.record_item(
                    self.pool,
                    source.id,
                    uri=item.source_uri,
                    document_id=outcome.document.id,
                    version=document.metadata["version"],
                    revision=revision,
                )
                tally.count(item.source_uri, _STATUS[outcome.status])
            else:
                tally.fail(item.source_uri, str(outcome))

    async def _link(self, document_id: int, document: Document) -> None:
        """Record each new chunk's exact place upstream (see :mod:`bot.sources.anchors`), when the kind knows it."""
        metadata = document.metadata
        if "anchors" not in metadata and "blob_url" not in metadata:
            return
        chunks = await store.document_chunks(self.pool, document_id)
        if "anchors" in metadata:
            links = [page_link(metadata["source"], heading, metadata["anchors"]) for _, heading, _ in chunks]
        else:
            texts = [text for _, _, text in chunks]
            links = line_links(metadata["blob_url"], document.page_content, metadata["line_offset"], texts)
        await store.store_links(
            self.pool, [(chunk_id, link) for (chunk_id, _, _), link in zip(chunks, links, strict=True)]
        )

    def _report(self, source: Source, status: str, tally: _Tally, started: float, **extra) -> SyncReport:
        return SyncReport(
            source.id,
            status,
            SyncCounts(**tally.counts),
            tuple(tally.failures),  # type: ignore[arg-type]
            seconds=time.perf_counter() - started,
            **extra,
        )

    async def _record(self, report: SyncReport) -> None:
        await store.record_sync(
            self.pool,
            report.source_id,
            status=report.status,
            error=report.error or "",
            counts=report.counts.as_json(),
            revision=report.revision,
        )
        log.info(
            "source=%d synced %s %s in %.1f s", report.source_id, report.status, report.counts.as_json(), report.seconds
        )
