"""``web``: a same-site crawl from a start URL, breadth first, bounded by depth and ``max_pages``.

robots.txt is obeyed (its ``Crawl-delay`` too): a 4xx robots.txt means no rules (RFC 9309), an unreachable one
means the site is down, so the sync fails and nothing is removed. Every page goes through the SSRF guard and the
size limit, paced per host; a redirect is followed only through the guard, and a page that redirected off the site
is not crawled further. A page that fails hides its links, so a crawl with failures removes nothing.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from collections.abc import AsyncIterator
from urllib.robotparser import RobotFileParser

import httpx
from langchain_core.documents import Document

from bot.errors import IngestError
from bot.ingest.fetch import USER_AGENT, Fetched, redact_credentials
from bot.ingest.loaders import decode_text
from bot.sources.links import page_url, same_site_links
from bot.sources.loader import SourceLoader, failed
from bot.sources.model import SourceError
from bot.sources.pacing import PacedFetcher

log = logging.getLogger(__name__)

_CLIENT_ERROR = re.compile(r"answered HTTP 4\d\d\b")
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})


class WebLoader(SourceLoader):
    async def alazy_load(self) -> AsyncIterator[Document]:
        options = self.source.options
        fetcher = PacedFetcher(self.settings, options.per_host_per_s)
        start = site_start(self.source.target)
        origin = (start.scheme, start.host, start.port)
        robots = await _robots(fetcher, start)
        delay = robots.crawl_delay(USER_AGENT)
        if delay:
            fetcher.slow_down(float(delay))
        queue: deque[tuple[str, int]] = deque([(str(start), 0)])
        queued = {str(start)}
        pages = 0
        while queue:
            url, depth = queue.popleft()
            if not robots.can_fetch(USER_AGENT, url):
                continue
            if pages == options.max_pages:
                self.complete = False
                self.notes.append(f"stopped at max-pages ({options.max_pages}); {len(queue) + 1} page(s) not read")
                break
            pages += 1
            try:
                page = await fetcher.get(url)
            except IngestError as e:
                self.complete = False
                yield failed(url, str(e))
                continue
            if depth < options.depth and _is_html(page) and page_url(page.final_url).host == start.host:
                for link in same_site_links(decode_text(page.data), page.final_url, origin):
                    if link not in queued:
                        queued.add(link)
                        queue.append((link, depth + 1))
            try:
                yield await self.read_page(url, page)
            except IngestError as e:
                yield failed(url, str(e))


def site_start(target: str) -> httpx.URL:
    """The start URL of a crawl; raises :class:`SourceError` when it is not a plain http(s) URL."""
    try:
        url = page_url(target.strip())
    except (httpx.InvalidURL, ValueError) as e:
        raise SourceError(f"{redact_credentials(target)!r} is not a URL: {e}") from e
    if url.scheme not in ("http", "https") or not url.host or url.userinfo:
        raise SourceError(f"{redact_credentials(target)!r} must be an http(s) URL without credentials")
    return url


async def _robots(fetcher: PacedFetcher, start: httpx.URL) -> RobotFileParser:
    robots = RobotFileParser()
    url = str(start.copy_with(path="/robots.txt", query=None))
    try:
        page = await fetcher.get(url)
    except IngestError as e:
        if not _CLIENT_ERROR.search(str(e)):
            raise SourceError(f"the site is unreachable: {e}") from e
        robots.parse([])
        return robots
    try:
        robots.parse(decode_text(page.data).splitlines())
    except IngestError:
        robots.parse([])
    return robots


def _is_html(page: Fetched) -> bool:
    return page.content_type in HTML_TYPES or page.data[:512].lstrip().lower().startswith((b"<!doctype html", b"<html"))
