"""Polite fetching for crawls: at most N requests per second to one host, every request through the SSRF guard."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

import httpx

from bot.ingest.fetch import Fetched, fetch_url
from bot.settings import Settings


class PacedFetcher:
    """:func:`~bot.ingest.fetch.fetch_url` with a per-host minimum interval (``1 / per_host_per_s``).

    The interval can only grow (``slow_down``), e.g. to a robots.txt ``Crawl-delay``. ``headers`` (an API's
    ``Authorization``) go with every request, to the first URL's origin only (see :func:`fetch_url`).
    """

    def __init__(self, settings: Settings, per_host_per_s: float, headers: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.headers = headers or {}
        self.interval = 1.0 / per_host_per_s
        self._next_at: dict[str, float] = {}

    def slow_down(self, interval_s: float) -> None:
        self.interval = max(self.interval, interval_s)

    async def get(self, url: str) -> Fetched:
        await self._wait_turn(httpx.URL(url).netloc.decode("ascii", "replace"))
        return await fetch_url(url, self.settings, headers=self.headers)

    async def post(self, url: str, json_body: object) -> Fetched:
        """A JSON query (an API's POST search endpoint), paced and guarded like :meth:`get`."""
        await self._wait_turn(httpx.URL(url).netloc.decode("ascii", "replace"))
        return await fetch_url(url, self.settings, headers=self.headers, json_body=json_body)

    async def _wait_turn(self, host: str) -> None:
        now = time.monotonic()
        at = max(now, self._next_at.get(host, now))
        self._next_at[host] = at + self.interval
        if at > now:
            await asyncio.sleep(at - now)
