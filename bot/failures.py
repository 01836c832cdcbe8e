"""Turning an exception into what a user may see: a reason class and an error id, never the details.

Adapters call :func:`describe_failure` in their single error handler. The full exception is logged once here
with the same id, so an admin can find it from the id the user reports.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from bot.errors import (
    AnswerError,
    ConfigError,
    LorebotError,
    PermissionDenied,
    RateLimited,
    RetrievalError,
    ShuttingDown,
    StorageError,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Failure:
    error_id: str
    reason: str
    user_message: str


def describe_failure(exc: BaseException) -> Failure:
    """Log ``exc`` under a fresh error id and return the short message to show the user."""
    error_id = secrets.token_hex(4)
    if isinstance(exc, RateLimited):
        message = f"You're asking quickly: please try again in {max(1, round(exc.retry_after))} s."
        return Failure(error_id, exc.reason, message)
    if isinstance(exc, ShuttingDown):
        log.info("refused while restarting (error %s)", error_id)
        return Failure(error_id, exc.reason, "I'm restarting: please ask again in a moment.")
    if isinstance(exc, PermissionDenied):
        log.info("refused (error %s): %s", error_id, exc)
        return Failure(error_id, exc.reason, f"Sorry, only knowledge-base admins can do that ({error_id}).")
    reason = exc.reason if isinstance(exc, LorebotError) else "internal error"
    if isinstance(exc, LorebotError) and not _is_outage(exc):
        log.warning("request failed (error %s, %s): %s", error_id, reason, exc)
        message = f"Sorry, that didn't work: {reason} — {exc} (error {error_id})."
    else:
        log.error("request failed (error %s, %s)", error_id, reason, exc_info=exc)
        message = f"Sorry, I can't answer right now: {reason} (error {error_id})."
    return Failure(error_id, reason, message)


def _is_outage(exc: LorebotError) -> bool:
    """Outages hide their message (it may hold hosts or SQL); input errors show it (it says what to fix)."""
    return isinstance(exc, AnswerError | ConfigError | RetrievalError | StorageError)
