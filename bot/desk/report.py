"""What the knowledge base cannot answer: the figures of a time window, the unanswered and 👎 questions grouped by
topic (embedding clusters), and the documents cited most and never. Question text only for admins, with e-mail
addresses and phone numbers redacted when ``DESK_REDACT_PERSONAL_DATA`` is on."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg_pool import AsyncConnectionPool

from bot.desk.clusters import cluster
from bot.desk.redact import redact
from bot.embeddings import Embedder
from bot.errors import InvalidInput
from bot.storage import desk as store

PROBLEM_LIMIT = 300
"""The most recent unanswered / 👎 questions that are clustered: embedding them dominates the report's time
(300 short questions: about 3 s on a quiet 2-core machine, several times that under load)."""
DOCUMENT_LIMIT = 10
TOPIC_LIMIT = 10
EXAMPLES_PER_TOPIC = 3
SINCE = re.compile(r"^(\d{1,4})([hdw])$")
UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def parse_since(value: str) -> timedelta:
    """``24h``, ``7d``, ``4w`` → a time span; raises :class:`InvalidInput` for anything else."""
    match = SINCE.match(value.strip().lower())
    if not match or int(match[1]) == 0:
        raise InvalidInput(f"cannot read the time span {value!r}; write e.g. 24h, 7d or 4w")
    return timedelta(**{UNITS[match[2]]: int(match[1])})


@dataclass(frozen=True, slots=True)
class Topic:
    """Similar unanswered or 👎 questions; ``examples`` is empty for a non-admin."""

    questions: int
    not_found: int
    thumbs_down: int
    examples: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CitedDocument:
    id: int
    title: str
    scope: str
    citations: int = 0


@dataclass(frozen=True, slots=True)
class Report:
    since: datetime
    scope: str | None
    asked: int
    answered: int
    not_found: int
    thumbs_up: int
    thumbs_down: int
    escalations: int
    median_latency_ms: float
    topics: tuple[Topic, ...]
    cited_most: tuple[CitedDocument, ...]
    never_cited: tuple[CitedDocument, ...]
    never_cited_total: int
    shows_questions: bool
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def helpful_rate(self) -> float | None:
        """👍 / (👍 + 👎), None without votes."""
        votes = self.thumbs_up + self.thumbs_down
        return self.thumbs_up / votes if votes else None


async def build_report(
    pool: AsyncConnectionPool,
    embedder: Embedder,
    *,
    since: timedelta,
    scope: str | None,
    show_questions: bool,
    redact_personal_data: bool,
    now: datetime | None = None,
) -> Report:
    started = asyncio.get_running_loop().time()
    start = (now or datetime.now(UTC)) - since
    rows = await store.report_rows(
        pool, since=start, scope=scope, problem_limit=PROBLEM_LIMIT, document_limit=DOCUMENT_LIMIT
    )
    read = asyncio.get_running_loop().time()
    topics = await _topics(embedder, rows.problems, show_questions, redact_personal_data)
    figures = rows.figures
    return Report(
        since=start,
        scope=scope,
        asked=figures["asked"],
        answered=figures["answered"],
        not_found=figures["not_found"],
        thumbs_up=figures["thumbs_up"],
        thumbs_down=figures["thumbs_down"],
        escalations=figures["escalations"],
        median_latency_ms=figures["median_latency_ms"],
        topics=topics,
        cited_most=tuple(CitedDocument(**row) for row in rows.cited),
        never_cited=tuple(CitedDocument(row["id"], row["title"], row["scope"]) for row in rows.never_cited),
        never_cited_total=rows.never_cited[0]["total"] if rows.never_cited else 0,
        shows_questions=show_questions,
        timings_ms={
            "database": round((read - started) * 1000, 1),
            "clustering": round((asyncio.get_running_loop().time() - read) * 1000, 1),
        },
    )


async def _topics(
    embedder: Embedder, problems: list[dict[str, Any]], show_questions: bool, redact_personal_data: bool
) -> tuple[Topic, ...]:
    if not problems:
        return ()
    texts = [row["question"] for row in problems]
    unique = list(dict.fromkeys(_normalized(text) for text in texts))  # a repeated question is embedded once
    unique_vectors = await asyncio.to_thread(embedder.embed_documents, unique)
    row_of = {text: index for index, text in enumerate(unique)}
    vectors = unique_vectors[[row_of[_normalized(text)] for text in texts]]
    topics = []
    for group in cluster(vectors)[:TOPIC_LIMIT]:
        examples = ()
        if show_questions:
            shown = [redact(texts[i]) if redact_personal_data else texts[i] for i in group[:EXAMPLES_PER_TOPIC]]
            examples = tuple(shown)
        topics.append(
            Topic(
                questions=len(group),
                not_found=sum(1 for i in group if problems[i]["not_found"]),
                thumbs_down=sum(1 for i in group if problems[i]["thumbs_down"]),
                examples=examples,
            )
        )
    return tuple(topics)


def _normalized(text: str) -> str:
    return " ".join(text.lower().split())


def report_payload(report: Report) -> dict[str, Any]:
    """The report as JSON-ready data (``lorebot report --json``)."""
    payload = asdict(report)
    payload["since"] = report.since.isoformat()
    payload["helpful_rate"] = report.helpful_rate
    return payload


FIGURES = (
    "asked",
    "answered",
    "not_found",
    "thumbs_up",
    "thumbs_down",
    "escalations",
    "median_latency_ms",
)


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""A cell starting with one of these is run as a formula by spreadsheets (CSV injection)."""


class _SafeWriter:
    """A csv writer that defuses formula-looking text cells (question text and titles are user input)."""

    def __init__(self, out: io.StringIO) -> None:
        self._writer = csv.writer(out)

    def writerow(self, row: list[Any]) -> None:
        self._writer.writerow([f"'{v}" if isinstance(v, str) and v.startswith(FORMULA_START) else v for v in row])


def report_csv(report: Report) -> str:
    """One ``section,name,value,detail`` row per figure, topic and document (``lorebot report --csv``)."""
    out = io.StringIO()
    writer = _SafeWriter(out)
    writer.writerow(["section", "name", "value", "detail"])
    for name in FIGURES:
        writer.writerow(["figure", name, getattr(report, name), ""])
    writer.writerow(["figure", "helpful_rate", "" if report.helpful_rate is None else f"{report.helpful_rate:.3f}", ""])
    for number, topic in enumerate(report.topics, start=1):
        writer.writerow(["topic", number, topic.questions, " | ".join(topic.examples)])
    for document in report.cited_most:
        writer.writerow(["cited_most", document.title, document.citations, f"#{document.id} {document.scope}"])
    for document in report.never_cited:
        writer.writerow(["never_cited", document.title, 0, f"#{document.id} {document.scope}"])
    return out.getvalue()
