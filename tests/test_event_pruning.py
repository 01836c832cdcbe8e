"""``processed_events`` does not grow forever: every ``lorebot serve`` process forgets old claims on a schedule
(real Postgres; the platforms stop re-delivering an event within hours, claims are kept for days)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

from psycopg_pool import AsyncConnectionPool

from bot.inflight import InFlight
from bot.ops.lifecycle import pruning_events, run_service
from bot.service import Lorebot
from bot.settings import Settings
from bot.storage import events
from tests.fixtures.llm import FakeLLM

WEEK = timedelta(days=7)


async def claim_aged(pool: AsyncConnectionPool, event_id: str, age: timedelta) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO processed_events (platform, event_id, claimed_at) VALUES ('slack', %(id)s, now() - %(age)s)",
            {"id": event_id, "age": age},
        )


async def claimed(pool: AsyncConnectionPool) -> set[str]:
    async with pool.connection() as conn:
        cursor = await conn.execute("SELECT event_id FROM processed_events")
        return {row[0] for row in await cursor.fetchall()}


async def eventually(condition: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Re-check ``condition`` until it holds; fail after ``timeout`` s."""
    async with asyncio.timeout(timeout):
        while not await condition():
            await asyncio.sleep(0.02)


async def test_forget_older_than_drops_only_claims_past_the_age(pool: AsyncConnectionPool) -> None:
    await claim_aged(pool, "old", WEEK + timedelta(minutes=1))
    await claim_aged(pool, "recent", WEEK - timedelta(minutes=1))
    assert await events.claim(pool, "slack", "new") is True

    assert await events.forget_older_than(pool, WEEK) == 1
    assert await claimed(pool) == {"recent", "new"}


async def test_pruning_runs_again_on_its_schedule(pool: AsyncConnectionPool) -> None:
    await claim_aged(pool, "old-1", timedelta(days=30))
    await claim_aged(pool, "recent", timedelta(hours=1))
    async with pruning_events(pool, every_s=0.05, max_age=WEEK):
        await eventually(lambda: _absent(pool, "old-1"))
        await claim_aged(pool, "old-2", timedelta(days=30))  # arrives after the first run
        await eventually(lambda: _absent(pool, "old-2"))
    assert await claimed(pool) == {"recent"}


async def test_every_served_connector_prunes_old_claims(
    settings: Settings, fake_llm: FakeLLM, embedder: object, pool: AsyncConnectionPool
) -> None:
    await claim_aged(pool, "old", timedelta(days=30))
    await claim_aged(pool, "recent", timedelta(hours=1))
    served = settings.model_copy(update={"llm_base_url": fake_llm.base_url, "health_port": 0})

    async def connector(service: Lorebot, inflight: InFlight) -> None:  # returns once the old claim is gone
        await eventually(lambda: _absent(service.pool, "old"))

    await asyncio.wait_for(run_service(served, connector), 60)
    assert await claimed(pool) == {"recent"}


async def _absent(pool: AsyncConnectionPool, event_id: str) -> bool:
    return event_id not in await claimed(pool)
