"""The Lorebot service: the only object adapters call.

It ties the stages together (ingest → store, retrieve → answer → record) and enforces what every platform must
get right the same way: admin checks and the audit log, scope resolution, per-user rate limits, event dedupe.
Adapters hand it a :class:`~bot.domain.Place` (and the platform's facts about the actor); it decides the rest.
Build it with :meth:`Lorebot.start` from the entry point and close it on shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from psycopg_pool import AsyncConnectionPool

from bot.access import AuditTrail
from bot.answer.citations import citation
from bot.answer.prompt import format_context
from bot.domain import (
    Actor,
    Answer,
    AnswerDelta,
    ConversationKey,
    Document,
    IngestResult,
    Passage,
    Place,
    Question,
    Score,
)
from bot.embeddings import Embedder, LazyEmbedder
from bot.errors import AnswerError, IngestError, LorebotError, NotFound, Redelivered
from bot.ingest.fetch import redact_credentials
from bot.ingest.loaders import check_readable
from bot.ingest.pipeline import Ingestor, IngestSource, TextSource
from bot.observer import ServiceObserver
from bot.ratelimit import RateLimiter
from bot.retrieval import Retriever
from bot.scopes import resolve_scopes
from bot.settings import Settings
from bot.sources.manager import SourceManager
from bot.storage import conversations, documents, events, feedback
from bot.storage.migrate import migrate
from bot.storage.pool import open_pool, resolve_database_url
from bot.streaming import final_answer
from bot.validation import check_actor, check_label, checked_question, clean_text, question_text

if TYPE_CHECKING:
    from bot.answer.chain import Answerer
    from bot.desk.service import Desk

log = logging.getLogger(__name__)


class Lorebot:
    """Ask, stream, search, add/list/remove documents and record feedback on behalf of an :class:`Actor`."""

    def __init__(
        self, settings: Settings, pool: AsyncConnectionPool, embedder: Embedder, observer: ServiceObserver | None = None
    ) -> None:
        self.settings = settings
        self.observer = observer or ServiceObserver()
        self.pool = pool
        self.embedder = embedder
        self.retriever = Retriever(pool, embedder, settings)
        self.ingestor = Ingestor(pool, embedder, settings)
        self.audit = AuditTrail(pool, settings)
        self.rate_limiter = RateLimiter(settings.rate_limit_per_minute)
        self.sources = SourceManager(pool, self.ingestor, self.audit, settings)

    @classmethod
    async def start(
        cls,
        settings: Settings,
        *,
        embedder: Embedder | None = None,
        load_model: bool = True,
        observer: ServiceObserver | None = None,
    ) -> Lorebot:
        """Connect (starting the embedded Postgres if needed), migrate, and load the embedding model while the
        database starts. With ``load_model=False`` the model loads on first use instead: commands that never
        embed then skip importing torch and reading the weights (seconds). ``observer`` watches the service
        (metrics)."""
        embedder = embedder or LazyEmbedder(settings)
        starting = [asyncio.to_thread(resolve_database_url, settings)]
        if load_model and isinstance(embedder, LazyEmbedder):
            starting.append(asyncio.to_thread(embedder.load))
        conninfo, *_ = await asyncio.gather(*starting)
        await asyncio.to_thread(migrate, conninfo, embedding_dim=embedder.dim)
        pool = await open_pool(conninfo, settings)
        return cls(settings, pool, embedder, observer)

    @cached_property
    def answerer(self) -> Answerer:
        """Built on first use: importing LangChain costs CLI commands that never answer about a second."""
        from bot.answer.chain import Answerer

        return Answerer(self.settings, self.retriever)

    @cached_property
    def desk(self) -> Desk:
        """The support desk: channel behaviour, hand-over to people, saved answers, the report."""
        from bot.desk.service import Desk

        return Desk(self.pool, self.settings, self.embedder, self.audit, self.add_text)

    async def close(self) -> None:
        await self.pool.close()

    # --- asking -------------------------------------------------------------------------------------

    def scopes_at(self, place: Place) -> tuple[str, ...]:
        """The knowledge scopes ``place`` answers from (most specific ``scope_map`` entry, else the default): what
        a question there searches and where an admin command there adds, lists or removes."""
        return resolve_scopes(self.settings, place)

    async def accept(self, question: Question) -> Question:
        """``question`` as the core answers it: its scopes resolved from its place (unless it names them) and its
        place's event claimed. Raises :class:`Redelivered` for an event delivered before (any process, any
        restart), ``InvalidInput`` for place ids that are not valid ids.

        :meth:`stream` accepts every question itself; an adapter that shows something before answering (a
        placeholder, a new thread) accepts first, so a re-delivery shows nothing. The accepted question names its
        scopes and has no event left to claim, so accepting it again changes nothing."""
        place = question.place
        if place is None:
            return question
        for part in ("platform", "workspace", "channel"):
            check_label(getattr(place, part), f"place's {part}")
        if not await self.first_delivery(place):
            raise Redelivered(f"event {place.event_id} on {place.platform} was delivered before")
        return replace(question, scopes=question.scopes or self.scopes_at(place), place=replace(place, event_id=""))

    async def ask(self, question: Question) -> Answer:
        """Answer completely; raises :class:`~bot.errors.RateLimited`, ``AnswerError``, ``RetrievalError``."""
        return await final_answer(self.stream(question))

    async def stream(self, question: Question) -> AsyncIterator[AnswerDelta | Answer]:
        """Stream the answer as :class:`AnswerDelta` pieces, then the recorded :class:`Answer`.

        The question is validated first (:func:`bot.validation.checked_question`): ``InvalidQuestion`` or
        ``InvalidInput`` before any work; then rate-limited and accepted (:meth:`accept`): ``Redelivered`` for an
        event answered before. An event is claimed before it is answered, so a failed answer is not retried by
        re-delivering it.
        """
        question = checked_question(question)
        self.rate_limiter.check(question.actor.ref)
        question = await self.accept(question)
        started = time.perf_counter()
        history = await self._history(question.conversation)
        language = await self.desk.channel_language(question)
        final: Answer | None = None
        try:
            async for event in self.answerer.stream(question.text, question.scopes, history, language=language):
                if isinstance(event, Answer):
                    final = event
                else:
                    yield event
        except AnswerError as e:
            self.observer.llm_failed(e)
            raise
        assert final is not None
        latency_ms = int((time.perf_counter() - started) * 1000)
        message_id = await conversations.record_message(
            self.pool, question, final, prompt_context=format_context(final.passages), latency_ms=latency_ms
        )
        log.info(
            "answered message=%d actor=%s found=%s citations=%d latency_ms=%d",
            message_id,
            question.actor.ref,
            final.found,
            len(final.citations),
            latency_ms,
        )
        final = _with_message_id(final, message_id)
        self.observer.answered(question.actor.platform, final, time.perf_counter() - started)
        yield final

    async def answer(self, message_id: int, actor: Actor) -> Answer:
        """The answer recorded as ``message_id``, for the actor who asked it (sharing a private answer later, from
        any replica or after a restart); raises :class:`NotFound` for anyone else or an unknown id."""
        stored = await conversations.stored_answer(self.pool, message_id)
        if stored is None or (stored.platform, stored.user_id) != (actor.platform, actor.user_id):
            raise NotFound(f"no answer {message_id} asked by {actor.ref}")
        return Answer(
            text=stored.text,
            citations=tuple(citation(number, passage) for number, passage in stored.cited),
            passages=tuple(passage for _, passage in stored.cited),
            found=stored.found,
            model=stored.model,
            message_id=stored.message_id,
            search_query=stored.search_query,
        )

    async def knows_conversation(self, key: ConversationKey) -> bool:
        """True when the bot already answered in this conversation (thread follow-ups need no mention)."""
        return await conversations.exists(self.pool, key)

    async def _history(self, key: ConversationKey | None):
        if key is None or self.settings.history_turns == 0:
            return []
        return await conversations.history(self.pool, key, limit=self.settings.history_turns)

    async def search(self, actor: Actor, query: str, scopes: Sequence[str], k: int | None = None) -> list[Passage]:
        """The top passages for ``query`` in ``scopes`` (no LLM involved); ``InvalidQuestion`` for a query that
        would not be a valid question, ``InvalidInput`` for an actor whose ids are not."""
        query = question_text(query, what="search text")
        check_actor(actor)
        started = time.perf_counter()
        passages = await self.retriever.search(query, scopes, k or self.settings.retrieval_k)
        self.observer.searched(time.perf_counter() - started)
        log.info("search by %s in %s: %d passages", actor.ref, ",".join(scopes), len(passages))
        return passages

    async def record_feedback(self, actor: Actor, message_id: int, score: Score, comment: str = "") -> None:
        """Store (or change) ``actor``'s rating of an answer; raises :class:`NotFound` for unknown answers."""
        if score not in (1, -1):
            raise ValueError("score must be 1 or -1")
        check_actor(actor)
        await feedback.record(self.pool, message_id, actor, score, clean_text(comment.strip()[:2000]))
        self.observer.rated(score)

    async def first_delivery(self, place: Place) -> bool:
        """Claim the event of ``place`` for what is not a question (a file shared with the bot): True for its first
        delivery (or a place without an event id), False for every re-delivery (any process)."""
        check_label(place.event_id, "place's event id")
        if not place.event_id or await events.claim(self.pool, place.platform, place.event_id):
            return True
        log.info("dropping re-delivered event %s:%s", place.platform, place.event_id)
        return False

    # --- knowledge administration (admin only, audited) --------------------------------------------
    # Titles, names and texts are cleaned and credentials redacted before anything is stored or audited.

    async def require_admin(self, actor: Actor, action: str, *, target: str) -> None:
        """Refuse (and audit) a non-admin before an adapter fetches anything for ``action``, such as an upload's
        bytes; raises :class:`~bot.errors.PermissionDenied`."""
        await self.audit.require_admin(actor, action, target=target)

    def check_upload(self, filename: str, declared_mime: str | None, size: int) -> None:
        """Refuse an upload before downloading it: larger than ``max_document_bytes`` or of a type the loaders
        cannot read; raises :class:`~bot.errors.IngestError`."""
        if size > self.settings.max_document_bytes:
            raise IngestError(f"{filename} is {size} bytes; the limit is {self.settings.max_document_bytes}")
        check_readable(filename, declared_mime)

    async def add_text(
        self, actor: Actor, text: str, *, title: str = "", scope: str | None = None, source_uri: str | None = None
    ) -> IngestResult:
        scope = scope or self.settings.default_scope
        source = _cleaned(TextSource(text, title, source_uri))
        async with self.audit.admin_action(actor, "add_text", target=_audit_target(source)[1]) as entry:
            result = await self._counted(
                self.ingestor.add_text(
                    source.text, title=source.title, scope=scope, source_uri=source.source_uri, added_by=actor.ref
                )
            )
            entry.record(result)
        return result

    async def add_file(
        self,
        actor: Actor,
        data: bytes,
        filename: str,
        *,
        scope: str | None = None,
        source_uri: str | None = None,
        declared_mime: str | None = None,
    ) -> IngestResult:
        scope = scope or self.settings.default_scope
        filename = clean_text(filename)
        source_uri = redact_credentials(clean_text(source_uri or f"upload:{actor.platform}:{filename}"))
        async with self.audit.admin_action(actor, "add_file", target=source_uri) as entry:
            result = await self._counted(
                self.ingestor.add_bytes(
                    data,
                    filename=filename,
                    scope=scope,
                    source_uri=source_uri,
                    added_by=actor.ref,
                    declared_mime=declared_mime,
                )
            )
            entry.record(result)
        return result

    async def add_path(self, actor: Actor, path: Path, *, scope: str | None = None) -> IngestResult:
        scope = scope or self.settings.default_scope
        async with self.audit.admin_action(actor, "add_path", target=str(path)) as entry:
            result = await self._counted(self.ingestor.add_path(path, scope=scope, added_by=actor.ref))
            entry.record(result)
        return result

    async def add_url(self, actor: Actor, url: str, *, scope: str | None = None) -> IngestResult:
        scope = scope or self.settings.default_scope
        async with self.audit.admin_action(actor, "add_url", target=_audit_target(url)[1]) as entry:
            result = await self._counted(self.ingestor.add_url(url, scope=scope, added_by=actor.ref))
            entry.record(result)
        return result

    async def add_many(
        self, actor: Actor, items: Sequence[IngestSource], *, scope: str | None = None
    ) -> AsyncIterator[tuple[IngestSource, IngestResult | LorebotError]]:
        """Add many files, URLs or texts with batched embedding (see :meth:`Ingestor.add_many`).

        Yields ``(item, result or error)`` per item; a failed item does not stop the others. Each item is
        audited on its own, as ``add_path`` / ``add_url`` / ``add_text`` with the single methods' targets.
        A non-admin is refused (and audited) before anything is read.
        """
        scope = scope or self.settings.default_scope
        await self.audit.require_admin(actor, "add_many", target=f"{len(items)} sources")
        items = [_cleaned(item) if isinstance(item, TextSource) else item for item in items]
        async for item, outcome in self.ingestor.add_many(items, scope=scope, added_by=actor.ref):
            action, target = _audit_target(item)
            async with self.audit.admin_action(actor, action, target=target) as entry:
                if isinstance(outcome, LorebotError):
                    entry.failed(outcome)
                else:
                    entry.record(outcome)
            self._observe_ingestion(outcome)
            yield item, outcome

    async def _counted(self, ingestion: Awaitable[IngestResult]) -> IngestResult:
        try:
            result = await ingestion
        except IngestError as e:
            self._observe_ingestion(e)
            raise
        self._observe_ingestion(result)
        return result

    def _observe_ingestion(self, outcome: IngestResult | LorebotError) -> None:
        if isinstance(outcome, IngestResult):
            self.observer.ingested(outcome)
        elif isinstance(outcome, IngestError):
            self.observer.ingest_rejected(outcome)

    async def list_documents(self, actor: Actor, scopes: Sequence[str]) -> list[Document]:
        """Documents in ``scopes``, newest first (anyone may list what they may ask about); ``InvalidInput`` for
        an actor whose ids are not valid."""
        check_actor(actor)
        listed = await documents.list_documents(self.pool, scopes)
        log.info("documents listed by %s in %s: %d", actor.ref, ",".join(scopes), len(listed))
        return listed

    async def remove_document(self, actor: Actor, document_id: int, scopes: Sequence[str]) -> Document:
        """Delete a document and its chunks; only within ``scopes``; raises :class:`NotFound` otherwise."""
        async with self.audit.admin_action(actor, "remove_document", target=str(document_id)) as entry:
            removed = await documents.delete_document(self.pool, document_id, scopes)
            if removed is None:
                raise NotFound(f"no document {document_id} in scope {', '.join(scopes)}")
            entry.record(removed)
        return removed


def _cleaned(source: TextSource) -> TextSource:
    """Storable text, title and source (see :mod:`bot.validation`), no credentials in the source. Files and URLs
    need no such step: the loader cleans file text, the fetcher refuses URLs with credentials."""
    source_uri = redact_credentials(clean_text(source.source_uri)) if source.source_uri else source.source_uri
    return TextSource(clean_text(source.text), clean_text(source.title), source_uri)


def _audit_target(item: IngestSource) -> tuple[str, str]:
    """The audit action and target the single-document method for ``item`` would write."""
    if isinstance(item, TextSource):
        return "add_text", item.source_uri or item.title or "text"
    if isinstance(item, Path):
        return "add_path", str(item)
    return "add_url", redact_credentials(item)


def _with_message_id(answer: Answer, message_id: int) -> Answer:
    return replace(answer, message_id=message_id)
