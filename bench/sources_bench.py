"""Source sync throughput: a 500-page local site synced as ``web`` (crawl) and as ``sitemap``, through the public
API (:class:`~bot.sources.manager.SourceManager` of a started :class:`~bot.service.Lorebot`) with the real embedder.

Pages are SQuAD v1.1 paragraphs (one per page, its article title as ``<h1>``), served by a threaded HTTP server on
127.0.0.1 (allowed through ``FETCH_ALLOWED_HOSTS``). Per kind, in a fresh database: the first sync (every page new),
a re-sync with nothing changed, and a re-sync after ``--changed`` pages were edited (their sitemap ``lastmod``
moves too). The crawl re-reads every page on each sync and skips unchanged ones by content hash; the sitemap skips
them by ``lastmod`` without a request.

    .venv/bin/python bench/sources_bench.py [--pages 500] [--changed 50]

Prints a table and writes settings, git SHA and numbers to ``bench/results/sources.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import threading
import time
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from common import ROOT, database_server, write_results  # bench/common.py (the script's folder is on sys.path)
from corpus import SQUAD
from ingest_bench import fresh_database

from bot.domain import Actor
from bot.service import Lorebot
from bot.settings import Settings
from bot.sources.model import SourceOptions

RESULTS = ROOT / "bench" / "results" / "sources.json"
OPERATOR = Actor("local", "bench", is_admin=True)


class Site:
    """``/`` links every page; ``/sitemap.xml`` lists them with ``lastmod``; ``/p/N`` are the pages."""

    def __init__(self, paragraphs: list[tuple[str, str]]) -> None:
        self.pages = {f"/p/{n}": (title, text, "2026-01-01") for n, (title, text) in enumerate(paragraphs)}
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body, kind = site.body(self.path)
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.host = f"127.0.0.1:{self.server.server_address[1]}"

    def body(self, path: str) -> tuple[bytes, str]:
        if path == "/":
            links = "".join(f'<li><a href="{p}">{escape(t)}</a></li>' for p, (t, _, _) in self.pages.items())
            return f"<!doctype html><html><body><h1>Index</h1><ul>{links}</ul></body></html>".encode(), "text/html"
        if path == "/sitemap.xml":
            urls = "".join(
                f"<url><loc>http://{self.host}{p}</loc><lastmod>{m}</lastmod></url>"
                for p, (_, _, m) in self.pages.items()
            )
            return f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'.encode(), "text/xml"
        if path in self.pages:
            title, text, _ = self.pages[path]
            head = f"<!doctype html><html><head><title>{escape(title)}</title></head><body><article>"
            return (
                head + f"<h1>{escape(title)}</h1><p>{escape(text)}</p></article></body></html>"
            ).encode(), "text/html"
        return b"", "text/plain"

    def edit(self, count: int) -> None:
        for path in list(self.pages)[:count]:
            title, text, _ = self.pages[path]
            self.pages[path] = (title, text + " (Revised.)", "2026-02-01")


def paragraphs(count: int) -> list[tuple[str, str]]:
    data = json.loads(SQUAD.read_text(encoding="utf-8"))["data"]
    found = [(a["title"].replace("_", " "), p["context"]) for a in data for p in a["paragraphs"]]
    return found[:count]


async def run_kind(kind: str, target: str, settings: Settings, site: Site, changed: int) -> dict:
    service = await Lorebot.start(settings)
    try:
        options = SourceOptions(depth=1, max_pages=len(site.pages) + 1, per_host_per_s=1000)
        source = await service.sources.add(OPERATOR, kind, target, options=options)
        rows = {}
        for step in ("first sync", "unchanged", f"{changed} changed"):
            if step.endswith(" changed"):
                site.edit(changed)
            started = time.perf_counter()
            report = await service.sources.sync(OPERATOR, source.id)
            seconds = time.perf_counter() - started
            rows[step] = {
                "seconds": round(seconds, 2),
                "pages_per_s": round(len(site.pages) / seconds, 1),
                **report.counts.as_json(),
            }
            print(f"{kind:8} {step:12} {seconds:7.2f} s {len(site.pages) / seconds:8.1f} pages/s  {report.summary()}")
        return rows
    finally:
        await service.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=500)
    parser.add_argument("--changed", type=int, default=50)
    args = parser.parse_args()
    load_before = os.getloadavg()
    server_uri = database_server("lorebench-")
    results = {}
    for kind in ("web", "sitemap"):
        site = Site(paragraphs(args.pages))
        settings = Settings(
            _env_file=None,
            database_url=fresh_database(server_uri, f"bench_sources_{kind}"),
            data_dir=Path(tempfile.mkdtemp()),
            fetch_allowed_hosts=[site.host],
        )
        target = f"http://{site.host}/" + ("sitemap.xml" if kind == "sitemap" else "")
        results[kind] = await run_kind(kind, target, settings, site, args.changed)
        site.server.shutdown()
    record = {"pages": args.pages, "changed": args.changed, "dataset": str(SQUAD.name), "results": results}
    write_results(RESULTS, record, load_before=load_before)


if __name__ == "__main__":
    asyncio.run(main())
