"""``lorebot sources``: add, list, sync and remove connected sources (a thin shell over
:class:`~bot.sources.manager.SourceManager`). ``lorebot sources sync`` without an id syncs the due sources, for
cron or a Kubernetes CronJob; with an id it syncs that one now, showing progress."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from bot.cli import JsonOption, _print_json, console, err_console, load_settings, operator, run_core
from bot.sources.model import Source, SourceOptions, SyncReport, format_every

DEFAULTS = SourceOptions()
sources_app = typer.Typer(
    help="Connected sources kept in sync: web, sitemap, folder, git, confluence, notion.", no_args_is_help=True
)


@sources_app.command("add")
def add(
    kind: Annotated[str, typer.Argument(help="web | sitemap | folder | git | confluence | notion")],
    target: Annotated[str, typer.Argument(help="Start URL, sitemap, folder, repository, wiki URL or Notion page")],
    scope: Annotated[str | None, typer.Option("--scope", "-s", help="Knowledge scope")] = None,
    every: Annotated[str | None, typer.Option(help="Re-sync schedule such as 30m, 6h, 1d (default: manual)")] = None,
    glob: Annotated[str, typer.Option(help="folder/git: files to take, ** crosses folders")] = "",
    depth: Annotated[int, typer.Option(help="web: links away from the start page")] = DEFAULTS.depth,
    max_pages: Annotated[int, typer.Option(help="Most documents read per sync")] = DEFAULTS.max_pages,
    rate: Annotated[float, typer.Option(help="web/sitemap: requests per second per host")] = DEFAULTS.per_host_per_s,
    ref: Annotated[str, typer.Option(help="git: branch or tag to follow")] = DEFAULTS.ref,
    space: Annotated[str, typer.Option(help="confluence: the space key")] = "",
    token_env: Annotated[str, typer.Option(help="confluence/notion: SOURCE_* variable holding the token")] = "",
    api_url: Annotated[str, typer.Option(help="notion: the API address, if not api.notion.com")] = "",
    as_json: JsonOption = False,
) -> None:
    """Add a source (it syncs on `lorebot sources sync ID` or, when scheduled, in `lorebot serve`)."""
    from bot.runtime import running_service

    settings = load_settings()
    options = SourceOptions(
        glob=glob,
        depth=depth,
        max_pages=max_pages,
        per_host_per_s=rate,
        ref=ref,
        space=space,
        token_env=token_env,
        api_url=api_url,
    )

    async def run() -> Source:
        async with running_service(settings, with_llm=False, embeds=False) as service:
            return await service.sources.add(operator(), kind, target, scope=scope, every=every, options=options)

    source = run_core(run())
    if as_json:
        _print_json(source_payload(source))
        return
    console.print(
        f"added source #{source.id} ({source.kind} {source.target} → scope {source.scope}, "
        f"{format_every(source.every_s)}); sync it with: lorebot sources sync {source.id}",
        soft_wrap=True,
    )


@sources_app.command("list")
def list_sources(as_json: JsonOption = False) -> None:
    """List sources with their last sync, documents, last error and next run."""
    from bot.runtime import running_service

    settings = load_settings()

    async def run() -> list[Source]:
        async with running_service(settings, with_llm=False, embeds=False) as service:
            return await service.sources.list(operator())

    sources = run_core(run())
    if as_json:
        _print_json([source_payload(source) for source in sources])
        return
    table = Table("id", "kind", "target", "scope", "every", "last sync", "status", "docs", "next run", "error")
    for s in sources:
        status = Text(s.last_status, style={"ok": "green", "partial": "yellow", "failed": "red"}.get(s.last_status))
        table.add_row(
            str(s.id),
            s.kind,
            s.target,
            s.scope,
            format_every(s.every_s),
            _when(s.last_sync_at),
            status,
            str(s.documents),
            _when(s.next_run_at),
            s.last_error,
        )
    console.print(table)


@sources_app.command("sync")
def sync(
    source_id: Annotated[int | None, typer.Argument(help="Source id; without it, every due source")] = None,
    as_json: JsonOption = False,
) -> None:
    """Sync one source now, or (no id) every scheduled source that is due: for cron and Kubernetes CronJobs."""
    from bot.notices import webhook_notifier
    from bot.runtime import running_service
    from bot.sources.scheduler import sync_due

    settings = load_settings(interactive=not as_json)

    async def run() -> list[SyncReport]:
        async with running_service(settings, with_llm=False) as service:
            if source_id is None:
                return await sync_due(service.sources, webhook_notifier(settings.admin_webhooks))
            counts: Counter[str] = Counter()
            with Progress(
                SpinnerColumn(),
                TextColumn("{task.description}", markup=False),
                TimeElapsedColumn(),
                console=err_console,
                disable=as_json,
            ) as progress:
                task = progress.add_task(f"syncing source {source_id}")

                def on_item(uri: str, outcome: str) -> None:
                    counts[outcome] += 1
                    shown = ", ".join(f"{n} {what}" for what, n in sorted(counts.items()))
                    progress.update(task, description=f"source {source_id}: {shown} · {uri[-60:]}")

                return [await service.sources.sync(operator(), source_id, on_item)]

    reports = run_core(run())
    if as_json:
        _print_json([report.as_json() for report in reports])
    else:
        if not reports:
            console.print("no source is due")
        for report in reports:
            console.print(summary_text(report), soft_wrap=True)
    if any(report.status == "failed" for report in reports):
        raise typer.Exit(1)


@sources_app.command("remove")
def remove(
    source_id: int,
    keep_documents: Annotated[bool, typer.Option("--keep-documents", help="Keep what it brought in")] = False,
) -> None:
    """Remove a source and, unless --keep-documents, the documents only it brought in."""
    from bot.runtime import running_service

    settings = load_settings()

    async def run() -> tuple[Source, int]:
        async with running_service(settings, with_llm=False, embeds=False) as service:
            return await service.sources.remove(operator(), source_id, keep_documents=keep_documents)

    source, removed = run_core(run())
    console.print(
        f"removed source #{source.id} ({source.kind} {source.target}) and {removed} document(s)", soft_wrap=True
    )


def summary_text(report: SyncReport) -> Text:
    """One line per sync: status, counts, time, then the failures (at most a few) on their own lines."""
    style = {"ok": "green", "partial": "yellow", "failed": "red"}[report.status]
    line = Text.assemble(
        (report.status, style), f" source #{report.source_id}: {report.summary()} in {report.seconds:.1f} s"
    )
    if report.revision:
        line.append(f" at {report.revision[:12]}")
    for note in filter(None, [report.error, "removals skipped: the listing was not whole" * report.removals_skipped]):
        line.append(f"\n  {note}", style="dim")
    for uri, error in report.failures[:10]:
        line.append(f"\n  failed {uri}: {error}", style="red")
    return line


def source_payload(source: Source) -> dict[str, object]:
    return {
        "id": source.id,
        "kind": source.kind.value,
        "target": source.target,
        "scope": source.scope,
        "every": format_every(source.every_s),
        "options": source.options.as_json(),
        "created_by": source.created_by,
        "last_sync_at": source.last_sync_at,
        "last_status": source.last_status,
        "last_error": source.last_error,
        "last_counts": source.last_counts.as_json(),
        "revision": source.revision,
        "next_run_at": source.next_run_at,
        "documents": source.documents,
    }


def _when(at: datetime | None) -> str:
    return f"{at:%Y-%m-%d %H:%M}" if at else "—"
