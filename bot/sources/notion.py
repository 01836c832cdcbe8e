"""``notion``: a page tree (a root page and its sub-pages) or a database's pages through the Notion API.

A database is named by its view URL (``…/<database-id>?v=<view-id>``) or as ``database:<id>``; its pages are
listed with ``POST /v1/databases/{id}/query`` (cursor paging) and each is then read like a tree's root.

Each page is read as its blocks (``GET /v1/blocks/{id}/children``, nested blocks followed) turned into Markdown;
sub-pages (``child_page`` blocks) become documents of their own, breadth first, at most ``max_pages``. A page whose
``last_edited_time`` held is not parsed or embedded again (its blocks are still listed to find its sub-pages).
Headings link to their block (``page-url#blockid``), which is how Notion links a heading. The integration token
comes from the ``SOURCE_*`` variable the source names; every request goes through the SSRF guard.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from langchain_core.documents import Document

from bot.errors import IngestError
from bot.ingest.loaders import LoadedDocument, clean_title
from bot.sources.anchors import heading_key
from bot.sources.credentials import auth_headers
from bot.sources.loader import SourceLoader, failed, fetched, unchanged
from bot.sources.model import SourceError
from bot.sources.pacing import PacedFetcher

NOTION_API = "https://api.notion.com"
NOTION_VERSION = "2022-06-28"
MAX_BLOCK_DEPTH = 3
MAX_BLOCKS_PER_PAGE = 5000
_PAGE_ID = re.compile(r"([0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12})(?:[?#].*)?$", re.I)
_MARKS = {
    "heading_1": "# ",
    "heading_2": "## ",
    "heading_3": "### ",
    "bulleted_list_item": "- ",
    "numbered_list_item": "1. ",
    "to_do": "- [ ] ",
    "quote": "> ",
    "callout": "> ",
    "toggle": "- ",
}
_TEXT_BLOCKS = {"paragraph", "code", *_MARKS}


def notion_target(target: str) -> tuple[str, bool]:
    """``(id, is_database)`` for a page URL or id, a database view URL (``…?v=…``) or ``database:<id>``."""
    text = target.strip()
    if text.lower().startswith("database:"):
        return page_id(text.split(":", 1)[1]), True
    return page_id(text), "?v=" in text


def page_id(target: str) -> str:
    """The page id at the end of a Notion page URL or given bare; raises :class:`SourceError` otherwise."""
    match = _PAGE_ID.search(target.strip())
    if not match:
        raise SourceError(f"{target!r} is not a Notion page URL or id")
    return match.group(1).replace("-", "").lower()


class NotionLoader(SourceLoader):
    async def alazy_load(self) -> AsyncIterator[Document]:
        options = self.source.options
        self.api = (options.api_url or NOTION_API).rstrip("/")
        headers = {**auth_headers(options.token_env), "Notion-Version": NOTION_VERSION}
        fetcher = PacedFetcher(self.settings, options.per_host_per_s, headers)
        root, is_database = notion_target(self.source.target)
        roots = await self._database_pages(fetcher, root) if is_database else [root]
        todo, queued = deque(roots), set(roots)
        while todo:
            current = todo.popleft()
            if len(queued) - len(todo) > options.max_pages:
                self.complete = False
                self.notes.append(f"stopped at max-pages ({options.max_pages}); {len(todo) + 1} page(s) not read")
                return
            try:
                page = await self._json(fetcher, f"/v1/pages/{current}")
                blocks = await self._blocks(fetcher, current, page["url"])
            except (IngestError, KeyError, TypeError) as e:
                if current == root and not is_database:
                    raise SourceError(f"cannot read the root page: {e}") from e
                self.complete = False
                yield failed(current, str(e))
                continue
            for child in blocks.children:
                if child not in queued:
                    queued.add(child)
                    todo.append(child)
            uri, version = page["url"], page.get("last_edited_time", "")
            if self.is_unchanged(uri, version):
                yield unchanged(uri, version)
                continue
            title = clean_title(_title(page))
            text = "\n\n".join([f"# {title}", *blocks.lines]).strip()
            yield fetched(uri, version, LoadedDocument(title, text, "text/markdown"), anchors=blocks.anchors)

    async def _database_pages(self, fetcher: PacedFetcher, database: str) -> list[str]:
        """The ids of every page in ``database``; a failed listing fails the sync (nothing is removed)."""
        pages: list[str] = []
        body: dict[str, Any] = {"page_size": 100}
        try:
            while True:
                batch = json.loads((await fetcher.post(f"{self.api}/v1/databases/{database}/query", body)).data)
                pages += [row["id"].replace("-", "") for row in batch["results"] if row.get("object") == "page"]
                if not batch.get("has_more") or not batch.get("next_cursor"):
                    return pages
                body = {"page_size": 100, "start_cursor": batch["next_cursor"]}
        except (IngestError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise SourceError(f"cannot list the database's pages: {e}") from e

    async def _blocks(self, fetcher: PacedFetcher, block: str, url: str) -> _Page:
        """The page's blocks as Markdown lines (nested blocks indented, in order), its heading anchors and sub-pages."""
        page = _Page()
        await self._render(fetcher, block, 0, page, url)
        return page

    async def _render(self, fetcher: PacedFetcher, block: str, depth: int, page: _Page, url: str) -> None:
        for item in await self._children(fetcher, block):
            kind = item["type"]
            if kind == "child_page":
                page.children.append(item["id"].replace("-", ""))
                continue
            text = "".join(part.get("plain_text", "") for part in item.get(kind, {}).get("rich_text", []))
            if kind in _TEXT_BLOCKS and text.strip():
                page.lines.append(f"```\n{text}\n```" if kind == "code" else "  " * depth + _MARKS.get(kind, "") + text)
                if kind.startswith("heading_"):
                    page.anchors.setdefault(heading_key(text), item["id"].replace("-", ""))
            if len(page.lines) > MAX_BLOCKS_PER_PAGE:
                raise IngestError(f"{url} has more than {MAX_BLOCKS_PER_PAGE} blocks")
            if item.get("has_children") and depth < MAX_BLOCK_DEPTH:
                await self._render(fetcher, item["id"], depth + 1, page, url)

    async def _children(self, fetcher: PacedFetcher, block: str) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        cursor = ""
        while True:
            query = httpx.QueryParams(page_size=100, **({"start_cursor": cursor} if cursor else {}))
            batch = await self._json(fetcher, f"/v1/blocks/{block}/children?{query}")
            results += batch["results"]
            cursor = batch.get("next_cursor") or ""
            if not batch.get("has_more") or not cursor:
                return results

    async def _json(self, fetcher: PacedFetcher, path: str) -> Any:
        page = await fetcher.get(self.api + path)
        try:
            return json.loads(page.data)
        except ValueError as e:
            raise IngestError(f"{path} did not answer JSON: {e}") from e


@dataclass
class _Page:
    lines: list[str] = field(default_factory=list)
    anchors: dict[str, str] = field(default_factory=dict)
    """Heading key → block id: Notion links a heading as ``page-url#blockid``."""
    children: list[str] = field(default_factory=list)


def _title(page: dict[str, Any]) -> str:
    for prop in page.get("properties", {}).values():
        if prop.get("type") == "title":
            return "".join(part.get("plain_text", "") for part in prop.get("title", []))
    return "untitled"
