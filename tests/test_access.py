"""Admin checks, the audit log, event claims, scopes and rate limits: the rules every platform shares."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from bot.access import AuditTrail, is_admin
from bot.domain import Actor, Document, IngestResult, Place
from bot.errors import IngestError, PermissionDenied, RateLimited
from bot.ratelimit import RateLimiter
from bot.scopes import resolve_scopes
from bot.settings import Settings
from bot.storage import events

ADMIN = Actor("slack", "UADMIN", "Ada", is_admin=True)
MEMBER = Actor("slack", "UMEMBER", "Max")


def _document() -> Document:
    return Document(7, "support", "faq.md", "FAQ", "text/markdown", "h", 10, 3, ADMIN.ref, datetime.now(UTC))


async def _audit_rows(pool) -> list[tuple]:
    async with pool.connection() as conn:
        cursor = await conn.execute("SELECT user_id, action, target, allowed, detail FROM audit_log ORDER BY id")
        return await cursor.fetchall()


async def test_non_admin_is_refused_and_the_refusal_is_audited(pool, settings: Settings) -> None:
    trail = AuditTrail(pool, settings)
    ran = False
    with pytest.raises(PermissionDenied, match="add_url needs a knowledge-base admin"):
        async with trail.admin_action(MEMBER, "add_url", target="https://example.com"):
            ran = True
    assert not ran
    assert await _audit_rows(pool) == [("UMEMBER", "add_url", "https://example.com", False, {})]


async def test_admin_action_is_audited_with_its_outcome(pool, settings: Settings) -> None:
    trail = AuditTrail(pool, settings)
    async with trail.admin_action(ADMIN, "add_text", target="faq.md") as entry:
        entry.record(IngestResult(_document(), "added"))
    [row] = await _audit_rows(pool)
    assert row[:4] == ("UADMIN", "add_text", "faq.md", True)
    assert row[4] == {"document_id": 7, "scope": "support", "chunks": 3, "status": "added", "outcome": "ok"}


async def test_failed_admin_action_is_audited_and_the_error_propagates(pool, settings: Settings) -> None:
    trail = AuditTrail(pool, settings)
    with pytest.raises(IngestError):
        async with trail.admin_action(ADMIN, "add_file", target="x.bin"):
            raise IngestError("binary file")
    [row] = await _audit_rows(pool)
    assert row[3] is True and row[4] == {"outcome": "failed", "error": "document rejected"}


def test_admin_list_in_settings_grants_admin() -> None:
    settings = Settings(_env_file=None, admin_user_ids="slack:UMEMBER, discord:42")
    assert is_admin(MEMBER, settings)
    assert not is_admin(Actor("slack", "UOTHER"), settings)


async def test_an_event_id_is_claimed_once_even_by_concurrent_claimers(pool) -> None:
    results = await asyncio.gather(*(events.claim(pool, "slack", "Ev1") for _ in range(5)))
    assert sorted(results) == [False, False, False, False, True]
    assert await events.claim(pool, "discord", "Ev1") is True


def test_most_specific_scope_mapping_wins_and_unmapped_places_use_the_default() -> None:
    settings = Settings(
        _env_file=None,
        default_scope="general",
        scope_map={"slack:T1": ["support"], "slack:T1:C9": ["legal"], "discord:G1": ["docs", "faq"]},
    )
    assert resolve_scopes(settings, Place("slack", "T1", "C1")) == ("support",)
    assert resolve_scopes(settings, Place("slack", "T1", "C9")) == ("legal",)
    assert resolve_scopes(settings, Place("discord", "G1", "anything")) == ("docs", "faq")
    assert resolve_scopes(settings, Place("discord", "G2", "anything")) == ("general",)


def test_rate_limiter_refuses_past_the_limit_and_refills_over_time() -> None:
    now = [0.0]
    limiter = RateLimiter(2, clock=lambda: now[0])
    limiter.check("u")
    limiter.check("u")
    with pytest.raises(RateLimited) as refused:
        limiter.check("u")
    assert refused.value.retry_after == pytest.approx(30.0)
    limiter.check("someone-else")
    now[0] = 30.0
    limiter.check("u")


def test_rate_limit_zero_disables_limiting() -> None:
    limiter = RateLimiter(0)
    for _ in range(100):
        limiter.check("u")
