"""Turning an exception into what a user may see: a reason class and an error id, never the details.

Adapters call :func:`describe_failure` in their single error handler. The full exception is logged once here
with the same id, so an admin can find it from the id the user reports.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Literal

from bot.errors import (
    AnswerError,
    ConfigError,
    LorebotError,
    NotFound,
    PermissionDenied,
    RateLimited,
    RetrievalError,
    ShuttingDown,
    StorageError,
)

log = logging.getLogger(__name__)


Kind = Literal["rate_limited", "restarting", "refused", "not_found", "invalid", "outage", "bug"]
"""What kind of failure it is for the user: the one classification every adapter maps (e.g. to HTTP statuses)."""


@dataclass(frozen=True, slots=True)
class Failure:
    error_id: str
    reason: str
    user_message: str
    kind: Kind


def failure_kind(exc: BaseException) -> Kind:
    """Outages hide their message (it may hold hosts or SQL); input errors show it (it says what to fix)."""
    if isinstance(exc, RateLimited):
        return "rate_limited"
    if isinstance(exc, ShuttingDown):
        return "restarting"
    if isinstance(exc, PermissionDenied):
        return "refused"
    if isinstance(exc, NotFound):
        return "not_found"
    if isinstance(exc, AnswerError | ConfigError | RetrievalError | StorageError):
        return "outage"
    return "invalid" if isinstance(exc, LorebotError) else "bug"


def describe_failure(exc: BaseException) -> Failure:
    """Log ``exc`` under a fresh error id and return the short message to show the user."""
    error_id = secrets.token_hex(4)
    kind = failure_kind(exc)
    reason = exc.reason if isinstance(exc, LorebotError) else "internal error"
    if isinstance(exc, RateLimited):
        message = f"You're asking quickly: please try again in {max(1, round(exc.retry_after))} s."
    elif kind == "restarting":
        log.info("refused while restarting (error %s)", error_id)
        message = "I'm restarting: please ask again in a moment."
    elif kind == "refused":
        log.info("refused (error %s): %s", error_id, exc)
        message = f"Sorry, only knowledge-base admins can do that ({error_id})."
    elif kind in ("invalid", "not_found"):
        log.warning("request failed (error %s, %s): %s", error_id, reason, exc)
        message = f"Sorry, that didn't work: {reason} — {exc} (error {error_id})."
    else:
        log.error("request failed (error %s, %s)", error_id, reason, exc_info=exc)
        message = f"Sorry, I can't answer right now: {reason} (error {error_id})."
    return Failure(error_id, reason, message, kind)
