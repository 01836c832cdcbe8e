"""Connected sources end to end: real Postgres + pgvector, real MiniLM embeddings, real HTTP on loopback and real
Git repositories made in a temp folder. Each kind: first sync, edit one, delete one, add one, re-sync → exact
counts and fresh search results; a re-run changes nothing; upstream down removes nothing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from psycopg_pool import AsyncConnectionPool
from typer.testing import CliRunner

from bot.access import AuditTrail
from bot.domain import Actor
from bot.errors import PermissionDenied
from bot.ingest.pipeline import Ingestor
from bot.notices import Notice
from bot.retrieval import Retriever
from bot.settings import Settings
from bot.sources.manager import SourceManager
from bot.sources.model import SourceError, SourceOptions, SyncCounts, SyncReport
from bot.sources.scheduler import scheduling_sources, sync_due, sync_notice
from bot.storage import documents
from bot.storage import sources as store
from bot.storage.pool import open_pool
from lorebot.cli import app
from tests.fixtures.embeddings import CountingEmbedder

ADMIN = Actor("local", "operator", is_admin=True)
CHAT_ADMIN = Actor("slack", "U1", is_admin=True)
MEMBER = Actor("slack", "U2")


def manager_for(pool: AsyncConnectionPool, embedder, settings: Settings) -> SourceManager:
    return SourceManager(pool, Ingestor(pool, embedder, settings), AuditTrail(pool, settings), settings)


@pytest.fixture
def manager(pool: AsyncConnectionPool, counting: CountingEmbedder, settings: Settings) -> SourceManager:
    return manager_for(pool, counting, settings)


def counts(report: SyncReport) -> dict[str, int]:
    return report.counts.as_json()


async def titles(pool: AsyncConnectionPool, scope: str = "default") -> list[str]:
    return sorted(d.title for d in await documents.list_documents(pool, [scope]))


async def top_hit(pool: AsyncConnectionPool, embedder, settings: Settings, query: str) -> str:
    passages = await Retriever(pool, embedder, settings).search(query, ["default"], 1)
    return passages[0].text if passages else ""


# --- folder ----------------------------------------------------------------------------------------


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


async def test_folder_sync_adds_updates_removes_exactly_and_a_rerun_changes_nothing(
    manager: SourceManager, pool, counting: CountingEmbedder, settings: Settings, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    write(docs / "hours.md", "# Support hours\n\nThe desk is open on Saturdays from 10am to 2pm.\n")
    write(docs / "billing.md", "# Billing\n\nInvoices are sent on the first day of the month.\n")
    write(docs / "deep" / "vpn.md", "# VPN\n\nConnect to the office VPN with the Tunnelblick client.\n")
    write(docs / "logo.png", "not a document")
    source = await manager.add(ADMIN, "folder", str(docs), every="6h")

    first = await manager.sync(ADMIN, source.id)
    assert (first.status, counts(first)) == (
        "ok",
        {"added": 3, "updated": 0, "unchanged": 0, "removed": 0, "failed": 0},
    )
    assert await titles(pool) == ["Billing", "Support hours", "VPN"]

    write(docs / "hours.md", "# Support hours\n\nThe desk is open on Sundays from 9am to noon.\n")
    (docs / "billing.md").unlink()
    write(docs / "deep" / "parking.md", "# Parking\n\nVisitors park on level -2 of the garage.\n")
    second = await manager.sync(ADMIN, source.id)
    assert counts(second) == {"added": 1, "updated": 1, "unchanged": 1, "removed": 1, "failed": 0}
    assert await titles(pool) == ["Parking", "Support hours", "VPN"]
    assert "Sundays" in await top_hit(pool, counting, settings, "When is the support desk open?")

    embedded = counting.embedded
    third = await manager.sync(ADMIN, source.id)
    assert counts(third) == {"added": 0, "updated": 0, "unchanged": 3, "removed": 0, "failed": 0}
    assert counting.embedded == embedded

    [listed] = await manager.list(ADMIN)
    assert (listed.documents, listed.last_status, listed.last_error) == (3, "ok", "")
    assert listed.next_run_at is not None and listed.next_run_at > listed.last_sync_at


async def test_a_sync_failing_half_way_leaves_each_document_old_or_new_and_the_next_one_heals(
    manager: SourceManager, pool, counting: CountingEmbedder, settings: Settings, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    for name in ("alpha", "beta", "gamma"):
        write(docs / f"{name}.md", f"# {name.title()}\n\nThe {name} service runs version one.\n")
    source = await manager.add(ADMIN, "folder", str(docs))
    await manager.sync(ADMIN, source.id)
    for name in ("alpha", "beta", "gamma"):
        write(docs / f"{name}.md", f"# {name.title()}\n\nThe {name} service now runs version two.\n")

    counting.fail_on = "beta service now"
    broken = await manager.sync(ADMIN, source.id)
    assert (broken.status, counts(broken)["updated"], counts(broken)["failed"]) == ("partial", 2, 1)
    assert broken.failures[0][0].endswith("beta.md") and "embedding server crashed" in broken.failures[0][1]
    async with pool.connection() as conn:
        rows = await conn.execute("SELECT d.source_uri, c.text FROM chunks c JOIN documents d ON d.id = c.document_id")
        texts = {uri.rsplit("/", 1)[1]: text for uri, text in await rows.fetchall()}
    assert "version two" in texts["alpha.md"] and "version two" in texts["gamma.md"]
    assert "version one" in texts["beta.md"]  # the old document, whole

    counting.fail_on = ""
    healed = await manager.sync(ADMIN, source.id)
    assert counts(healed) == {"added": 0, "updated": 1, "unchanged": 2, "removed": 0, "failed": 0}


async def test_adding_is_admin_only_audited_and_local_paths_are_for_the_shell_operator(
    manager: SourceManager, pool, tmp_path: Path
) -> None:
    with pytest.raises(PermissionDenied):
        await manager.add(MEMBER, "web", "https://docs.example.com/")
    with pytest.raises(SourceError, match="command line"):
        await manager.add(CHAT_ADMIN, "folder", str(tmp_path))
    with pytest.raises(SourceError, match="command line"):  # not "no such folder": the disk is not probed
        await manager.add(CHAT_ADMIN, "folder", "/no/such/folder")
    with pytest.raises(SourceError, match="command line"):
        await manager.add(CHAT_ADMIN, "git", str(tmp_path))
    with pytest.raises(PermissionDenied):
        await manager.list(MEMBER)
    added = await manager.add(CHAT_ADMIN, "web", "https://docs.example.com/start#top", scope="eng", every="1d")
    assert (added.kind, added.target, added.scope, added.every_s) == (
        "web",
        "https://docs.example.com/start",
        "eng",
        86400,
    )
    with pytest.raises(SourceError, match="exists already"):
        await manager.add(CHAT_ADMIN, "web", "https://docs.example.com/start", scope="eng")
    async with pool.connection() as conn:
        rows = await conn.execute("SELECT user_id, action, allowed, detail->>'outcome' FROM audit_log ORDER BY id")
        audit = await rows.fetchall()
    assert audit[:5] == [
        ("U2", "add_source", False, None),
        ("U1", "add_source", True, "failed"),
        ("U1", "add_source", True, "failed"),
        ("U1", "add_source", True, "failed"),
        ("U2", "list_sources", False, None),
    ]
    assert audit[5:] == [("U1", "add_source", True, "ok"), ("U1", "add_source", True, "failed")]


@pytest.mark.parametrize(
    ("kind", "target", "every", "message"),
    [
        ("ftp", "ftp://example.com/", None, "unknown source kind"),
        ("web", "file:///etc/passwd", None, "http"),
        ("web", "https://user:secret@example.com/", None, "credentials"),
        ("sitemap", "not a url", None, "http"),
        ("web", "https://example.com/", "every tuesday", "number with a unit"),
        ("web", "https://example.com/", "10s", "between 1m and 30d"),
        ("git", "file:///srv/repo.git", None, "only http"),
        ("git", "ext::sh -c touch% /tmp/pwned", None, "only http"),
        ("git", "ssh://git@example.com/repo.git", None, "only http"),
        ("git", "git@example.com:org/repo.git", None, "only http"),
        ("git", "relative/repo", None, "absolute path"),
        ("git", "https://token:x@example.com/repo.git", None, "credentials"),
        ("folder", "relative/docs", None, "absolute path"),
    ],
)
async def test_bad_sources_are_refused_with_the_reason(
    manager: SourceManager, kind: str, target: str, every: str | None, message: str
) -> None:
    with pytest.raises(SourceError, match=message):
        await manager.add(ADMIN, kind, target, every=every)
    assert await manager.list(ADMIN) == []


@pytest.mark.parametrize(
    "options", [SourceOptions(depth=11), SourceOptions(max_pages=0), SourceOptions(ref="--upload-pack=x")]
)
async def test_options_out_of_range_are_refused(manager: SourceManager, options: SourceOptions) -> None:
    with pytest.raises(SourceError):
        await manager.add(ADMIN, "web", "https://example.com/", options=options)


async def test_removing_a_source_removes_only_its_documents_unless_kept(
    manager: SourceManager, pool, tmp_path: Path
) -> None:
    for name in ("one", "two"):
        write(tmp_path / name / f"{name}.md", f"# {name}\n\nDocument {name}.\n")
    one = await manager.add(ADMIN, "folder", str(tmp_path / "one"))
    two = await manager.add(ADMIN, "folder", str(tmp_path / "two"))
    await manager.sync(ADMIN, one.id)
    await manager.sync(ADMIN, two.id)
    removed, deleted = await manager.remove(ADMIN, one.id)
    assert (removed.id, deleted, await titles(pool)) == (one.id, 1, ["two"])
    _, kept = await manager.remove(ADMIN, two.id, keep_documents=True)
    assert (kept, await titles(pool), await manager.list(ADMIN)) == (0, ["two"], [])
    with pytest.raises(SourceError, match="no source"):
        await manager.remove(ADMIN, one.id)


# --- schedules and locks ---------------------------------------------------------------------------


async def test_two_replicas_schedulers_sync_a_due_source_exactly_once(
    pool, counting: CountingEmbedder, settings: Settings, database_url: str, tmp_path: Path
) -> None:
    write(tmp_path / "docs" / "hours.md", "# Hours\n\nOpen from nine to five.\n")
    replica_a = manager_for(pool, counting, settings)
    other_pool = await open_pool(database_url, settings)
    try:
        replica_b = manager_for(other_pool, counting, settings)
        scheduled = await replica_a.add(ADMIN, "folder", str(tmp_path / "docs"), every="1h")
        await replica_a.add(ADMIN, "folder", str(tmp_path), scope="manual")  # no schedule: never due
        reports = await asyncio.gather(sync_due(replica_a), sync_due(replica_b))
        assert sorted(len(r) for r in reports) == [0, 1]
        assert [r.source_id for r in reports[0] + reports[1]] == [scheduled.id]
        assert await sync_due(replica_b) == []  # next run is an hour away
    finally:
        await other_pool.close()
    listed = {s.id: s for s in await replica_a.list(ADMIN)}
    synced = listed[scheduled.id]
    assert (synced.next_run_at - synced.last_sync_at).total_seconds() == pytest.approx(3600, abs=1)


async def test_a_source_being_synced_elsewhere_is_not_synced_twice(
    manager: SourceManager, pool, tmp_path: Path
) -> None:
    write(tmp_path / "a.md", "# A\n\nText.\n")
    source = await manager.add(ADMIN, "folder", str(tmp_path), every="1h")
    async with store.sync_lock(pool, source.id) as held:
        assert held
        with pytest.raises(SourceError, match="being synced by another process"):
            await manager.sync(ADMIN, source.id)
        assert await sync_due(manager) == []
    assert len(await sync_due(manager)) == 1


# --- command line ----------------------------------------------------------------------------------


def test_cli_adds_syncs_lists_and_removes_a_source(
    monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path, embedder
) -> None:
    monkeypatch.chdir(tmp_path)  # no developer .env
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    write(tmp_path / "docs" / "hours.md", "# Hours\n\nOpen from nine to five.\n")
    write(tmp_path / "docs" / "faq" / "vpn.md", "# VPN\n\nUse the office VPN.\n")
    runner = CliRunner()

    added = runner.invoke(app, ["sources", "add", "folder", str(tmp_path / "docs"), "--every", "6h", "--json"])
    assert added.exit_code == 0, added.output
    source_id = json.loads(added.output)["id"]
    synced = runner.invoke(app, ["sources", "sync", str(source_id), "--json"])
    assert synced.exit_code == 0, synced.output
    assert json.loads(synced.output)[0] | {"seconds": 0} == {
        "source_id": source_id,
        "status": "ok",
        "added": 2,
        "updated": 0,
        "unchanged": 0,
        "removed": 0,
        "failed": 0,
        "failures": [],
        "error": "",
        "revision": "",
        "removals_skipped": False,
        "seconds": 0,
    }
    [listed] = json.loads(runner.invoke(app, ["sources", "list", "--json"]).output)
    assert (listed["documents"], listed["last_status"], listed["every"]) == (2, "ok", "6h")
    assert json.loads(runner.invoke(app, ["sources", "sync", "--json"]).output) == []  # cron: nothing due yet

    table = runner.invoke(app, ["sources", "list"])
    assert table.exit_code == 0 and "ok" in table.output
    removed = runner.invoke(app, ["sources", "remove", str(source_id)])
    assert removed.exit_code == 0 and "and 2 document(s)" in removed.output

    refused = runner.invoke(app, ["sources", "add", "git", "ext::sh -c id"])
    assert refused.exit_code == 1 and "only http(s) repository URLs" in refused.output


async def test_an_emptied_folder_removes_nothing(manager: SourceManager, pool, tmp_path: Path) -> None:
    docs = tmp_path / "mount"
    write(docs / "hours.md", "# Hours\n\nOpen from nine to five.\n")
    source = await manager.add(ADMIN, "folder", str(docs))
    await manager.sync(ADMIN, source.id)
    (docs / "hours.md").unlink()  # a network share that did not mount looks just like this
    report = await manager.sync(ADMIN, source.id)
    assert (report.status, report.removals_skipped, counts(report)["removed"]) == ("partial", True, 0)
    assert "upstream listed nothing" in report.error and await titles(pool) == ["Hours"]


async def test_the_serve_scheduler_syncs_a_due_source_in_the_background(
    manager: SourceManager, pool, tmp_path: Path
) -> None:
    write(tmp_path / "hours.md", "# Hours\n\nOpen from nine to five.\n")
    source = await manager.add(ADMIN, "folder", str(tmp_path), every="1h")
    notices: list[Notice] = []

    async def notify(notice: Notice) -> None:
        notices.append(notice)

    async with scheduling_sources(manager, tick_s=0.05, notify=notify):
        async with asyncio.timeout(60):
            while (await manager.get(ADMIN, source.id)).last_status == "never":
                await asyncio.sleep(0.05)
    synced = await manager.get(ADMIN, source.id)
    assert (synced.last_status, synced.documents) == ("ok", 1)
    assert await titles(pool) == ["Hours"]
    [notice] = notices  # the admins hear of the sync that changed the knowledge base, once
    assert notice.title == f"Lorebot synced source #{source.id}: ok"
    assert notice.lines == ("1 added, 0 updated, 0 unchanged, 0 removed, 0 failed.",)


def test_a_scheduled_sync_that_changed_nothing_notifies_nobody_and_a_failed_one_says_why() -> None:
    quiet = SyncReport(3, "ok", SyncCounts(unchanged=4))
    failed = SyncReport(3, "failed", SyncCounts(), failures=(("https://docs.example/a", "HTTP 500"),), error="down")
    assert sync_notice(quiet) is None
    notice = sync_notice(failed)
    assert notice is not None and notice.title == "Lorebot synced source #3: failed"
    assert notice.lines[1:] == ("down", "https://docs.example/a: HTTP 500")
