"""Lorebot's error hierarchy.

Every failure the core reports is a :class:`LorebotError`. Foreign exceptions (psycopg, httpx, openai, …) are
wrapped once at the module boundary with ``raise … from e`` so callers keep the original as ``__cause__``.
Adapters turn these into user-facing messages in one place, using :attr:`LorebotError.reason` as the short,
safe reason class shown to users; the message itself may hold details meant for logs and admins.
"""

from __future__ import annotations


class LorebotError(Exception):
    """Base class of every error raised by the Lorebot core."""

    reason = "internal error"


class ConfigError(LorebotError):
    """Settings are missing or inconsistent (e.g. the embedding dimension differs from the database's)."""

    reason = "configuration problem"


class StorageError(LorebotError):
    """The database is unreachable or a query failed."""

    reason = "knowledge base unavailable"


class IngestError(LorebotError):
    """A document could not be added: unsupported, empty, too large, malformed, or a refused URL."""

    reason = "document rejected"


class UnsafeURLError(IngestError):
    """A URL points somewhere Lorebot refuses to fetch (non-http scheme, loopback, private or metadata address)."""

    reason = "URL refused"


class InvalidInput(LorebotError):
    """Text or an identifier from a user or platform cannot be used: NUL, lone surrogates, control characters in
    an id, or too long (see :mod:`bot.validation`)."""

    reason = "invalid input"


class InvalidQuestion(InvalidInput):
    """A question or search text is empty, too long, not storable, or has no knowledge scope to search."""

    reason = "question not understood"


class RetrievalError(LorebotError):
    """Searching the knowledge base failed."""

    reason = "search failed"


class AnswerError(LorebotError):
    """The language model endpoint failed, timed out or returned something unusable."""

    reason = "language model unavailable"


class EmptyAnswer(AnswerError):
    """The language model ended its reply before writing anything (a small model can, on an odd prompt)."""

    reason = "the language model gave no answer"


class PermissionDenied(LorebotError):
    """The actor may not perform an admin operation."""

    reason = "not allowed"


class NotFound(LorebotError):
    """A document, message or other record does not exist (or is outside the caller's scopes)."""

    reason = "not found"


class RateLimited(LorebotError):
    """The actor asked too often; ``retry_after`` says how many seconds to wait."""

    reason = "too many requests"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Redelivered(LorebotError):
    """The platform delivered this event before (a retry, a second replica): it is answered once, elsewhere."""

    reason = "already received"


class ShuttingDown(LorebotError):
    """The process is draining for a restart; the request should be retried (another replica takes it)."""

    reason = "restarting"
