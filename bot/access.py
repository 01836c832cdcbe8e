"""Admin checks and the audit trail: every admin operation passes through :meth:`AuditTrail.admin_action`.

The check lives in the core, not in adapters, so no platform can forget it; refusals are audited too.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from psycopg_pool import AsyncConnectionPool

from bot.domain import Actor, Document, IngestResult
from bot.errors import InvalidInput, LorebotError, PermissionDenied
from bot.settings import Settings
from bot.storage import audit
from bot.validation import check_actor

log = logging.getLogger(__name__)


def is_admin(actor: Actor, settings: Settings) -> bool:
    """Admin when the adapter says so (platform roles) or the actor is listed in ``ADMIN_USER_IDS``."""
    return actor.is_admin or actor.ref in settings.admin_user_ids


@dataclass
class AuditEntry:
    """What an admin action did, filled in by the action before the entry is written."""

    detail: dict[str, Any] = field(default_factory=dict)

    def record(self, outcome: IngestResult | Document) -> None:
        document = outcome.document if isinstance(outcome, IngestResult) else outcome
        self.detail.update(document_id=document.id, scope=document.scope, chunks=document.chunk_count)
        if isinstance(outcome, IngestResult):
            self.detail["status"] = outcome.status

    def failed(self, error: LorebotError) -> None:
        self.detail.update(outcome="failed", error=error.reason)


class AuditTrail:
    def __init__(self, pool: AsyncConnectionPool, settings: Settings) -> None:
        self._pool = pool
        self._settings = settings

    async def require_admin(self, actor: Actor, action: str, *, target: str) -> None:
        """Raise :class:`PermissionDenied` for a non-admin or an actor whose ids are not valid (a NUL in a user
        id is a forgery or a broken adapter, never an admin), auditing the refusal."""
        try:
            check_actor(actor)
        except InvalidInput as e:
            await self._refuse(actor, action, target, f"{action} refused: {e}")
        if not is_admin(actor, self._settings):
            await self._refuse(actor, action, target, f"{action} needs a knowledge-base admin")

    async def _refuse(self, actor: Actor, action: str, target: str, why: str) -> None:
        await audit.write(self._pool, actor, action, target, allowed=False, detail={})
        log.info("refused %s by %r: %s", action, actor.ref, why)
        raise PermissionDenied(why)

    @asynccontextmanager
    async def admin_action(self, actor: Actor, action: str, *, target: str) -> AsyncIterator[AuditEntry]:
        """Refuse non-admins (raising :class:`PermissionDenied`), run the action, and audit either way."""
        await self.require_admin(actor, action, target=target)
        entry = AuditEntry()
        try:
            yield entry
        except LorebotError as e:
            entry.failed(e)
            raise
        else:
            entry.detail.setdefault("outcome", "ok")
        finally:
            await audit.write(self._pool, actor, action, target, allowed=True, detail=entry.detail)
        log.info("%s by %s: %s", action, actor.ref, entry.detail)
