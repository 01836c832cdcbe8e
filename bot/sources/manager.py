"""Connected sources on behalf of an :class:`~bot.domain.Actor`: add, list, sync and remove, admin only, audited.

Targets on the bot's own machine (a ``folder``, a local Git repository) are accepted from the shell operator alone
(platform ``local``): a chat admin may manage knowledge, not read the server's disk. A sync holds the source's
advisory lock, so two processes (replicas, a cron job and the scheduler) never sync one source at once.
"""

from __future__ import annotations

import logging
from pathlib import Path

from psycopg_pool import AsyncConnectionPool

from bot.access import AuditTrail
from bot.domain import Actor, Platform
from bot.ingest.fetch import redact_credentials
from bot.ingest.pipeline import SCOPE_NAME, Ingestor
from bot.settings import Settings
from bot.sources.model import (
    Source,
    SourceError,
    SourceKind,
    SourceOptions,
    SyncCounts,
    SyncReport,
    parse_every,
    parse_kind,
)
from bot.sources.sync import OnItem, SourceSync
from bot.storage import sources as store
from bot.validation import clean_text

log = logging.getLogger(__name__)


class SourceManager:
    def __init__(self, pool: AsyncConnectionPool, ingestor: Ingestor, audit: AuditTrail, settings: Settings) -> None:
        self.pool = pool
        self.audit = audit
        self.settings = settings
        self.syncer = SourceSync(pool, ingestor, settings)

    async def add(
        self,
        actor: Actor,
        kind: str,
        target: str,
        *,
        scope: str | None = None,
        every: str | None = None,
        options: SourceOptions | None = None,
    ) -> Source:
        """Store a new source (due at once when scheduled; it syncs on :meth:`sync` or the scheduler's next tick).

        Raises :class:`SourceError` for a bad kind, target, schedule, option, a duplicate or a chat admin naming a
        local path, :class:`~bot.errors.PermissionDenied` for a non-admin.
        """
        target = redact_credentials(clean_text(target.strip()))
        async with self.audit.admin_action(actor, "add_source", target=f"{kind} {target}"[:500]) as entry:
            source_kind = parse_kind(kind)
            scope = scope or self.settings.default_scope
            if not SCOPE_NAME.match(scope):
                raise SourceError(f"invalid scope name {scope!r}: use 1-64 letters, digits, '_', '.', ':' or '-'")
            if _is_local(source_kind, target) and actor.platform != Platform.LOCAL:  # before the disk is looked at
                raise SourceError("local folders and repositories can only be added from the command line")
            target = _checked_target(source_kind, target)
            every_s = parse_every(every)
            checked = (options or SourceOptions()).checked()
            if source_kind is SourceKind.CONFLUENCE and not checked.space:
                raise SourceError("a confluence source needs a space key (--space)")
            row = await store.insert_source(
                self.pool,
                kind=source_kind.value,
                target=target,
                scope=scope,
                every_s=every_s,
                options=checked.as_json(),
                created_by=actor.ref,
            )
            if row is None:
                raise SourceError(f"a {source_kind} source for {target} in scope {scope} exists already")
            entry.detail.update(source_id=row.id, scope=scope, every_s=every_s)
        return source_from_row(row)

    async def list(self, actor: Actor) -> list[Source]:
        """Every source with the status of its last sync (targets may be internal: admins only)."""
        await self.audit.require_admin(actor, "list_sources", target="sources")
        return [source_from_row(row) for row in await store.list_sources(self.pool)]

    async def get(self, actor: Actor, source_id: int) -> Source:
        await self.audit.require_admin(actor, "get_source", target=str(source_id))
        return await self._source(source_id)

    async def sync(self, actor: Actor, source_id: int, on_item: OnItem | None = None) -> SyncReport:
        """Sync one source now; :class:`SourceError` when another process is syncing it."""
        async with self.audit.admin_action(actor, "sync_source", target=str(source_id)) as entry:
            source = await self._source(source_id)
            async with store.sync_lock(self.pool, source_id) as held:
                if not held:
                    raise SourceError(f"source {source_id} is being synced by another process; try again later")
                report = await self.syncer.run(source, on_item)
            entry.detail.update(status=report.status, **report.counts.as_json())
        return report

    async def sync_if_due(self, source_id: int) -> SyncReport | None:
        """The scheduler's sync: only when no other process holds the source and it is still due afterwards."""
        async with store.sync_lock(self.pool, source_id) as held:
            if not held or not await store.still_due(self.pool, source_id):
                return None
            row = await store.get_source(self.pool, source_id)
            if row is None:
                return None
            return await self.syncer.run(source_from_row(row))

    async def due(self) -> list[int]:
        return await store.due_sources(self.pool)

    async def remove(self, actor: Actor, source_id: int, *, keep_documents: bool = False) -> tuple[Source, int]:
        """Delete the source and (unless ``keep_documents``) the documents only it brought in; returns the removed
        source and how many documents went with it."""
        async with self.audit.admin_action(actor, "remove_source", target=str(source_id)) as entry:
            try:
                row, removed = await store.delete_source(self.pool, source_id, keep_documents=keep_documents)
            except LookupError:
                raise SourceError(f"no source {source_id}") from None
            entry.detail.update(documents_removed=removed, keep_documents=keep_documents)
        return source_from_row(row), removed

    async def _source(self, source_id: int) -> Source:
        row = await store.get_source(self.pool, source_id)
        if row is None:
            raise SourceError(f"no source {source_id}")
        return source_from_row(row)


def _checked_target(kind: SourceKind, target: str) -> str:
    if kind in (SourceKind.WEB, SourceKind.SITEMAP, SourceKind.CONFLUENCE):
        from bot.sources.web import site_start

        return str(site_start(target))
    if kind is SourceKind.GIT:
        from bot.sources.git import check_target

        return check_target(target)
    if kind is SourceKind.NOTION:
        from bot.sources.notion import notion_target

        notion_target(target)
        return target
    path = Path(target).expanduser()
    if not path.is_absolute() or not path.is_dir():
        raise SourceError(f"a folder source needs an absolute path to an existing folder, not {target!r}")
    return str(path.resolve())


def _is_local(kind: SourceKind, target: str) -> bool:
    if kind is SourceKind.FOLDER:
        return True
    if kind is SourceKind.GIT:
        from bot.sources.git import is_remote

        return not is_remote(target)
    return False


def source_from_row(row: store.SourceRow) -> Source:
    return Source(
        id=row.id,
        kind=SourceKind(row.kind),
        target=row.target,
        scope=row.scope,
        every_s=row.every_s,
        options=SourceOptions.from_json(row.options),
        created_by=row.created_by,
        created_at=row.created_at,
        last_sync_at=row.last_sync_at,
        last_status=row.last_status,  # type: ignore[arg-type]
        last_error=row.last_error,
        last_counts=SyncCounts(**{k: v for k, v in row.last_counts.items() if k in SyncCounts.__slots__}),
        revision=row.revision,
        next_run_at=row.next_run_at,
        documents=row.documents,
    )
