"""👍-rated answers from real Postgres become training examples with the exact prompt the chain sent."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from bot.answer.prompt import build_messages, format_context
from bot.domain import Actor, Answer, ConversationKey, Passage, Question, Turn
from bot.sft.feedback import feedback_examples
from bot.storage import conversations, feedback
from bot.storage.sft import rated_answers

ALICE = Actor("slack", "U1", "alice")
BOB = Actor("slack", "U2", "bob")
KEY = ConversationKey("slack", "T1", "C1", "thread-1")
PASSAGES = (
    Passage(
        chunk_id=11, document_id=1, title="Handbook", source_uri="kb://handbook", text="Standup is at 10am.", score=1
    ),
    Passage(chunk_id=12, document_id=2, title="FAQ <b>", source_uri="kb://faq", text="Lunch is at noon.", score=0.5),
)


async def _answered(
    pool: AsyncConnectionPool, text: str, answer: str, *, found: bool = True, key: ConversationKey | None = KEY
) -> int:
    question = Question(text=text, actor=ALICE, scopes=("default",), conversation=key)
    reply = Answer(text=answer, citations=(), passages=PASSAGES if found else (), found=found, model="m")
    context = format_context(reply.passages)
    return await conversations.record_message(pool, question, reply, prompt_context=context, latency_ms=5)


async def test_only_answers_with_net_positive_votes_are_used(pool: AsyncConnectionPool) -> None:
    liked = await _answered(pool, "When is standup?", "At 10am [1].")
    disputed = await _answered(pool, "When is lunch?", "At noon [2].")
    await _answered(pool, "Unrated?", "Yes [1].")
    not_found = await _answered(pool, "Where is Mars?", "I could not find this.", found=False)
    await feedback.record(pool, liked, ALICE, 1)
    await feedback.record(pool, disputed, ALICE, 1)
    await feedback.record(pool, disputed, BOB, -1)
    await feedback.record(pool, not_found, ALICE, 1)
    rows = await rated_answers(pool, history_turns=4, limit=100)
    assert [r.id for r in rows] == [liked]
    assert rows[0].scopes == ["default"]


async def test_rebuilt_example_matches_the_prompt_the_chain_built(pool: AsyncConnectionPool) -> None:
    first = await _answered(pool, "When is standup?", "At 10am [1].")
    second = await _answered(pool, "And lunch?", "At noon [2].")
    await feedback.record(pool, second, ALICE, 1)
    await feedback.record(pool, first, BOB, 1)
    rows = await rated_answers(pool, history_turns=4, limit=100)
    later = next(e for e in feedback_examples(rows) if e.messages[-1]["content"] == "At noon [2].")
    history = [Turn("When is standup?", "At 10am [1].")]
    expected = build_messages("And lunch?", PASSAGES, history)
    assert list(later.messages[:-1]) == expected
    assert later.source == "feedback"
    assert later.group == f"feedback:conversation:{rows[0].conversation_id}"


async def test_history_is_limited_like_the_chain(pool: AsyncConnectionPool) -> None:
    for n in range(4):
        await _answered(pool, f"Question {n}?", f"Answer {n} [1].")
    last = await _answered(pool, "Last?", "Last [1].")
    await feedback.record(pool, last, ALICE, 1)
    [row] = await rated_answers(pool, history_turns=2, limit=100)
    assert row.history == [["Question 2?", "Answer 2 [1]."], ["Question 3?", "Answer 3 [1]."]]
