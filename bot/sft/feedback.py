"""Training examples from answers users rated 👍, rebuilt with the exact prompt the chain sent: the same system
prompt, the same history turns and the recorded numbered context (see :func:`bot.answer.prompt.build_messages`)."""

from __future__ import annotations

from collections.abc import Sequence

from bot.answer.prompt import SYSTEM_PROMPT, user_message
from bot.settings import Settings
from bot.sft.example import Example, detect_lang
from bot.storage.sft import RatedAnswer

SOURCE = "feedback"


def feedback_example(rated: RatedAnswer) -> Example:
    messages = [{"role": "system", "content": SYSTEM_PROMPT}]
    for question, answer in rated.history:
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    messages.append({"role": "user", "content": user_message(rated.question, rated.prompt_context)})
    messages.append({"role": "assistant", "content": rated.answer})
    group = f"{SOURCE}:conversation:{rated.conversation_id}" if rated.conversation_id else f"{SOURCE}:{rated.id}"
    return Example(messages=tuple(messages), source=SOURCE, group=group, lang=detect_lang(rated.question))


def feedback_examples(rated: Sequence[RatedAnswer]) -> list[Example]:
    return [feedback_example(r) for r in rated]


async def load_feedback_examples(settings: Settings, *, limit: int) -> list[Example]:
    """Rated answers (history as deep as the chain uses) and saved answers from the configured database."""
    from bot.sft.curated import curated_examples
    from bot.storage.desk import curated_answers
    from bot.storage.pool import open_pool, resolve_database_url
    from bot.storage.sft import rated_answers

    pool = await open_pool(resolve_database_url(settings), settings)
    try:
        rated = feedback_examples(await rated_answers(pool, history_turns=settings.history_turns, limit=limit))
        saved = await curated_answers(pool, limit=limit)  # people's answers saved with "Save as answer"
        return rated + curated_examples(saved, redact_personal_data=settings.desk_redact_personal_data)
    finally:
        await pool.close()
