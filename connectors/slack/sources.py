"""``/kb source …``: connected sources from Slack. Who may do what is the core's decision (admins; local paths
never from chat), and it audits every attempt; this module only parses the command and renders the reply."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bot.domain import Actor
from bot.service import Lorebot
from bot.sources.model import Source, SyncReport, format_every
from connectors.slack import render

SOURCE_USAGE = (
    "*Usage:* `/kb source add <web|sitemap|git> <url> [every, e.g. 6h]` · `/kb source list` · "
    "`/kb source sync <id>` · `/kb source remove <id>`"
)
MAX_LISTED_FAILURES = 5


async def source_command(
    service: Lorebot, actor: Actor, text: str, *, scope: str, as_url: Callable[[str], str | None]
) -> str:
    """Run ``/kb source <text>`` for ``actor``, storing into ``scope``; the reply text (usage when not understood).
    ``as_url`` unwraps Slack's ``<url|label>`` link markup."""
    verb, _, rest = text.strip().partition(" ")
    args = rest.split()
    verb = verb.lower()
    if verb == "add" and len(args) in (2, 3):
        target = as_url(args[1]) or args[1]
        every = args[2] if len(args) == 3 else None
        source = await service.sources.add(actor, args[0], target, scope=scope, every=every)
        return (
            f"Added source #{source.id}: {source.kind} {render.escape(source.target)} → `{source.scope}`, "
            f"{format_every(source.every_s)}. Sync it now with `/kb source sync {source.id}`."
        )
    if verb == "list" and not args:
        return sources_text(await service.sources.list(actor))
    source_id = _id(args)
    if verb == "sync" and source_id is not None:
        return sync_text(await service.sources.sync(actor, source_id))
    if verb == "remove" and source_id is not None:
        source, removed = await service.sources.remove(actor, source_id)
        return f"Removed source #{source.id} ({source.kind} {render.escape(source.target)}) and {removed} document(s)."
    return SOURCE_USAGE


def sources_text(sources: Sequence[Source]) -> str:
    if not sources:
        return "No sources yet. " + SOURCE_USAGE
    lines = [f"*{len(sources)} sources*"]
    for s in sources:
        synced = f"{s.last_status} {s.last_sync_at:%Y-%m-%d %H:%M} UTC" if s.last_sync_at else "never synced"
        line = (
            f"#{s.id} {s.kind} {render.escape(s.target)} → `{s.scope}` · {format_every(s.every_s)} · {synced} · "
            f"{s.documents} docs"
        )
        if s.next_run_at:
            line += f" · next {s.next_run_at:%Y-%m-%d %H:%M} UTC"
        if s.last_error:
            line += f"\n    _{render.escape(s.last_error)}_"
        lines.append(line)
    return "\n".join(lines)


def sync_text(report: SyncReport) -> str:
    """The summary message of a finished sync: status, counts, then the first failures."""
    lines = [f"Sync of source #{report.source_id} {report.status}: {report.summary()}."]
    if report.error:
        lines.append(f"_{render.escape(report.error)}_")
    for uri, error in report.failures[:MAX_LISTED_FAILURES]:
        lines.append(f"• {render.escape(uri)}: {render.escape(error)}")
    if len(report.failures) > MAX_LISTED_FAILURES:
        lines.append(f"… and {len(report.failures) - MAX_LISTED_FAILURES} more failures")
    return "\n".join(lines)


def _id(args: list[str]) -> int | None:
    return int(args[0].lstrip("#")) if len(args) == 1 and args[0].lstrip("#").isdigit() else None
