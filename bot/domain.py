"""Platform-free domain types that adapters convert to and from.

They are small frozen dataclasses: cheap to build, safe to share between tasks, and free of any Slack,
Discord, SQL or LangChain detail.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal


class Platform(StrEnum):
    SLACK = "slack"
    DISCORD = "discord"
    LOCAL = "local"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is asking or acting. ``is_admin`` is decided by the adapter from settings and platform roles."""

    platform: str
    user_id: str
    display_name: str = ""
    is_admin: bool = False

    @property
    def ref(self) -> str:
        """A stable, loggable identifier such as ``slack:U123``."""
        return f"{self.platform}:{self.user_id}"


@dataclass(frozen=True, slots=True)
class ConversationKey:
    """Where a conversation lives: one transcript per (platform, workspace/guild, channel, thread)."""

    platform: str
    workspace: str
    channel: str
    thread: str = ""


@dataclass(frozen=True, slots=True)
class Place:
    """Where something was said, in the platform's own ids. The core decides what follows from it: the knowledge
    scopes of the place (``SCOPE_MAP``) and whether its event was delivered before."""

    platform: str
    workspace: str = ""
    channel: str = ""
    """The channel whose knowledge applies; for a Discord thread, the channel the thread lives in."""
    event_id: str = ""
    """The platform's id of this delivery (a Slack event id, a Discord message, a client's request id): the core
    answers the first delivery only. Empty where nothing is ever delivered twice (slash commands, the terminal)."""


@dataclass(frozen=True, slots=True)
class Question:
    """A question put to the knowledge base, asked at ``place`` and limited to ``scopes``.

    Adapters name the place; the core resolves its scopes (:meth:`bot.service.Lorebot.accept`). Explicit
    ``scopes`` are for callers that choose them, such as the CLI's ``--scope``.
    """

    text: str
    actor: Actor
    scopes: tuple[str, ...] = ()
    conversation: ConversationKey | None = None
    place: Place | None = None


@dataclass(frozen=True, slots=True)
class Document:
    """A stored document (its chunks live in the database)."""

    id: int
    scope: str
    source_uri: str
    title: str
    mime_type: str
    content_hash: str
    size_bytes: int
    chunk_count: int
    added_by: str
    added_at: datetime


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a document ready to embed and store. ``heading`` is repeated inside ``text`` for retrieval."""

    ordinal: int
    text: str
    heading: str = ""
    token_count: int = 0


@dataclass(frozen=True, slots=True)
class Passage:
    """A retrieved chunk with its document and fused score (higher is better)."""

    chunk_id: int
    document_id: int
    title: str
    source_uri: str
    text: str
    score: float
    scope: str = ""
    ordinal: int = 0
    vector_rank: int | None = None
    keyword_rank: int | None = None
    similarity: float | None = None


@dataclass(frozen=True, slots=True)
class Citation:
    """A source the answer cites with marker ``[number]``."""

    number: int
    chunk_id: int
    document_id: int
    title: str
    source_uri: str
    snippet: str


@dataclass(frozen=True, slots=True)
class Answer:
    """A finished answer. ``found`` is False when the knowledge base had nothing relevant enough."""

    text: str
    citations: tuple[Citation, ...]
    passages: tuple[Passage, ...]
    found: bool
    model: str
    message_id: int | None = None
    search_query: str = ""
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AnswerDelta:
    """A piece of an answer being streamed; the stream ends with the complete :class:`Answer`."""

    text: str


@dataclass(frozen=True, slots=True)
class IngestResult:
    """Outcome of adding a document: ``status`` tells a new, replaced or unchanged (skipped) document apart."""

    document: Document
    status: Literal["added", "replaced", "unchanged"]

    @property
    def chunk_count(self) -> int:
        return self.document.chunk_count


@dataclass(frozen=True, slots=True)
class Turn:
    """One question/answer exchange from a conversation's history, oldest first."""

    question: str
    answer: str


Score = Literal[1, -1]


def answer_payload(answer: Answer) -> dict[str, Any]:
    """An answer as plain JSON-ready data (CLI ``--json``, the local HTTP API): text, sources, chunks, timings."""
    return {
        "answer": answer.text,
        "found": answer.found,
        "model": answer.model,
        "message_id": answer.message_id,
        "search_query": answer.search_query,
        "citations": [asdict(citation) for citation in answer.citations],
        "retrieved": [asdict(passage) for passage in answer.passages],
        "timings_ms": answer.timings,
    }
