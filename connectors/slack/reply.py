"""One bot message in a thread: a placeholder, edits while the answer streams, then the final answer.

The client already retries rate-limited calls (:mod:`connectors.slack.client`); what still fails is handled by
how much it matters: a missing placeholder or progress edit is skipped, a final edit that fails is posted as a
new message instead, and only a failed final post raises (to the task's error path).
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

SLACK_FAILURES = (SlackClientError, aiohttp.ClientError, TimeoutError)
"""What a Web API call raises when Slack refuses it or cannot be reached."""


class ThreadReply:
    def __init__(self, client: AsyncWebClient, *, channel: str, thread_ts: str | None) -> None:
        self._client = client
        self._channel = channel
        self._thread_ts = thread_ts
        self.ts: str | None = None
        """The placeholder's timestamp, once posted."""

    async def start(self, text: str) -> None:
        """Post the placeholder; without one the final answer is posted as a new message."""
        try:
            posted = await self._client.chat_postMessage(channel=self._channel, thread_ts=self._thread_ts, text=text)
        except SLACK_FAILURES as e:
            log.warning("no placeholder in %s (%s); the answer is posted when done", self._channel, _reason(e))
            return
        self.ts = posted["ts"]

    async def progress(self, text: str) -> None:
        """Show the answer so far, if Slack lets us: the next edit or the final answer shows more anyway."""
        if self.ts is None:
            return
        try:
            await self._client.chat_update(channel=self._channel, ts=self.ts, text=text)
        except SLACK_FAILURES as e:
            log.info("skipped a progress edit in %s (%s)", self._channel, _reason(e))

    async def finish(self, text: str, blocks: list[dict[str, Any]] | None = None) -> None:
        """Turn the placeholder into the final message, or post it anew (and drop the placeholder)."""
        if self.ts is not None:
            try:
                await self._client.chat_update(channel=self._channel, ts=self.ts, text=text, blocks=blocks)
                return
            except SLACK_FAILURES as e:
                log.warning("cannot edit the answer into %s (%s); posting it anew", self._channel, _reason(e))
        await self._client.chat_postMessage(channel=self._channel, thread_ts=self._thread_ts, text=text, blocks=blocks)
        await self._drop_placeholder()

    async def _drop_placeholder(self) -> None:
        if self.ts is None:
            return
        try:
            await self._client.chat_delete(channel=self._channel, ts=self.ts)
        except SLACK_FAILURES as e:
            log.info("placeholder %s in %s stays (%s)", self.ts, self._channel, _reason(e))


def _reason(error: Exception) -> str:
    if isinstance(error, SlackApiError):
        return f"HTTP {error.response.status_code} {error.response.get('error')}"
    return type(error).__name__
