"""What a cycle collects (real Postgres): 👍 answers grouped by the document they cite, answers saved from the
support desk, personal data redacted, duplicates once, and nothing a promoted cycle already trained on."""

from __future__ import annotations

import pytest
from psycopg_pool import AsyncConnectionPool

from bot.answer.citations import citation
from bot.answer.prompt import format_context
from bot.domain import Actor, Answer, Passage, Question
from bot.settings import Settings
from bot.sft.config import SFTConfig
from bot.sft.cycle import CycleRun, new_examples, run_cycle
from bot.sft.errors import SFTError
from bot.sft.lora_runtime import LoraRuntime
from bot.sft.registry import ServingTarget
from bot.storage import conversations, cycles, feedback

ASKER, FAN, CRITIC = Actor("slack", "U1"), Actor("slack", "U2"), Actor("slack", "U3")


async def _rated(pool: AsyncConnectionPool, question: str, answer: str, *votes: tuple[Actor, int]) -> int:
    passage = Passage(chunk_id=1, document_id=1, title="Clinic", source_uri="kb://clinic", text="Open 9-17.", score=1)
    recorded = Answer(text=answer, citations=(), passages=(passage,), found=True, model="m")
    message = await conversations.record_message(
        pool, Question(question, ASKER, ("default",)), recorded, prompt_context=format_context([passage]), latency_ms=1
    )
    for actor, score in votes:
        await feedback.record(pool, message, actor, score)
    return message


def _run(settings: Settings, pool: AsyncConnectionPool) -> CycleRun:
    unused = ServingTarget(LoraRuntime("http://127.0.0.1:9/v1"), "lorebot")
    return CycleRun(settings, pool, SFTConfig(), settings, unused, unused, "cli:ops")


async def test_liked_and_saved_answers_are_collected_redacted_and_once(
    settings: Settings, pool: AsyncConnectionPool
) -> None:
    liked = await _rated(pool, "When do you open? mail jo@example.com", "At 9 [1].", (FAN, 1))
    await _rated(pool, "When do you open? mail jo@example.com", "At 9 [1].", (FAN, 1), (CRITIC, 1))  # same text
    await _rated(pool, "Do you open on Sundays?", "Yes [1].", (FAN, 1), (CRITIC, -1))  # not more 👍 than 👎
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO curated_answers (scope, question, answer, saved_by) "
            "VALUES ('default', 'Can I bring my dog? Call +1 (555) 010-2030', 'Only guide dogs.', 'slack:U9')"
        )

    collected = await new_examples(_run(settings, pool))

    assert len(collected) == 2
    rated, saved = sorted(collected, key=lambda e: e.message_id is None)
    assert rated.message_id == liked and rated.example["source"] == "feedback"
    question = rated.example["messages"][-2]["content"]
    assert "[email]" in question and "jo@example.com" not in question
    assert (
        saved.example["source"] == "curated:desk" and saved.example["messages"][-1]["content"] == "Only guide dogs. [1]"
    )
    assert "[phone]" in saved.example["messages"][-2]["content"]


async def test_redaction_off_keeps_the_text_as_rated(settings: Settings, pool: AsyncConnectionPool) -> None:
    await _rated(pool, "When do you open? mail jo@example.com", "At 9 [1].", (FAN, 1))

    [collected] = await new_examples(_run(settings.model_copy(update={"desk_redact_personal_data": False}), pool))

    assert "jo@example.com" in collected.example["messages"][-2]["content"]


async def test_an_answer_citing_a_document_is_grouped_by_that_document(
    settings: Settings, pool: AsyncConnectionPool
) -> None:
    async with pool.connection() as conn:
        await conn.execute("INSERT INTO scopes (name) VALUES ('default')")
        document = await (await conn.execute(
            "INSERT INTO documents (scope, source_uri, title, mime_type, content_hash, size_bytes, added_by) "
            "VALUES ('default', 'kb://hours', 'Hours', 'text/plain', 'x', 1, 't') RETURNING id"
        )).fetchone()  # fmt: skip
        chunk = await (await conn.execute(
            "INSERT INTO chunks (document_id, scope, ordinal, text, embedding) "
            "VALUES (%s, 'default', 0, 'Open 9-17.', array_fill(0.1, ARRAY[384])::vector) RETURNING id",
            (document[0],),
        )).fetchone()  # fmt: skip
    passage = Passage(chunk[0], document[0], "Hours", "kb://hours", "Open 9-17.", 1.0)
    answer = Answer("At 9 [1].", (citation(1, passage),), (passage,), True, "m")
    message = await conversations.record_message(
        pool, Question("When do you open?", ASKER, ("default",)), answer, prompt_context="ctx", latency_ms=1
    )
    await feedback.record(pool, message, FAN, 1)

    [collected] = await new_examples(_run(settings, pool))

    assert collected.example["group"] == "doc:kb://hours"


async def test_examples_a_promoted_cycle_trained_on_are_not_collected_again(
    settings: Settings, pool: AsyncConnectionPool
) -> None:
    await _rated(pool, "When do you open?", "At 9 [1].", (FAN, 1))
    first = await new_examples(_run(settings, pool))
    cycle = await cycles.start(pool, name="cycle-1", data_key="k", actor="cli:ops", examples=first)

    await cycles.finish(pool, cycle.id, "rejected", {})
    assert len(await new_examples(_run(settings, pool))) == 1  # a rejected cycle's data is still to learn
    async with pool.connection() as conn:
        await conn.execute("UPDATE sft_cycles SET state = 'promoted' WHERE id = %s", (cycle.id,))
    assert await new_examples(_run(settings, pool)) == []
    await _rated(pool, "Do you open on Sundays?", "No [1].", (FAN, 1))
    assert [e.example["messages"][-1]["content"] for e in await new_examples(_run(settings, pool))] == ["No [1]."]


async def test_a_second_cycle_while_one_runs_is_refused(settings: Settings, pool: AsyncConnectionPool) -> None:
    async with cycles.exclusive(pool) as first:
        assert first
        with pytest.raises(SFTError, match="another `lorebot sft cycle` is running"):
            await run_cycle(_run(settings, pool))
    outcome = await run_cycle(_run(settings, pool))  # the lock is free again
    assert outcome.state == "nothing-new"
