"""Scheduled syncs inside the long-lived bot process (``lorebot serve``).

Every replica runs the scheduler; each tick it lists the due sources and syncs those whose advisory lock it gets
and that are still due once it holds it (a replica that just finished one moved its next run on), so exactly one
replica syncs a due source. ``lorebot sources sync`` does the same from cron without a bot running.
"""

from __future__ import annotations

import logging
from contextlib import AbstractAsyncContextManager

from bot.background import repeating
from bot.errors import LorebotError
from bot.notices import Notice, Notify
from bot.sources.manager import SourceManager
from bot.sources.model import SyncReport

log = logging.getLogger(__name__)

TICK_S = 30.0
MAX_NOTICE_FAILURES = 5


async def sync_due(manager: SourceManager, notify: Notify | None = None) -> list[SyncReport]:
    """Sync every due source this process can lock; a failing source does not stop the others. Admins are
    notified (``notify``) of each sync that changed the knowledge base or failed."""
    reports = []
    for source_id in await manager.due():
        try:
            report = await manager.sync_if_due(source_id)
        except LorebotError as e:
            log.warning("scheduled sync of source=%d failed: %s", source_id, e)
            continue
        except Exception:  # a bug in one kind must not stop the schedule of every other source
            log.exception("scheduled sync of source=%d crashed", source_id)
            continue
        if report is None:
            continue
        reports.append(report)
        notice = sync_notice(report)
        if notify is not None and notice is not None:
            await notify(notice)
    return reports


def sync_notice(report: SyncReport) -> Notice | None:
    """What admins are told after a scheduled sync; None when it changed nothing and nothing failed."""
    counts = report.counts
    if report.status != "failed" and not (counts.added or counts.updated or counts.removed or counts.failed):
        return None
    lines = [f"{report.summary()}."]
    if report.error:
        lines.append(report.error)
    lines += [f"{uri}: {reason}" for uri, reason in report.failures[:MAX_NOTICE_FAILURES]]
    return Notice(f"Lorebot synced source #{report.source_id}: {report.status}", tuple(lines))


def scheduling_sources(
    manager: SourceManager, *, tick_s: float = TICK_S, notify: Notify | None = None
) -> AbstractAsyncContextManager[None]:
    """Run :func:`sync_due` now and every ``tick_s`` seconds while the block runs."""
    return repeating(lambda: sync_due(manager, notify), every_s=tick_s, name="scheduled source syncs")
