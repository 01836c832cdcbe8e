"""Conversation history, the message record SFT rebuilds examples from, and feedback votes (real Postgres)."""

from __future__ import annotations

import pytest

from bot.answer.prompt import format_context
from bot.domain import Actor, Answer, Citation, ConversationKey, Passage, Question, Turn
from bot.errors import NotFound
from bot.storage import conversations, feedback

ALICE = Actor("slack", "U1", "Alice")
BOB = Actor("slack", "U2", "Bob")
THREAD = ConversationKey("slack", "T1", "C1", "1700000000.000100")


def passage(chunk_id: int, text: str) -> Passage:
    return Passage(chunk_id, 7, "Handbook", "https://kb.example/handbook", text, 0.5)


PASSAGES = (passage(11, "Lunch is at noon."), passage(12, "Dinner is at 7pm."))


def answer(text: str, *, found: bool = True) -> Answer:
    citation = Citation(2, 12, 7, "Handbook", "https://kb.example/handbook", "Dinner is at 7pm.")
    return Answer(
        text=text,
        citations=(citation,) if found else (),
        passages=PASSAGES,
        found=found,
        model="fake-model",
        search_query="dinner time",
    )


def question(text: str, key: ConversationKey | None = THREAD, actor: Actor = ALICE) -> Question:
    return Question(text, actor, ("default", "hr"), key)


async def test_history_returns_the_last_turns_oldest_first(pool) -> None:
    for n in range(5):
        await conversations.record_message(pool, question(f"q{n}"), answer(f"a{n}"), prompt_context="", latency_ms=10)

    turns = await conversations.history(pool, THREAD, limit=3)

    assert turns == [Turn("q2", "a2"), Turn("q3", "a3"), Turn("q4", "a4")]


async def test_history_is_kept_per_thread(pool) -> None:
    other = ConversationKey("slack", "T1", "C1", "1700000000.000999")
    await conversations.record_message(pool, question("here"), answer("a"), prompt_context="", latency_ms=1)
    await conversations.record_message(pool, question("there", other), answer("b"), prompt_context="", latency_ms=1)

    assert await conversations.history(pool, THREAD, limit=10) == [Turn("here", "a")]
    assert await conversations.history(pool, other, limit=10) == [Turn("there", "b")]


async def test_unknown_conversation_has_no_history_and_does_not_exist(pool) -> None:
    assert await conversations.history(pool, THREAD, limit=4) == []
    assert await conversations.history(pool, THREAD, limit=0) == []
    assert not await conversations.exists(pool, THREAD)


async def test_recording_an_answer_creates_the_conversation_once(pool) -> None:
    first = await conversations.record_message(pool, question("q1"), answer("a1"), prompt_context="", latency_ms=5)
    second = await conversations.record_message(
        pool, question("q2", actor=BOB), answer("a2"), prompt_context="", latency_ms=5
    )

    assert second > first
    assert await conversations.exists(pool, THREAD)
    async with pool.connection() as conn:
        rows = await (await conn.execute("SELECT count(*) FROM conversations")).fetchone()
    assert rows[0] == 1


async def test_message_record_holds_what_sft_needs_to_rebuild_the_example(pool) -> None:
    message_id = await conversations.record_message(
        pool,
        question("When is dinner?"),
        answer("At 7pm [2]."),
        prompt_context=format_context(PASSAGES),
        latency_ms=321,
    )

    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT platform, user_id, user_name, question, search_query, answer, found, scopes, "
            "retrieved_chunk_ids, cited_chunk_ids, prompt_context, model, latency_ms FROM messages WHERE id = %s",
            (message_id,),
        )
        row = await cursor.fetchone()
    assert row == (
        "slack", "U1", "Alice", "When is dinner?", "dinner time", "At 7pm [2].", True, ["default", "hr"],
        [11, 12], [12], format_context(PASSAGES), "fake-model", 321,
    )  # fmt: skip


async def test_answer_without_conversation_is_recorded_standalone(pool) -> None:
    message_id = await conversations.record_message(
        pool, question("cli", key=None), answer("x"), prompt_context="", latency_ms=1
    )

    async with pool.connection() as conn:
        row = await (await conn.execute("SELECT conversation_id FROM messages WHERE id = %s", (message_id,))).fetchone()
    assert row == (None,)


async def test_not_found_answer_is_recorded_with_no_citations(pool) -> None:
    empty = Answer("I could not find this in the knowledge base.", (), (), False, "fake-model")
    message_id = await conversations.record_message(pool, question("?"), empty, prompt_context="", latency_ms=1)

    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT found, retrieved_chunk_ids, cited_chunk_ids, prompt_context FROM messages WHERE id = %s",
            (message_id,),
        )
        assert await cursor.fetchone() == (False, [], [], "")


async def votes(pool) -> list[tuple]:
    async with pool.connection() as conn:
        cursor = await conn.execute("SELECT message_id, platform, user_id, score, comment FROM feedback ORDER BY id")
        return await cursor.fetchall()


async def test_one_vote_per_user_per_message_and_voting_again_changes_it(pool) -> None:
    message_id = await conversations.record_message(pool, question("q"), answer("a"), prompt_context="", latency_ms=1)

    await feedback.record(pool, message_id, ALICE, 1, "spot on")
    await feedback.record(pool, message_id, ALICE, -1, "")
    await feedback.record(pool, message_id, BOB, 1, "")

    assert await votes(pool) == [
        (message_id, "slack", "U1", -1, "spot on"),  # a bare re-vote keeps the earlier comment
        (message_id, "slack", "U2", 1, ""),
    ]


async def test_a_new_comment_replaces_the_old_one(pool) -> None:
    message_id = await conversations.record_message(pool, question("q"), answer("a"), prompt_context="", latency_ms=1)

    await feedback.record(pool, message_id, ALICE, 1, "good")
    await feedback.record(pool, message_id, ALICE, -1, "actually outdated")

    assert await votes(pool) == [(message_id, "slack", "U1", -1, "actually outdated")]


@pytest.mark.parametrize("message_id", [999_999, 2**63 + 5])
async def test_feedback_for_an_unknown_answer_is_not_found(pool, message_id: int) -> None:
    with pytest.raises(NotFound, match=str(message_id)):
        await feedback.record(pool, message_id, ALICE, 1, "")
    assert await votes(pool) == []
