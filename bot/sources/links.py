"""Links of an HTML page that a same-site crawl may follow."""

from __future__ import annotations

import contextlib
from html.parser import HTMLParser
from pathlib import PurePosixPath

import httpx

MAX_URL_CHARS = 2000
SKIPPED_SUFFIXES = frozenset(
    {
        ".png",
        ".jpg",
        ".jpeg",
        ".gif",
        ".svg",
        ".webp",
        ".ico",
        ".css",
        ".js",
        ".zip",
        ".gz",
        ".tar",
        ".mp4",
        ".mp3",
        ".woff",
        ".woff2",
        ".ttf",
        ".exe",
        ".dmg",
    }
)
"""Never documents: not worth a request."""


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []
        self.base = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a" and values.get("href"):
            self.hrefs.append(values["href"] or "")
        elif tag == "base" and values.get("href") and not self.base:
            self.base = values["href"] or ""


def page_url(url: str) -> httpx.URL:
    """``url`` as the crawl keys it: no fragment, default port dropped, host lower-cased (httpx normalises)."""
    return httpx.URL(url).copy_with(fragment=None)


def same_site_links(html: str, page: str, origin: tuple[str, str, int | None]) -> list[str]:
    """Absolute http(s) links of ``html`` (read at ``page``) on ``origin`` = (scheme, host, port), in page order,
    without fragments, duplicates or obvious non-documents (images, archives, scripts)."""
    parser = _Anchors()
    parser.feed(html)
    parser.close()
    base = httpx.URL(page)
    if parser.base:
        with contextlib.suppress(httpx.InvalidURL):
            base = base.join(parser.base)
    links: dict[str, None] = {}
    for href in parser.hrefs:
        href = href.strip()
        if not href or len(href) > MAX_URL_CHARS or href.startswith(("#", "mailto:", "javascript:", "tel:")):
            continue
        try:
            url = page_url(str(base.join(href)))
        except (httpx.InvalidURL, ValueError):
            continue
        if (url.scheme, url.host, url.port) != origin or url.userinfo:
            continue
        if PurePosixPath(url.path).suffix.lower() in SKIPPED_SUFFIXES:
            continue
        links[str(url)] = None
    return list(links)
