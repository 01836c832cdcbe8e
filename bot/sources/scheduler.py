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
from bot.sources.manager import SourceManager
from bot.sources.model import SyncReport

log = logging.getLogger(__name__)

TICK_S = 30.0


async def sync_due(manager: SourceManager) -> list[SyncReport]:
    """Sync every due source this process can lock; a failing source does not stop the others."""
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
        if report is not None:
            reports.append(report)
    return reports


def scheduling_sources(manager: SourceManager, *, tick_s: float = TICK_S) -> AbstractAsyncContextManager[None]:
    """Run :func:`sync_due` now and every ``tick_s`` seconds while the block runs."""
    return repeating(lambda: sync_due(manager), every_s=tick_s, name="scheduled source syncs")
