"""What the service reports as it works, for whoever watches it (Prometheus metrics in a serving process).

:class:`~bot.service.Lorebot` calls these hooks at the one place each thing happens, so a watcher sees every
entry point (``add_many`` included) without re-implementing any of them. The defaults do nothing: the CLI's
one-shot commands pay nothing for metrics nobody scrapes.
"""

from __future__ import annotations

from bot.domain import Answer, IngestResult, Score
from bot.errors import AnswerError, IngestError


class ServiceObserver:
    """Override the hooks you need; each is called after the fact and must not raise."""

    def answered(self, platform: str, answer: Answer, seconds: float) -> None:
        """A question was answered (recorded) ``seconds`` after it was asked."""

    def llm_failed(self, error: AnswerError) -> None:
        """Answering failed at the language model."""

    def searched(self, seconds: float) -> None:
        """A search without the language model (``/kb search``, ``lorebot search``) took ``seconds``."""

    def ingested(self, result: IngestResult) -> None:
        """A document was added, replaced or found unchanged."""

    def ingest_rejected(self, error: IngestError) -> None:
        """A document was refused (unsupported, too large, a refused URL, …)."""

    def rated(self, score: Score) -> None:
        """A user rated an answer."""
