"""``web`` and ``sitemap`` sources against a real HTTP server on 127.0.0.1 (allowed through FETCH_ALLOWED_HOSTS):
exact incremental syncs, robots.txt, depth and page caps, rate limits, and hostile sites."""

from __future__ import annotations

import time

import pytest

from bot.retrieval import Retriever
from bot.settings import Settings
from bot.sources.manager import SourceManager
from bot.sources.model import SourceOptions
from tests.fixtures.embeddings import CountingEmbedder
from tests.fixtures.http import LocalHTTPServer
from tests.test_sources import ADMIN, counts, manager_for, titles, top_hit

HTML = "text/html; charset=utf-8"
XML = "application/xml"


def page(title: str, text: str, *links: str) -> bytes:
    anchors = " ".join(f'<a href="{href}">{label}</a>' for href, label in links)
    return (
        f"<!doctype html><html><head><title>{title}</title></head><body><article><h1>{title}</h1>"
        f"<p>{text}</p><p>Related: {anchors}</p></article></body></html>"
    ).encode()


@pytest.fixture
def web_settings(settings: Settings, http_server: LocalHTTPServer) -> Settings:
    return settings.model_copy(update={"fetch_allowed_hosts": [http_server.host], "fetch_timeout_s": 5.0})


@pytest.fixture
def manager(pool, counting: CountingEmbedder, web_settings: Settings) -> SourceManager:
    return manager_for(pool, counting, web_settings)


def fast(**options) -> SourceOptions:
    return SourceOptions(per_host_per_s=1000, **options)


# --- web -------------------------------------------------------------------------------------------


def build_site(site: LocalHTTPServer) -> None:
    site.serve("/robots.txt", b"User-agent: *\nDisallow: /private/\n")
    site.serve(
        "/",
        page(
            "Handbook",
            "Welcome to the team handbook of the Example company.",
            ("/a", "Holidays"),
            ("/private/salaries", "Salaries"),
            ("/logo.png", "logo"),
            ("http://169.254.169.254/latest/meta-data/", "metadata"),
            ("https://other.example/", "other"),
            ("mailto:hr@example.com", "mail"),
        ),
        content_type=HTML,
    )
    site.serve(
        "/a",
        page(
            "Holidays",
            "Staff get twenty-five days of paid holiday each year.",
            ("/", "home"),
            ("/b", "Expenses"),
            ("/a#top", "top"),
        ),
        content_type=HTML,
    )
    site.serve(
        "/b", page("Expenses", "Expenses are reimbursed within ten working days.", ("/c", "Travel")), content_type=HTML
    )
    site.serve(
        "/c", page("Travel", "Book train travel through the travel desk portal.", ("/b", "back")), content_type=HTML
    )


async def test_crawl_follows_same_site_links_once_obeys_robots_and_resyncs_exactly(
    manager: SourceManager, http_server: LocalHTTPServer, pool, counting, web_settings
) -> None:
    build_site(http_server)
    source = await manager.add(ADMIN, "web", http_server.url("/"), options=fast())

    first = await manager.sync(ADMIN, source.id)
    assert (first.status, counts(first)) == (
        "ok",
        {"added": 4, "updated": 0, "unchanged": 0, "removed": 0, "failed": 0},
    )
    assert await titles(pool) == ["Expenses", "Handbook", "Holidays", "Travel"]
    assert sorted(http_server.requests) == ["/", "/a", "/b", "/c", "/robots.txt"]  # each once; no /private/, no png

    http_server.serve(
        "/b", page("Expenses", "Expenses are now reimbursed within three working days."), content_type=HTML
    )
    del http_server.routes["/c"]
    http_server.serve(
        "/a",
        page(
            "Holidays",
            "Staff get twenty-five days of paid holiday each year.",
            ("/", "home"),
            ("/b", "Expenses"),
            ("/d", "Parental leave"),
        ),
        content_type=HTML,
    )
    http_server.serve("/d", page("Parental leave", "Parents get sixteen weeks of paid leave."), content_type=HTML)
    second = await manager.sync(ADMIN, source.id)
    assert counts(second) == {"added": 1, "updated": 2, "unchanged": 1, "removed": 1, "failed": 0}
    assert await titles(pool) == ["Expenses", "Handbook", "Holidays", "Parental leave"]
    assert "three working days" in await top_hit(pool, counting, web_settings, "How fast are expenses reimbursed?")

    embedded = counting.embedded
    third = await manager.sync(ADMIN, source.id)
    assert counts(third) == {"added": 0, "updated": 0, "unchanged": 4, "removed": 0, "failed": 0}
    assert counting.embedded == embedded


async def test_a_site_that_is_down_keeps_every_document_and_the_error_shows_in_the_list(
    manager: SourceManager, http_server: LocalHTTPServer, pool
) -> None:
    build_site(http_server)
    source = await manager.add(ADMIN, "web", http_server.url("/"), options=fast())
    await manager.sync(ADMIN, source.id)

    http_server.serve("/", b"upstream error", status=503)
    broken_home = await manager.sync(ADMIN, source.id)
    assert (broken_home.status, broken_home.removals_skipped, counts(broken_home)["removed"]) == ("partial", True, 0)
    assert "503" in broken_home.failures[0][1]

    http_server.stop()
    down = await manager.sync(ADMIN, source.id)
    assert (down.status, counts(down)) == ("failed", dict.fromkeys(counts(down), 0))
    assert await titles(pool) == ["Expenses", "Handbook", "Holidays", "Travel"]
    [listed] = await manager.list(ADMIN)
    assert (listed.last_status, listed.documents) == ("failed", 4)
    assert "unreachable" in listed.last_error


async def test_depth_and_page_cap_bound_a_crawl_trap(manager: SourceManager, http_server: LocalHTTPServer) -> None:
    for n in range(50):  # an endless-looking chain: every page links to the next
        http_server.serve(
            f"/p{n}", page(f"Page {n}", f"Page number {n} of the chain.", (f"/p{n + 1}", "next")), content_type=HTML
        )
    shallow = await manager.add(ADMIN, "web", http_server.url("/p0"), options=fast(depth=2))
    assert counts(await manager.sync(ADMIN, shallow.id))["added"] == 3

    capped = await manager.add(
        ADMIN, "web", http_server.url("/p0"), scope="capped", options=fast(depth=10, max_pages=5)
    )
    report = await manager.sync(ADMIN, capped.id)
    assert counts(report)["added"] == 5 and "max-pages (5)" in report.error
    assert http_server.requests.count("/p5") == 0


async def test_requests_to_one_host_are_paced(manager: SourceManager, http_server: LocalHTTPServer) -> None:
    build_site(http_server)
    source = await manager.add(ADMIN, "web", http_server.url("/"), options=SourceOptions(per_host_per_s=10))
    started = time.monotonic()
    await manager.sync(ADMIN, source.id)
    assert time.monotonic() - started >= 0.4  # robots.txt + 4 pages at 10/s: 4 intervals of 0.1 s at least


async def test_hostile_pages_fail_alone_without_reaching_the_network(
    pool, counting, web_settings: Settings, http_server: LocalHTTPServer
) -> None:
    manager = manager_for(pool, counting, web_settings.model_copy(update={"max_document_bytes": 1_000_000}))
    http_server.serve(
        "/",
        page("Start", "A start page with hostile links.", ("/meta", "m"), ("/huge", "h"), ("/ok", "ok")),
        content_type=HTML,
    )
    http_server.redirect("/meta", "http://169.254.169.254/latest/meta-data/")
    http_server.serve("/huge", b"<p>" + b"x" * 50_000_000 + b"</p>", content_type=HTML, send_length=False)
    http_server.serve("/ok", page("Fine", "A perfectly fine page."), content_type=HTML)
    source = await manager.add(ADMIN, "web", http_server.url("/"), options=fast())
    report = await manager.sync(ADMIN, source.id)
    assert (report.status, counts(report)["added"], counts(report)["failed"]) == ("partial", 2, 2)
    errors = dict(report.failures)
    assert "metadata" in errors[http_server.url("/meta")]
    assert "1000000-byte limit" in errors[http_server.url("/huge")]


async def test_a_private_start_url_is_refused_unless_its_host_is_allowed(manager: SourceManager, pool) -> None:
    source = await manager.add(ADMIN, "web", "http://127.0.0.1:9/")
    report = await manager.sync(ADMIN, source.id)
    assert report.status == "failed" and "loopback/private" in report.error


# --- sitemap ---------------------------------------------------------------------------------------


def urlset(*entries: tuple[str, str]) -> bytes:
    urls = "".join(
        f"<url><loc>{loc}</loc>{f'<lastmod>{lastmod}</lastmod>' if lastmod else ''}</url>" for loc, lastmod in entries
    )
    return f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'.encode()


def index(*locs: str) -> bytes:
    maps = "".join(f"<sitemap><loc>{loc}</loc></sitemap>" for loc in locs)
    return f'<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{maps}</sitemapindex>'.encode()


async def test_sitemap_follows_nested_sitemaps_and_skips_pages_whose_lastmod_held(
    manager: SourceManager, http_server: LocalHTTPServer, pool
) -> None:
    site = http_server
    site.serve("/sitemap.xml", index(site.url("/docs.xml"), site.url("/blog.xml")), content_type=XML)
    site.serve(
        "/docs.xml", urlset((site.url("/docs/a"), "2026-01-01"), (site.url("/docs/b"), "2026-01-01")), content_type=XML
    )
    site.serve("/blog.xml", urlset((site.url("/blog/c"), "")), content_type="text/xml")
    site.serve("/docs/a", page("Alpha", "Alpha is the first release."), content_type=HTML)
    site.serve("/docs/b", page("Beta", "Beta is the second release."), content_type=HTML)
    site.serve("/blog/c", page("Launch", "We launched on Monday."), content_type=HTML)
    source = await manager.add(ADMIN, "sitemap", site.url("/sitemap.xml"), options=fast())
    assert counts(await manager.sync(ADMIN, source.id))["added"] == 3

    site.serve(
        "/docs.xml", urlset((site.url("/docs/a"), "2026-02-01"), (site.url("/docs/b"), "2026-01-01")), content_type=XML
    )
    site.serve("/docs/a", page("Alpha", "Alpha is the first release, now retired."), content_type=HTML)
    site.serve("/docs/b", page("Beta", "Beta changed but its lastmod did not."), content_type=HTML)
    site.serve("/blog.xml", urlset((site.url("/blog/d"), "")), content_type=XML)
    site.serve("/blog/d", page("Roadmap", "The roadmap is public."), content_type=HTML)
    second = await manager.sync(ADMIN, source.id)
    assert counts(second) == {"added": 1, "updated": 1, "unchanged": 1, "removed": 1, "failed": 0}
    assert site.requests.count("/docs/b") == 1  # lastmod held: not fetched again
    assert await titles(pool) == ["Alpha", "Beta", "Roadmap"]


async def test_a_sitemap_of_100k_urls_is_cut_at_max_pages_and_removes_nothing(
    manager: SourceManager, http_server: LocalHTTPServer
) -> None:
    site = http_server
    site.serve("/sitemap.xml", urlset(*((site.url(f"/p/{n}"), "") for n in range(100_000))), content_type=XML)
    for n in range(3):
        site.serve(f"/p/{n}", page(f"Page {n}", f"Content of page {n}."), content_type=HTML)
    source = await manager.add(ADMIN, "sitemap", site.url("/sitemap.xml"), options=fast(max_pages=3))
    report = await manager.sync(ADMIN, source.id)
    assert counts(report)["added"] == 3 and "lists 100000 pages" in report.error
    assert len(site.requests) == 4


async def test_sitemap_entries_off_the_site_are_refused_without_a_request(
    manager: SourceManager, http_server: LocalHTTPServer
) -> None:
    site = http_server
    hostile = ("http://10.0.0.1/admin", "http://169.254.169.254/latest/meta-data/", "file:///etc/passwd")
    site.serve("/sitemap.xml", urlset(*((loc, "") for loc in hostile), (site.url("/ok"), "")), content_type=XML)
    site.serve("/ok", page("Fine", "A perfectly fine page."), content_type=HTML)
    source = await manager.add(ADMIN, "sitemap", site.url("/sitemap.xml"), options=fast())
    report = await manager.sync(ADMIN, source.id)
    assert (counts(report)["added"], counts(report)["failed"]) == (1, 3)
    assert sorted(uri for uri, _ in report.failures) == sorted(hostile)
    assert site.requests == ["/sitemap.xml", "/ok"]


async def test_a_malformed_sitemap_fails_the_sync(manager: SourceManager, http_server: LocalHTTPServer) -> None:
    http_server.serve("/sitemap.xml", b"<urlset><url><loc>", content_type=XML)
    source = await manager.add(ADMIN, "sitemap", http_server.url("/sitemap.xml"), options=fast())
    report = await manager.sync(ADMIN, source.id)
    assert report.status == "failed" and "not a valid sitemap" in report.error


async def test_citations_link_to_the_heading_anchor_of_the_page(
    manager: SourceManager, http_server: LocalHTTPServer, pool, counting, web_settings: Settings
) -> None:
    body = (
        "<!doctype html><html><head><title>Policies</title></head><body><article><h1>Policies</h1>"
        "<p>All company policies in one place, reviewed every spring by the people team.</p>"
        '<h2 id="expenses-policy">Expenses <a class="headerlink" href="#expenses-policy">¶</a></h2>'
        "<p>Expenses are reimbursed within ten working days of submitting the receipt.</p>"
        '<h2><a href="#parking-rules">Parking</a></h2>'
        "<p>Visitors park on level one of garage A; employees use garage B.</p>"
        "<h2>Unanchored</h2><p>Laptops are replaced every four years by the IT desk.</p>"
        "</article></body></html>"
    ).encode()
    url = http_server.serve("/policies", body, content_type=HTML)
    source = await manager.add(ADMIN, "web", url, options=fast())
    await manager.sync(ADMIN, source.id)
    retriever = Retriever(pool, counting, web_settings)
    links = {}
    for query in ("How fast are expenses reimbursed?", "Where do visitors park?", "When are laptops replaced?"):
        [passage] = await retriever.search(query, ["default"], 1)
        links[query.split()[-1]] = passage.source_uri
    assert links == {"reimbursed?": f"{url}#expenses-policy", "park?": f"{url}#parking-rules", "replaced?": url}
