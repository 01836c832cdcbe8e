"""Claiming platform event ids so each event is handled exactly once, across processes and restarts."""

from __future__ import annotations

from datetime import timedelta

import psycopg
from psycopg_pool import AsyncConnectionPool

from bot.errors import StorageError

CLAIM_EVENT = """
INSERT INTO processed_events (platform, event_id) VALUES (%(platform)s, %(event_id)s)
ON CONFLICT DO NOTHING
"""
FORGET_OLD_EVENTS = "DELETE FROM processed_events WHERE claimed_at < now() - %(age)s"
CLAIM_RETENTION = timedelta(days=7)
"""How long a claim is kept: platforms stop re-delivering an event within hours (Slack), or never (Discord)."""


async def claim(pool: AsyncConnectionPool, platform: str, event_id: str) -> bool:
    """True if this call is the first to claim ``event_id``; the primary key arbitrates between replicas."""
    try:
        async with pool.connection() as conn:
            cursor = await conn.execute(CLAIM_EVENT, {"platform": platform, "event_id": event_id})
            return cursor.rowcount == 1
    except psycopg.Error as e:
        raise StorageError(f"cannot record event {event_id}: {e}") from e


async def forget_older_than(pool: AsyncConnectionPool, age: timedelta = CLAIM_RETENTION) -> int:
    """Drop claims older than ``age`` and return how many; raises :class:`StorageError`."""
    try:
        async with pool.connection() as conn:
            cursor = await conn.execute(FORGET_OLD_EVENTS, {"age": age})
            return cursor.rowcount
    except psycopg.Error as e:
        raise StorageError(f"cannot forget old event claims: {e}") from e
