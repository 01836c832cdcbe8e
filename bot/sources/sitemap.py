"""``sitemap``: the pages a sitemap.xml lists (nested sitemap indexes followed), skipped while ``lastmod`` holds.

Only pages and nested sitemaps on the sitemap's own site are taken (a sitemap listing private addresses or other
hosts gets those entries refused without a request); at most ``max_pages`` pages and ``MAX_SITEMAPS`` sitemap
files are read per sync, and a listing cut short removes nothing.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ElementTree
from collections import deque
from collections.abc import AsyncIterator

import httpx
from langchain_core.documents import Document

from bot.errors import IngestError
from bot.ingest.fetch import Fetched
from bot.sources.links import page_url
from bot.sources.loader import SourceLoader, failed, unchanged
from bot.sources.model import SourceError
from bot.sources.pacing import PacedFetcher
from bot.sources.web import site_start

log = logging.getLogger(__name__)

MAX_SITEMAPS = 50


class SitemapLoader(SourceLoader):
    async def alazy_load(self) -> AsyncIterator[Document]:
        fetcher = PacedFetcher(self.settings, self.source.options.per_host_per_s)
        root = site_start(self.source.target)
        pages, refused = await self._listing(fetcher, root)
        for url in refused:
            yield failed(url, "not on the sitemap's site; refused without a request")
        for url, lastmod in pages:
            if self.is_unchanged(url, lastmod):
                yield unchanged(url, lastmod)
                continue
            try:
                yield await self.read_page(url, await fetcher.get(url), lastmod)
            except IngestError as e:
                yield failed(url, str(e))

    async def _listing(self, fetcher: PacedFetcher, root: httpx.URL) -> tuple[list[tuple[str, str]], list[str]]:
        """(page URL, lastmod) pairs up to ``max_pages`` and the refused off-site URLs; raises
        :class:`SourceError` when the root sitemap cannot be read."""
        origin = (root.scheme, root.host, root.port)
        limit = self.source.options.max_pages
        pages: dict[str, str] = {}
        refused: list[str] = []
        listed = 0
        todo, seen = deque([str(root)]), {str(root)}
        while todo:
            sitemap = todo.popleft()
            try:
                entries, nested = _parse(await fetcher.get(sitemap), sitemap)
            except IngestError as e:
                if sitemap == str(root):
                    raise SourceError(f"cannot read the sitemap: {e}") from e
                self.complete = False
                self.notes.append(f"nested sitemap {sitemap} failed: {e}")
                continue
            for url in nested:
                if _on(url, origin) and url not in seen and len(seen) < MAX_SITEMAPS:
                    seen.add(url)
                    todo.append(url)
                elif not _on(url, origin):
                    refused.append(url)
                elif url not in seen:
                    self.complete = False
                    self.notes.append(f"more than {MAX_SITEMAPS} sitemaps; {url} not read")
            for url, lastmod in entries:
                if not _on(url, origin):
                    refused.append(url)
                    continue
                listed += 1
                if len(pages) < limit:
                    pages.setdefault(str(page_url(url)), lastmod)
        if listed > limit:
            self.complete = False
            self.notes.append(f"the sitemap lists {listed} pages; only the first {limit} (max-pages) are synced")
        return list(pages.items()), refused[:limit]


def _on(url: str, origin: tuple[str, str, int | None]) -> bool:
    try:
        parsed = page_url(url)
    except (httpx.InvalidURL, ValueError):
        return False
    return (parsed.scheme, parsed.host, parsed.port) == origin and not parsed.userinfo


def _parse(page: Fetched, where: str) -> tuple[list[tuple[str, str]], list[str]]:
    """(page URL, lastmod) entries of a ``urlset`` and the nested sitemap URLs of a ``sitemapindex``."""
    try:
        root = ElementTree.fromstring(page.data)
    except ElementTree.ParseError as e:
        raise IngestError(f"{where} is not a valid sitemap: {e}") from e
    kind = _local(root.tag)
    if kind not in ("urlset", "sitemapindex"):
        raise IngestError(f"{where} is not a sitemap (root element <{kind}>)")
    entries: list[tuple[str, str]] = []
    nested: list[str] = []
    for element in root:
        fields = {_local(child.tag): (child.text or "").strip() for child in element}
        if not fields.get("loc"):
            continue
        if _local(element.tag) == "sitemap":
            nested.append(fields["loc"])
        elif _local(element.tag) == "url":
            entries.append((fields["loc"], fields.get("lastmod", "")[:40]))
    return entries, nested


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]
