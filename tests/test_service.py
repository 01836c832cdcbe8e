"""The Lorebot facade end to end: real Postgres, real embeddings, the fake LLM over real HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from bot.domain import Actor, Answer, AnswerDelta, ConversationKey, Place, Question
from bot.errors import (
    AnswerError,
    IngestError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    RateLimited,
    Redelivered,
    UnsafeURLError,
)
from bot.ingest.pipeline import TextSource
from bot.service import Lorebot
from bot.settings import Settings

ADMIN = Actor("slack", "UADMIN", "Ada", is_admin=True)
MEMBER = Actor("slack", "UMEMBER", "Max")
HOURS = (
    "The support desk is open Monday to Friday from 9am to 6pm and on Saturdays from 10am to 2pm. "
    "It is closed on Sundays."
)
SATURDAY = "When is support open on Saturday?"


@pytest.fixture
async def service(settings: Settings, fake_llm, embedder) -> AsyncIterator[Lorebot]:
    settings = settings.model_copy(update={"llm_base_url": fake_llm.base_url, "llm_model": "fake-model"})
    service = await Lorebot.start(settings, embedder=embedder)
    yield service
    await service.close()


@pytest.fixture
async def strict_service(settings: Settings, fake_llm, embedder) -> AsyncIterator[Lorebot]:
    """A service allowing one question per user per minute."""
    settings = settings.model_copy(update={"llm_base_url": fake_llm.base_url, "rate_limit_per_minute": 1})
    service = await Lorebot.start(settings, embedder=embedder)
    yield service
    await service.close()


async def _add_hours(service: Lorebot, scope: str = "default") -> int:
    result = await service.add_text(ADMIN, HOURS, title="Support hours", scope=scope, source_uri="wiki:hours")
    return result.document.id


async def test_question_is_answered_with_a_citation_to_the_stored_document(service: Lorebot, fake_llm) -> None:
    await _add_hours(service)
    fake_llm.reply("On Saturdays the desk is open from 10am to 2pm [1].")

    answer = await service.ask(Question("When is support open on Saturday?", MEMBER, ("default",)))

    assert answer.found and answer.message_id is not None
    assert [(c.number, c.title, c.source_uri) for c in answer.citations] == [(1, "Support hours", "wiki:hours")]
    system, user = fake_llm.chat_requests[-1]["messages"][0], fake_llm.chat_requests[-1]["messages"][-1]
    assert system["role"] == "system" and "10am to 2pm" in user["content"]


async def test_streaming_yields_text_pieces_then_the_recorded_answer(service: Lorebot, fake_llm) -> None:
    await _add_hours(service)
    fake_llm.reply("Open 10am to 2pm on Saturdays [1].")

    events = [e async for e in service.stream(Question("Saturday hours?", MEMBER, ("default",)))]

    deltas, final = events[:-1], events[-1]
    assert len(deltas) > 1 and all(isinstance(d, AnswerDelta) for d in deltas)
    assert isinstance(final, Answer) and final.message_id is not None
    assert "".join(d.text for d in deltas).strip() == "Open 10am to 2pm on Saturdays [1]."


async def test_follow_up_in_a_conversation_sends_history(service: Lorebot, fake_llm) -> None:
    await _add_hours(service)
    key = ConversationKey("slack", "T1", "C1", "1700000000.000100")
    assert not await service.knows_conversation(key)
    fake_llm.reply("Saturdays 10am to 2pm [1].")
    await service.ask(Question("When is support open on Saturday?", MEMBER, ("default",), key))
    assert await service.knows_conversation(key)

    fake_llm.script(lambda body: "support desk opening hours Sunday" if len(body["messages"]) == 2 else "Closed [1].")
    await service.ask(Question("And on Sunday?", MEMBER, ("default",), key))

    contents = [m["content"] for m in fake_llm.chat_requests[-1]["messages"]]
    assert "When is support open on Saturday?" in contents
    assert "Saturdays 10am to 2pm [1]." in contents


async def test_nothing_relevant_answers_not_found_without_calling_the_llm(service: Lorebot, fake_llm) -> None:
    await _add_hours(service)
    answer = await service.ask(Question("quantum chromodynamics lattice gauge", MEMBER, ("default",)))
    assert not answer.found and answer.citations == ()
    assert fake_llm.chat_requests == []


async def test_other_scopes_are_never_used(service: Lorebot, fake_llm) -> None:
    await _add_hours(service, scope="support")
    answer = await service.ask(Question("When is support open on Saturday?", MEMBER, ("legal",)))
    assert not answer.found
    assert await service.search(MEMBER, "support Saturday", ("legal",)) == []


async def test_the_core_resolves_a_places_scopes_the_most_specific_mapping_first(
    settings: Settings, fake_llm, embedder
) -> None:
    mapped = {"slack:T1": ["support"], "slack:T1:C9": ["legal"]}
    settings = settings.model_copy(update={"llm_base_url": fake_llm.base_url, "scope_map": mapped})
    service = await Lorebot.start(settings, embedder=embedder)
    try:
        await _add_hours(service, scope="support")
        fake_llm.reply("From 10am to 2pm [1].", "From 10am to 2pm [1].")

        in_workspace = await service.ask(Question(SATURDAY, MEMBER, place=Place("slack", "T1", "C1")))
        in_legal_channel = await service.ask(Question(SATURDAY, MEMBER, place=Place("slack", "T1", "C9")))
        elsewhere = await service.ask(Question(SATURDAY, MEMBER, place=Place("slack", "T2", "C1")))
        named = await service.ask(Question(SATURDAY, MEMBER, ("support",), place=Place("slack", "T1", "C9")))

        assert (in_workspace.found, in_legal_channel.found, elsewhere.found, named.found) == (True, False, False, True)
        assert len(fake_llm.chat_requests) == 2
        async with service.pool.connection() as conn:
            rows = await (await conn.execute("SELECT scopes FROM messages ORDER BY id")).fetchall()
        assert [row[0] for row in rows] == [["support"], ["legal"], ["default"], ["support"]]
    finally:
        await service.close()


async def test_a_redelivered_event_is_answered_once_even_when_deliveries_race(service: Lorebot, fake_llm) -> None:
    await _add_hours(service)
    fake_llm.reply("From 10am to 2pm [1].")
    place = Place("slack", "T1", "C1", event_id="Ev42")

    outcomes = await asyncio.gather(
        *(service.ask(Question(SATURDAY, MEMBER, place=place)) for _ in range(3)), return_exceptions=True
    )

    assert sorted(type(outcome).__name__ for outcome in outcomes) == ["Answer", "Redelivered", "Redelivered"]
    assert len(fake_llm.chat_requests) == 1
    with pytest.raises(Redelivered):
        await service.ask(Question(SATURDAY, MEMBER, place=place))
    other_platform = await service.ask(Question(SATURDAY, MEMBER, place=Place("discord", "G1", "C1", event_id="Ev42")))
    assert other_platform.found


async def test_an_accepted_question_is_answered_without_claiming_its_event_again(service: Lorebot, fake_llm) -> None:
    """What an adapter does that shows a placeholder first: accept, then stream the accepted question."""
    await _add_hours(service)
    question = Question(SATURDAY, MEMBER, place=Place("slack", "T1", "C1", event_id="Ev7"))

    accepted = await service.accept(question)

    assert accepted.scopes == ("default",) and accepted.place == Place("slack", "T1", "C1")
    assert await service.accept(accepted) == accepted
    assert (await service.ask(accepted)).found
    with pytest.raises(Redelivered):
        await service.accept(question)


async def test_hostile_place_ids_are_refused_before_anything_is_claimed(service: Lorebot) -> None:
    for place in (Place("slack", "T1", "C1", event_id="Ev\x001"), Place("slack", "T1", "C" * 500, event_id="Ev1")):
        with pytest.raises(InvalidInput, match="place's"):
            await service.ask(Question(SATURDAY, MEMBER, place=place))
    assert await service.first_delivery(Place("slack", event_id="Ev1"))
    assert not await service.first_delivery(Place("slack", event_id="Ev1"))
    assert await service.first_delivery(Place("slack"))  # nothing to claim: never a re-delivery


async def test_non_admin_cannot_add_or_remove_and_is_audited(service: Lorebot) -> None:
    document_id = await _add_hours(service)
    with pytest.raises(PermissionDenied):
        await service.add_text(MEMBER, "Free pizza for everyone.", title="Pizza")
    with pytest.raises(PermissionDenied):
        await service.remove_document(MEMBER, document_id, ("default",))
    assert [d.id for d in await service.list_documents(MEMBER, ("default",))] == [document_id]
    async with service.pool.connection() as conn:
        rows = await (await conn.execute("SELECT user_id, action, allowed FROM audit_log ORDER BY id")).fetchall()
    assert rows == [
        ("UADMIN", "add_text", True),
        ("UMEMBER", "add_text", False),
        ("UMEMBER", "remove_document", False),
    ]


async def test_remove_outside_the_callers_scopes_is_not_found(service: Lorebot) -> None:
    document_id = await _add_hours(service, scope="support")
    with pytest.raises(NotFound):
        await service.remove_document(ADMIN, document_id, ("legal",))
    removed = await service.remove_document(ADMIN, document_id, ("support",))
    assert removed.id == document_id
    assert await service.list_documents(ADMIN, ("support",)) == []


async def test_feedback_is_stored_once_per_user_and_unknown_answers_are_not_found(service: Lorebot, fake_llm) -> None:
    await _add_hours(service)
    answer = await service.ask(Question("Saturday hours?", MEMBER, ("default",)))
    await service.record_feedback(MEMBER, answer.message_id, 1)
    await service.record_feedback(MEMBER, answer.message_id, -1, "too short")
    async with service.pool.connection() as conn:
        rows = await (await conn.execute("SELECT user_id, score, comment FROM feedback")).fetchall()
    assert rows == [("UMEMBER", -1, "too short")]
    with pytest.raises(NotFound):
        await service.record_feedback(MEMBER, 999_999, 1)


async def test_rate_limit_refuses_a_user_asking_too_often(strict_service: Lorebot) -> None:
    await strict_service.ask(Question("Saturday hours?", MEMBER, ("default",)))
    with pytest.raises(RateLimited):
        await strict_service.ask(Question("Saturday hours?", MEMBER, ("default",)))
    await strict_service.ask(Question("Saturday hours?", ADMIN, ("default",)))


async def test_llm_outage_is_a_clear_error_within_seconds(service: Lorebot, fake_llm) -> None:
    await _add_hours(service)
    fake_llm.fail_with(503)
    started = time.monotonic()
    with pytest.raises(AnswerError):
        await service.ask(Question("When is support open on Saturday?", MEMBER, ("default",)))
    assert time.monotonic() - started < 10


async def test_bulk_add_audits_each_document_and_refuses_non_admins(service: Lorebot) -> None:
    items = [TextSource("The desk opens at nine.", title="Hours"), TextSource("", title="Empty")]
    with pytest.raises(PermissionDenied):
        [outcome async for _, outcome in service.add_many(MEMBER, items)]
    outcomes = [outcome async for _, outcome in service.add_many(ADMIN, items)]
    assert outcomes[0].status == "added" and isinstance(outcomes[1], IngestError)
    async with service.pool.connection() as conn:
        query = "SELECT user_id, action, target, allowed FROM audit_log ORDER BY id"
        rows = await (await conn.execute(query)).fetchall()
    assert rows == [
        ("UMEMBER", "add_many", "2 sources", False),
        ("UADMIN", "add_text", "Hours", True),
        ("UADMIN", "add_text", "Empty", True),
    ]


async def test_a_url_with_credentials_is_refused_audited_redacted_and_never_logged(
    service: Lorebot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    with pytest.raises(UnsafeURLError, match="credentials") as refused:
        await service.add_url(ADMIN, "https://alice:s3cret@kb.example/handbook")

    assert "s3cret" not in str(refused.value)
    async with service.pool.connection() as conn:
        rows = await (await conn.execute("SELECT action, target, detail FROM audit_log ORDER BY id")).fetchall()
    assert rows == [
        ("add_url", "https://***@kb.example/handbook", {"outcome": "failed", "error": "URL refused"}),
    ]
    assert await service.list_documents(ADMIN, ("default",)) == []
    assert not [r for r in caplog.records if "s3cret" in r.getMessage() or "alice" in r.getMessage()]


async def test_a_text_source_uri_with_credentials_is_stored_redacted(service: Lorebot) -> None:
    result = await service.add_text(ADMIN, HOURS, title="Hours", source_uri="https://bob:hunter2@wiki.example/hours")

    assert result.document.source_uri == "https://***@wiki.example/hours"
