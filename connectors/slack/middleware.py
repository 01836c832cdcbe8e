"""Global middleware: drop what the bot must not answer (the core answers each event id once, see
:meth:`bot.service.Lorebot.accept`).

A dropped request still gets a 200 :class:`BoltResponse`: without it bolt answers 404 and Slack re-delivers.
Own messages are already dropped by bolt's built-in self-event filter, which runs before these.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.response import BoltResponse

from connectors.slack.settings import SlackSettings

log = logging.getLogger(__name__)

ANSWERED_SUBTYPES = frozenset({None, "file_share", "thread_broadcast"})
"""Message subtypes that are a person saying something; edits, deletions, joins and bot posts are not."""

Next = Callable[[], Awaitable[BoltResponse | None]]
Middleware = Callable[..., Awaitable[BoltResponse | None]]


def _handled() -> BoltResponse:
    return BoltResponse(status=200, body="")


def skip_noise(settings: SlackSettings) -> Middleware:
    """Drop message edits/deletions/system messages and (per setting) other bots' messages."""

    async def skip_noise(body: dict[str, Any], next: Next) -> BoltResponse | None:
        event = body.get("event") or {}
        if event.get("type") == "message" and event.get("subtype") not in ANSWERED_SUBTYPES:
            log.debug("ignoring message subtype %s", event.get("subtype"))
            return _handled()
        if settings.ignore_other_bots and (event.get("bot_id") or event.get("bot_profile")):
            log.debug("ignoring bot %s", event.get("bot_id"))
            return _handled()
        return await next()

    return skip_noise
