"""The single error path of the slow work a listener starts after its ack: every failure reaches the user.

A listener acks within Slack's 3 s and hands the rest to :meth:`Tasks.spawn` together with a way to reach the
user (:data:`Tell`). The work is registered with the process's :class:`~bot.inflight.InFlight`, so a restart lets
it finish; once draining started, :meth:`Tasks.spawn` raises :class:`~bot.errors.ShuttingDown` to the listener and
bolt's error handler tells the user. A failure of the work itself is logged once with an error id
(:func:`bot.failures.describe_failure`) and the user is told that id, so no task ends as an unretrieved exception.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import ShuttingDown
from bot.failures import describe_failure
from bot.inflight import InFlight

log = logging.getLogger(__name__)

Tell = Callable[[str], Awaitable[object]]
"""Shows a short text to the user the work is for."""


class Tasks:
    """The work started after an ack, tracked by the shared in-flight registry."""

    def __init__(self, inflight: InFlight) -> None:
        self._inflight = inflight

    def spawn(self, work: Coroutine[Any, Any, None], *, name: str, tell: Tell) -> asyncio.Task[None]:
        """Run ``work`` in the background; if it fails, log the error and ``tell`` the user its id. Raises
        :class:`ShuttingDown` (to bolt's error handler), without starting ``work``, once draining started."""
        try:
            return self._inflight.run(_run(work, name, tell), name=name)
        except ShuttingDown:
            work.close()
            raise


async def _run(work: Coroutine[Any, Any, None], name: str, tell: Tell) -> None:
    try:
        await work
    except Exception as e:  # describe_failure logs the details under the id the user is told
        failure = describe_failure(e)
        try:
            await tell(failure.user_message)
        except Exception:  # Slack itself is failing; the error id is already logged
            log.exception("could not tell the user about error %s in %s", failure.error_id, name)


def post_in(client: AsyncWebClient, channel: str, thread_ts: str | None = None) -> Tell:
    """Tell by posting in a channel or thread (or a DM, with a user id as ``channel``)."""

    async def tell(text: str) -> None:
        await client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=text)

    return tell


def respond_privately(respond: AsyncRespond, *, replace_original: bool) -> Tell:
    """Tell through the ``response_url`` of a command or button, visible only to the user who used it."""

    async def tell(text: str) -> None:
        await respond(text=text, response_type="ephemeral", replace_original=replace_original)

    return tell
