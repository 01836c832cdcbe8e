"""``git`` sources against real repositories made here: a local path, and a bare repository served over HTTP
(git's "dumb" protocol, from a plain static file server on 127.0.0.1)."""

from __future__ import annotations

import functools
import subprocess
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bot.retrieval import Retriever
from bot.settings import Settings
from bot.sources.manager import SourceManager
from bot.sources.model import SourceOptions
from tests.fixtures.embeddings import CountingEmbedder
from tests.test_sources import ADMIN, counts, manager, manager_for, titles, write

__all__ = ["manager"]  # the fixture, used by name

ALL_KEPT = {"added": 0, "updated": 0, "unchanged": 3, "removed": 0, "failed": 0}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def commit(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=Test", "-c", "user.email=t@example.com", "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "handbook"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write(repo / "README.md", "# Handbook\n\nHow the Example company works.\n")
    write(repo / "docs" / "holidays.md", "# Holidays\n\nStaff get twenty-five days of paid holiday.\n")
    write(repo / "docs" / "expenses.md", "# Expenses\n\nExpenses are reimbursed within ten days.\n")
    write(repo / "src" / "tool.py", "print('not documentation')\n")
    commit(repo, "first")
    return repo


def change_upstream(repo: Path) -> str:
    write(repo / "docs" / "holidays.md", "# Holidays\n\nStaff get thirty days of paid holiday from 2027.\n")
    (repo / "docs" / "expenses.md").unlink()
    write(repo / "docs" / "travel.md", "# Travel\n\nBook trains through the travel desk.\n")
    return commit(repo, "second")


async def test_a_local_repository_syncs_the_committed_docs_and_records_the_commit(
    manager: SourceManager, repo: Path, pool, counting: CountingEmbedder
) -> None:
    source = await manager.add(ADMIN, "git", str(repo))
    first = await manager.sync(ADMIN, source.id)
    assert (counts(first)["added"], first.revision) == (3, git(repo, "rev-parse", "HEAD"))
    assert await titles(pool) == ["Expenses", "Handbook", "Holidays"]

    (repo / "docs" / "passwd.md").symlink_to("/etc/passwd")  # committed as a link: its blob is a path, skipped
    head = change_upstream(repo)
    write(repo / "docs" / "draft.md", "# Draft\n\nNot committed: never synced.\n")
    second = await manager.sync(ADMIN, source.id)
    assert counts(second) == {"added": 1, "updated": 1, "unchanged": 1, "removed": 1, "failed": 0}
    assert second.revision == head
    assert await titles(pool) == ["Handbook", "Holidays", "Travel"]

    embedded = counting.embedded
    assert counts(await manager.sync(ADMIN, source.id)) == ALL_KEPT
    assert counting.embedded == embedded
    [listed] = await manager.list(ADMIN)
    assert (listed.revision, listed.documents) == (head, 3)


async def test_a_glob_picks_the_files(manager: SourceManager, repo: Path, pool) -> None:
    source = await manager.add(ADMIN, "git", str(repo), options=SourceOptions(glob="docs/**/*.md"))
    assert counts(await manager.sync(ADMIN, source.id))["added"] == 2


class StaticServer:
    """Serves a folder read-only over HTTP on 127.0.0.1, recording request paths."""

    def __init__(self, root: Path) -> None:
        self.requests: list[str] = []
        requests = self.requests

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                requests.append(self.path)
                super().do_GET()

            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def served(repo: Path, tmp_path: Path) -> Iterator[tuple[StaticServer, Path]]:
    """``repo`` cloned bare into a served folder, readable at ``http://HOST/handbook.git``."""
    root = tmp_path / "www"
    root.mkdir()
    bare = root / "handbook.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(bare)], check=True)
    git(bare, "update-server-info")
    server = StaticServer(root)
    yield server, bare
    server.stop()


def publish(repo: Path, bare: Path) -> None:
    git(repo, "push", "-q", str(bare), "main")
    git(bare, "update-server-info")


async def test_a_repository_url_is_fetched_over_http_and_resynced(
    pool, counting: CountingEmbedder, settings: Settings, repo: Path, served
) -> None:
    server, bare = served
    manager = manager_for(pool, counting, settings.model_copy(update={"fetch_allowed_hosts": [server.host]}))
    url = f"http://{server.host}/handbook.git"
    source = await manager.add(ADMIN, "git", url)
    first = await manager.sync(ADMIN, source.id)
    assert (first.status, counts(first)["added"]) == ("ok", 3)

    head = change_upstream(repo)
    publish(repo, bare)
    second = await manager.sync(ADMIN, source.id)
    assert counts(second) == {"added": 1, "updated": 1, "unchanged": 1, "removed": 1, "failed": 0}
    assert second.revision == head
    async with pool.connection() as conn:
        uris = [r[0] for r in await (await conn.execute("SELECT source_uri FROM documents ORDER BY 1")).fetchall()]
    base = f"http://{server.host}/handbook"
    assert uris == [
        f"{base}/blob/HEAD/README.md",
        f"{base}/blob/HEAD/docs/holidays.md",
        f"{base}/blob/HEAD/docs/travel.md",
    ]


async def test_a_repository_on_a_private_host_is_refused_before_git_runs(manager: SourceManager, served, pool) -> None:
    server, _ = served
    source = await manager.add(ADMIN, "git", f"http://{server.host}/handbook.git")
    report = await manager.sync(ADMIN, source.id)
    assert report.status == "failed" and "loopback/private" in report.error
    assert server.requests == []


async def test_an_unreachable_repository_keeps_every_document(
    pool, counting: CountingEmbedder, settings: Settings, served
) -> None:
    server, _ = served
    manager = manager_for(pool, counting, settings.model_copy(update={"fetch_allowed_hosts": [server.host]}))
    source = await manager.add(ADMIN, "git", f"http://{server.host}/handbook.git")
    await manager.sync(ADMIN, source.id)
    server.stop()
    report = await manager.sync(ADMIN, source.id)
    assert report.status == "failed" and report.error.startswith("git fetch failed")
    assert await titles(pool) == ["Expenses", "Handbook", "Holidays"]


async def test_citations_link_to_the_file_at_the_commit_and_its_lines(
    pool, counting: CountingEmbedder, settings: Settings, repo: Path, served
) -> None:
    server, bare = served
    write(
        repo / "docs" / "holidays.md", "\n\n# Holidays\n\nStaff get thirty days of paid holiday.\nUnused days expire.\n"
    )
    head = commit(repo, "holidays with leading blank lines")
    publish(repo, bare)
    allowed = settings.model_copy(update={"fetch_allowed_hosts": [server.host]})
    manager = manager_for(pool, counting, allowed)
    source = await manager.add(ADMIN, "git", f"http://{server.host}/handbook.git")
    await manager.sync(ADMIN, source.id)
    [passage] = await Retriever(pool, counting, allowed).search("How many days of paid holiday?", ["default"], 1)
    assert passage.source_uri == f"http://{server.host}/handbook/blob/{head}/docs/holidays.md?plain=1#L5-L6"
