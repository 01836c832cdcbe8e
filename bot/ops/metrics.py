"""Prometheus metrics for one Lorebot process, kept in their own registry.

The entry point creates one :class:`Metrics` and shares it between the service, which it observes (a
:class:`~bot.observer.ServiceObserver`), and the health server, which exposes ``/metrics``. Nothing is registered
at import time, so tests can build as many as they like.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, generate_latest

from bot.domain import Answer, IngestResult, Score
from bot.errors import AnswerError, IngestError
from bot.observer import ServiceObserver

NAMESPACE = "lorebot"
ANSWER_BUCKETS = (0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60, 120)
"""Whole answers: from sub-second (not found) to the LLM timeout."""
RETRIEVAL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
"""Hybrid search is milliseconds on a healthy database; the tail shows a cold cache or a missing index."""


class Metrics(ServiceObserver):
    """The process's metrics, counted from the service's hooks; ``render()`` gives the Prometheus text format."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(namespace=NAMESPACE, registry=self.registry)
        common: dict[str, Any] = {"namespace": NAMESPACE, "registry": self.registry}
        self.questions = Counter("questions", "Questions answered", ["platform", "found"], **common)
        self.answer_latency = Histogram(
            "answer_latency_seconds", "Question to complete answer", buckets=ANSWER_BUCKETS, **common
        )
        self.retrieval_latency = Histogram(
            "retrieval_latency_seconds", "Hybrid retrieval per search", buckets=RETRIEVAL_BUCKETS, **common
        )
        self.llm_errors = Counter("llm_errors", "Failed language model calls", ["reason"], **common)
        self.ingested_documents = Counter("ingested_documents", "Documents offered for ingestion", ["status"], **common)
        self.ingested_chunks = Counter("ingested_chunks", "Chunks written by ingestion", **common)
        self.feedback = Counter("feedback", "Ratings of answers", ["score"], **common)

    def answered(self, platform: str, answer: Answer, seconds: float) -> None:
        self.questions.labels(platform=platform, found=str(answer.found).lower()).inc()
        self.answer_latency.observe(seconds)
        if "retrieval_ms" in answer.timings:
            self.retrieval_latency.observe(answer.timings["retrieval_ms"] / 1000)

    def llm_failed(self, error: AnswerError) -> None:
        self.llm_errors.labels(reason=llm_error_reason(error)).inc()

    def searched(self, seconds: float) -> None:
        self.retrieval_latency.observe(seconds)

    def ingested(self, result: IngestResult) -> None:
        self.ingested_documents.labels(status=result.status).inc()
        if result.status != "unchanged":
            self.ingested_chunks.inc(result.chunk_count)

    def ingest_rejected(self, error: IngestError) -> None:
        self.ingested_documents.labels(status="rejected").inc()

    def rated(self, score: Score) -> None:
        self.feedback.labels(score="up" if score == 1 else "down").inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


def llm_error_reason(error: AnswerError) -> str:
    """A small, fixed set of label values (timeout, connection, http_5xx, …) from the wrapped cause."""
    cause = error.__cause__
    status = getattr(cause, "status_code", None)
    if isinstance(status, int):
        return f"http_{status // 100}xx"
    name = type(cause).__name__.lower() if cause is not None else ""
    if "timeout" in name:
        return "timeout"
    if "connect" in name or "transport" in name:
        return "connection"
    return "other"
