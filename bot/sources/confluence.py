"""``confluence``: the current pages of one space, through the REST API (``/rest/api/content``).

Pages are listed with their version numbers (a page whose version held is not fetched again); each changed page's
storage-format body is read as HTML by our loaders. The API token comes from the ``SOURCE_*`` environment variable
the source names (:mod:`bot.sources.credentials`); every request goes through the SSRF guard, with the token sent to
the wiki's own origin only.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from html import escape
from typing import Any

import httpx
from langchain_core.documents import Document

from bot.errors import IngestError
from bot.ingest.fetch import Fetched
from bot.sources.credentials import auth_headers
from bot.sources.loader import SourceLoader, failed, unchanged
from bot.sources.model import SourceError
from bot.sources.pacing import PacedFetcher
from bot.sources.web import site_start

PAGE_SIZE = 50


class ConfluenceLoader(SourceLoader):
    async def alazy_load(self) -> AsyncIterator[Document]:
        options = self.source.options
        if not options.space:
            raise SourceError("a confluence source needs a space key (--space)")
        base = str(site_start(self.source.target)).rstrip("/")
        fetcher = PacedFetcher(self.settings, options.per_host_per_s, auth_headers(options.token_env))
        for page in await self._listing(fetcher, base):
            uri = base + page["_links"]["webui"]
            version = str(page["version"]["number"])
            if self.is_unchanged(uri, version):
                yield unchanged(uri, version)
                continue
            try:
                body = await _json(fetcher, f"{base}/rest/api/content/{page['id']}?expand=body.storage")
                html = f"<html><head><title>{escape(page['title'])}</title></head><body><h1>{escape(page['title'])}"
                html += f"</h1>{body['body']['storage']['value']}</body></html>"
            except (IngestError, KeyError, TypeError) as e:
                yield failed(uri, f"cannot read page {page['id']}: {e}")
                continue
            try:
                yield await self.read_page(uri, Fetched(html.encode(), "text/html", uri), version)
            except IngestError as e:
                yield failed(uri, str(e))

    async def _listing(self, fetcher: PacedFetcher, base: str) -> list[dict[str, Any]]:
        """The space's current pages (id, title, version, web link), at most ``max_pages``; raises
        :class:`SourceError` when the API cannot be read, so nothing is removed."""
        limit = self.source.options.max_pages
        pages: list[dict[str, Any]] = []
        start = 0
        while True:
            query = httpx.QueryParams(
                spaceKey=self.source.options.space,
                type="page",
                status="current",
                expand="version",
                limit=PAGE_SIZE,
                start=start,
            )
            try:
                batch = await _json(fetcher, f"{base}/rest/api/content?{query}")
                results = batch["results"]
                pages += [r for r in results if r["id"] and r["_links"]["webui"] and r["version"]["number"]]
            except (IngestError, KeyError, TypeError) as e:
                raise SourceError(f"cannot list the pages of space {self.source.options.space}: {e}") from e
            if len(pages) > limit:
                self.complete = False
                self.notes.append(f"the space has more than {limit} pages; only the first {limit} (max-pages) synced")
                return pages[:limit]
            if len(results) < PAGE_SIZE or not batch.get("_links", {}).get("next"):
                return pages
            start += len(results)


async def _json(fetcher: PacedFetcher, url: str) -> Any:
    page = await fetcher.get(url)
    try:
        return json.loads(page.data)
    except ValueError as e:
        raise IngestError(f"{url} did not answer JSON: {e}") from e
