"""``notion`` sources against a fake Notion API on 127.0.0.1 (the real paths, headers, JSON shapes and cursor
paging of ``/v1/pages`` and ``/v1/blocks/{id}/children``), through the real fetcher and SSRF guard."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from bot.retrieval import Retriever
from bot.settings import Settings
from bot.sources.manager import SourceManager
from bot.sources.model import SourceError, SourceOptions
from tests.fixtures.embeddings import CountingEmbedder
from tests.fixtures.http import FakeJSONAPI
from tests.test_sources import ADMIN, counts, manager_for, titles

SECRET = "ntn_integration_secret"
TOKEN_ENV = "SOURCE_NOTION_TOKEN"
PAGE_SIZE = 2  # small, so every listing pages through next_cursor


def block(kind: str, text: str = "", children: list[dict] | None = None, **extra) -> dict:
    body = {"rich_text": [{"type": "text", "plain_text": text}]} if text else extra
    return {"object": "block", "id": str(uuid.uuid4()), "type": kind, kind: body, "children": children or []}


def child_page(page: str, title: str) -> dict:
    return {"object": "block", "id": page, "type": "child_page", "child_page": {"title": title}, "children": []}


class FakeNotion(FakeJSONAPI):
    """Pages by id (title, last_edited_time, top-level blocks) and databases listing pages; 401 without the
    integration secret."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[str, str, list[dict]]] = {}
        self.databases: dict[str, list[str]] = {}  # database id → its pages' ids
        self.requests: list[str] = []
        super().__init__()

    def respond(self, method: str, path: str, headers, body: object) -> tuple[int, object, dict[str, str]]:
        self.requests.append(path if method == "GET" else f"{method} {path}")
        authorized = headers.get("Authorization") == f"Bearer {SECRET}"
        versioned = headers.get("Notion-Version") == "2022-06-28"
        if not (authorized and versioned):
            status, payload = 401, {"code": "unauthorized"}
        else:
            status, payload = self.answer(path) if method == "GET" else self.query(path, body)
        return status, payload if status == 200 else {"object": "error", "status": status, **payload}, {}

    @staticmethod
    def url(page: str) -> str:
        return f"https://www.notion.so/Page-{page}"

    def answer(self, target: str) -> tuple[int, dict]:
        url = urlsplit(target)
        parts = url.path.strip("/").split("/")
        if parts[:2] == ["v1", "pages"] and parts[2] in self.pages:
            title, edited, _ = self.pages[parts[2]]
            properties = {"title": {"id": "title", "type": "title", "title": [{"plain_text": title}]}}
            page = {
                "object": "page",
                "id": parts[2],
                "url": self.url(parts[2]),
                "last_edited_time": edited,
                "properties": properties,
            }
            return 200, page
        if parts[:2] == ["v1", "blocks"] and parts[3:] == ["children"]:
            found = self._children(parts[2])
            if found is None:
                return 404, {"code": "object_not_found"}
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            start = int(query.get("start_cursor", "0"))
            shown = [
                {k: v for k, v in b.items() if k != "children"} | {"has_children": bool(b["children"])}
                for b in found[start : start + PAGE_SIZE]
            ]
            more = start + PAGE_SIZE < len(found)
            return 200, {
                "object": "list",
                "results": shown,
                "has_more": more,
                "next_cursor": str(start + PAGE_SIZE) if more else None,
            }
        return 404, {"code": "object_not_found"}

    def query(self, path: str, body: dict) -> tuple[int, dict]:
        """``POST /v1/databases/{id}/query``: the database's pages, ``PAGE_SIZE`` at a time (cursor paging)."""
        parts = path.strip("/").split("/")
        if parts[:2] != ["v1", "databases"] or parts[3:] != ["query"] or parts[2] not in self.databases:
            return 404, {"code": "object_not_found"}
        rows, start = self.databases[parts[2]], int(body.get("start_cursor", "0"))
        more = start + PAGE_SIZE < len(rows)
        return 200, {
            "object": "list",
            "results": [{"object": "page", "id": str(uuid.UUID(row))} for row in rows[start : start + PAGE_SIZE]],
            "has_more": more,
            "next_cursor": str(start + PAGE_SIZE) if more else None,
        }

    def _children(self, block_id: str) -> list[dict] | None:
        if block_id in self.pages:
            return self.pages[block_id][2]
        stack = [b for _, _, blocks in self.pages.values() for b in blocks]
        while stack:
            item = stack.pop()
            if item["id"] == block_id:
                return item["children"]
            stack += item["children"]
        return None


@pytest.fixture
def notion() -> Iterator[FakeNotion]:
    fake = FakeNotion()
    yield fake
    fake.stop()


@pytest.fixture
def allowed(settings: Settings, notion: FakeNotion, monkeypatch) -> Settings:
    monkeypatch.setenv(TOKEN_ENV, SECRET)
    return settings.model_copy(update={"fetch_allowed_hosts": [notion.host], "fetch_timeout_s": 5.0})


@pytest.fixture
def manager(pool, counting: CountingEmbedder, allowed: Settings) -> SourceManager:
    return manager_for(pool, counting, allowed)


def tree(notion: FakeNotion) -> SourceOptions:
    return SourceOptions(api_url=f"http://{notion.host}", token_env=TOKEN_ENV, per_host_per_s=1000)


ROOT, EXPENSES, TRAVEL, FAQ, PARKING = (uuid.uuid4().hex for _ in range(5))


async def test_a_page_tree_syncs_exactly_with_nested_blocks_and_heading_anchors(
    manager: SourceManager, notion: FakeNotion, pool, counting: CountingEmbedder, allowed: Settings
) -> None:
    leave = block("heading_2", "Annual leave")
    notion.pages = {
        ROOT: (
            "Handbook",
            "2026-01-01T00:00:00.000Z",
            [
                block("paragraph", "How the Example company works."),
                leave,
                block("paragraph", "Staff get twenty-five days of paid leave each year."),
                block(
                    "bulleted_list_item", "Carry-over", [block("paragraph", "Five unused days carry over to March.")]
                ),
                child_page(EXPENSES, "Expenses"),
                child_page(TRAVEL, "Travel"),
                child_page(FAQ, "FAQ"),
            ],
        ),
        EXPENSES: ("Expenses", "2026-01-01T00:00:00.000Z", [block("paragraph", "Receipts are due within ten days.")]),
        TRAVEL: ("Travel", "2026-01-01T00:00:00.000Z", [block("paragraph", "Book trains through the travel desk.")]),
        FAQ: ("FAQ", "2026-01-01T00:00:00.000Z", [block("quote", "Ask the people team anything.")]),
    }
    root_url = FakeNotion.url(ROOT)
    source = await manager.add(ADMIN, "notion", root_url, options=tree(notion))
    first = await manager.sync(ADMIN, source.id)
    assert (first.status, counts(first)["added"]) == ("ok", 4)
    assert await titles(pool) == ["Expenses", "FAQ", "Handbook", "Travel"]
    [passage] = await Retriever(pool, counting, allowed).search("How many days of paid leave?", ["default"], 1)
    assert passage.source_uri == f"{root_url}#{leave['id'].replace('-', '')}"
    [nested] = await Retriever(pool, counting, allowed).search("Do unused leave days carry over?", ["default"], 1)
    assert "Five unused days carry over to March." in nested.text

    title, _, blocks = notion.pages[ROOT]
    notion.pages[ROOT] = (title, "2026-02-01T00:00:00.000Z", [b for b in blocks if b["id"] != TRAVEL])
    del notion.pages[TRAVEL]
    notion.pages[EXPENSES] = (
        "Expenses",
        "2026-02-01T00:00:00.000Z",
        [
            block("paragraph", "Receipts are now due within five days."),
            child_page(PARKING, "Parking"),
        ],
    )
    notion.pages[PARKING] = ("Parking", "2026-02-01T00:00:00.000Z", [block("paragraph", "Visitors park on level 1.")])
    second = await manager.sync(ADMIN, source.id)
    # the root was edited (a sub-page link less) but its text is the same: unchanged by content hash; FAQ by version
    assert counts(second) == {"added": 1, "updated": 1, "unchanged": 2, "removed": 1, "failed": 0}
    assert await titles(pool) == ["Expenses", "FAQ", "Handbook", "Parking"]


@pytest.mark.parametrize("form", ["view url", "prefix"])
async def test_a_database_syncs_its_pages_exactly(manager: SourceManager, notion: FakeNotion, pool, form: str) -> None:
    database = uuid.uuid4().hex
    notion.pages = {
        page: (title, "2026-01-01T00:00:00.000Z", [block("paragraph", text)])
        for page, title, text in [
            (EXPENSES, "Expenses", "Receipts are due within ten days."),
            (TRAVEL, "Travel", "Book trains through the travel desk."),
            (FAQ, "FAQ", "Ask the people team anything."),
        ]
    }
    notion.databases = {database: [EXPENSES, TRAVEL, FAQ]}  # three rows: two pages of query results
    view = f"https://www.notion.so/acme/{database}?v={uuid.uuid4().hex}"
    target = view if form == "view url" else f"database:{database}"
    source = await manager.add(ADMIN, "notion", target, options=tree(notion))
    first = await manager.sync(ADMIN, source.id)
    assert (first.status, counts(first)["added"]) == ("ok", 3)
    assert await titles(pool) == ["Expenses", "FAQ", "Travel"]
    assert sum(r.startswith(f"POST /v1/databases/{database}/query") for r in notion.requests) == 2

    notion.databases[database].remove(TRAVEL)
    second = await manager.sync(ADMIN, source.id)
    assert counts(second) == {"added": 0, "updated": 0, "unchanged": 2, "removed": 1, "failed": 0}
    assert await titles(pool) == ["Expenses", "FAQ"]


async def test_a_database_that_cannot_be_listed_fails_the_sync_and_removes_nothing(
    manager: SourceManager, notion: FakeNotion, pool
) -> None:
    database = uuid.uuid4().hex
    notion.pages = {FAQ: ("FAQ", "2026-01-01T00:00:00.000Z", [block("paragraph", "Ask the people team.")])}
    notion.databases = {database: [FAQ]}
    source = await manager.add(ADMIN, "notion", f"database:{database}", options=tree(notion))
    await manager.sync(ADMIN, source.id)
    del notion.databases[database]
    report = await manager.sync(ADMIN, source.id)
    assert report.status == "failed" and "cannot list the database" in report.error
    assert await titles(pool) == ["FAQ"]


async def test_a_wrong_token_fails_the_sync_and_removes_nothing(
    manager: SourceManager, notion: FakeNotion, pool, monkeypatch
) -> None:
    notion.pages = {ROOT: ("Handbook", "2026-01-01T00:00:00.000Z", [block("paragraph", "How we work.")])}
    source = await manager.add(ADMIN, "notion", FakeNotion.url(ROOT), options=tree(notion))
    await manager.sync(ADMIN, source.id)
    monkeypatch.setenv(TOKEN_ENV, "ntn_revoked")
    report = await manager.sync(ADMIN, source.id)
    assert report.status == "failed" and "HTTP 401" in report.error
    assert await titles(pool) == ["Handbook"]


@pytest.mark.parametrize(
    ("target", "options", "message"),
    [
        ("https://www.notion.so/no-id-here", SourceOptions(), "not a Notion page"),
        (f"https://www.notion.so/Page-{ROOT}", SourceOptions(api_url="file:///etc"), "api-url"),
        (f"https://www.notion.so/Page-{ROOT}", SourceOptions(token_env="DATABASE_URL"), "SOURCE_"),
    ],
)
async def test_bad_notion_sources_are_refused(
    manager: SourceManager, target: str, options: SourceOptions, message: str
) -> None:
    with pytest.raises(SourceError, match=message):
        await manager.add(ADMIN, "notion", target, options=options)
