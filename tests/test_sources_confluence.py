"""``confluence`` sources against a fake Confluence REST API on 127.0.0.1 (the real paths, query parameters, JSON
shapes and authentication of ``/rest/api/content``), through the real fetcher and SSRF guard."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from bot.settings import Settings
from bot.sources.manager import SourceManager
from bot.sources.model import SourceError, SourceOptions
from tests.fixtures.embeddings import CountingEmbedder
from tests.fixtures.http import FakeJSONAPI
from tests.test_sources import ADMIN, counts, manager_for, titles

TOKEN = "ada@example.com:s3cret-api-token"
TOKEN_ENV = "SOURCE_CONFLUENCE_TOKEN"


class FakeConfluence(FakeJSONAPI):
    """Space ``ENG`` of a Confluence Cloud site at ``/wiki``; answers 401 without ``TOKEN`` as Basic auth."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[str, int, str]] = {}  # id → (title, version, storage-format body)
        self.requests: list[tuple[str, str]] = []  # (path with query, Authorization header)
        self.redirects: dict[str, str] = {}
        super().__init__()

    def respond(self, method: str, path: str, headers, body: object) -> tuple[int, object, dict[str, str]]:
        authorization = headers.get("Authorization", "")
        self.requests.append((path, authorization))
        status, payload, location = self.answer(path, authorization)
        return status, payload, {"Location": location} if location else {}

    @property
    def wiki(self) -> str:
        return f"http://{self.host}/wiki"

    def answer(self, target: str, authorization: str) -> tuple[int, object, str]:
        if authorization != "Basic " + base64.b64encode(TOKEN.encode()).decode():
            return 401, {"statusCode": 401, "message": "Unauthorized"}, ""
        url = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/wiki/rest/api/content" and query.get("spaceKey") == "ENG" and query.get("type") == "page":
            start, limit = int(query["start"]), int(query["limit"])
            ids = sorted(self.pages, key=int)[start : start + limit]
            results = [
                {
                    "id": i,
                    "type": "page",
                    "status": "current",
                    "title": self.pages[i][0],
                    "version": {"number": self.pages[i][1]},
                    "_links": {"webui": f"/spaces/ENG/pages/{i}"},
                }
                for i in ids
            ]
            links = {"next": f"/rest/api/content?start={start + limit}"} if start + limit < len(self.pages) else {}
            body = {"results": results, "start": start, "limit": limit, "size": len(results), "_links": links}
            return 200, body, ""
        page_id = url.path.removeprefix("/wiki/rest/api/content/")
        if page_id in self.redirects:
            return 302, None, self.redirects[page_id]
        if page_id in self.pages and query.get("expand") == "body.storage":
            title, _, storage = self.pages[page_id]
            body = {"id": page_id, "title": title, "body": {"storage": {"value": storage, "representation": "storage"}}}
            return 200, body, ""
        return 404, {"statusCode": 404, "message": "No content found"}, ""


@pytest.fixture
def confluence() -> Iterator[FakeConfluence]:
    fake = FakeConfluence()
    yield fake
    fake.stop()


@pytest.fixture
def manager(
    pool, counting: CountingEmbedder, settings: Settings, confluence: FakeConfluence, monkeypatch
) -> SourceManager:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    allowed = settings.model_copy(update={"fetch_allowed_hosts": [confluence.host], "fetch_timeout_s": 5.0})
    return manager_for(pool, counting, allowed)


def space(**options) -> SourceOptions:
    return SourceOptions(space="ENG", token_env=TOKEN_ENV, per_host_per_s=1000, **options)


def body_requests(fake: FakeConfluence, page_id: str) -> int:
    return sum(path.startswith(f"/wiki/rest/api/content/{page_id}?") for path, _ in fake.requests)


async def test_a_space_syncs_exactly_and_skips_pages_whose_version_held(
    manager: SourceManager, confluence: FakeConfluence, pool
) -> None:
    confluence.pages = {
        "101": ("Onboarding", 1, "<h2>Laptop</h2><p>New hires get a laptop on day one.</p>"),
        "102": ("Expenses", 3, "<p>Expenses are reimbursed within ten working days.</p>"),
        "103": ("Travel", 1, "<p>Book trains through the travel desk.</p>"),
    }
    source = await manager.add(ADMIN, "confluence", confluence.wiki, options=space())
    first = await manager.sync(ADMIN, source.id)
    assert (first.status, counts(first)["added"]) == ("ok", 3)
    assert await titles(pool) == ["Expenses", "Onboarding", "Travel"]

    confluence.pages["102"] = ("Expenses", 4, "<p>Expenses are now reimbursed within three working days.</p>")
    del confluence.pages["103"]
    confluence.pages["104"] = ("Parking", 1, "<p>Visitors park on level one.</p>")
    second = await manager.sync(ADMIN, source.id)
    assert counts(second) == {"added": 1, "updated": 1, "unchanged": 1, "removed": 1, "failed": 0}
    assert body_requests(confluence, "101") == 1  # version held: its body is not fetched again
    assert await titles(pool) == ["Expenses", "Onboarding", "Parking"]
    async with pool.connection() as conn:
        uris = [r[0] for r in await (await conn.execute("SELECT source_uri FROM documents ORDER BY 1")).fetchall()]
    assert uris == [f"{confluence.wiki}/spaces/ENG/pages/{i}" for i in ("101", "102", "104")]
    assert {auth for _, auth in confluence.requests} == {"Basic " + base64.b64encode(TOKEN.encode()).decode()}


async def test_listing_pages_through_and_capping_at_max_pages(
    manager: SourceManager, confluence: FakeConfluence
) -> None:
    confluence.pages = {str(n): (f"Page {n}", 1, f"<p>Page number {n}.</p>") for n in range(1, 121)}
    source = await manager.add(ADMIN, "confluence", confluence.wiki, options=space(max_pages=60))
    report = await manager.sync(ADMIN, source.id)
    assert counts(report)["added"] == 60 and "more than 60 pages" in report.error
    assert sum("spaceKey=ENG" in path for path, _ in confluence.requests) == 2


async def test_a_wrong_or_missing_token_fails_the_sync_and_removes_nothing(
    manager: SourceManager, confluence: FakeConfluence, pool, monkeypatch
) -> None:
    confluence.pages = {"101": ("Onboarding", 1, "<p>New hires get a laptop on day one.</p>")}
    source = await manager.add(ADMIN, "confluence", confluence.wiki, options=space())
    await manager.sync(ADMIN, source.id)

    monkeypatch.setenv(TOKEN_ENV, "ada@example.com:revoked")
    refused = await manager.sync(ADMIN, source.id)
    assert refused.status == "failed" and "HTTP 401" in refused.error
    monkeypatch.delenv(TOKEN_ENV)
    unset = await manager.sync(ADMIN, source.id)
    assert unset.status == "failed" and f"{TOKEN_ENV} holding the source's token is not set" in unset.error
    assert await titles(pool) == ["Onboarding"]
    assert "revoked" not in str(await manager.list(ADMIN))


async def test_the_token_never_follows_a_redirect_to_another_origin(
    pool, counting: CountingEmbedder, settings: Settings, confluence: FakeConfluence, monkeypatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    elsewhere = FakeConfluence()
    try:
        allowed = settings.model_copy(update={"fetch_allowed_hosts": [confluence.host, elsewhere.host]})
        manager = manager_for(pool, counting, allowed)
        confluence.pages = {"101": ("Onboarding", 1, "<p>New hires get a laptop on day one.</p>")}
        confluence.redirects = {"101": f"http://{elsewhere.host}/wiki/rest/api/content/101?expand=body.storage"}
        source = await manager.add(ADMIN, "confluence", confluence.wiki, options=space())
        report = await manager.sync(ADMIN, source.id)
        assert report.failures and "HTTP 401" in report.failures[0][1]
        assert [auth for _, auth in elsewhere.requests] == [""]
    finally:
        elsewhere.stop()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (SourceOptions(token_env=TOKEN_ENV), "space key"),
        (SourceOptions(space="ENG", token_env="SLACK_BOT_TOKEN"), "SOURCE_"),
        (SourceOptions(space="ENG; DROP", token_env=TOKEN_ENV), "space key"),
    ],
)
async def test_bad_confluence_options_are_refused(manager: SourceManager, options: SourceOptions, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        await manager.add(ADMIN, "confluence", "https://acme.atlassian.net/wiki", options=options)
