"""Training examples from answers people gave to handed-over questions and an admin or supporter saved ("Save as
answer", :mod:`bot.desk.service`): the saved document is the one numbered source, the person's reply is the
cited answer. Personal data is redacted when ``DESK_REDACT_PERSONAL_DATA`` is on."""

from __future__ import annotations

from collections.abc import Sequence

from bot.answer.prompt import SYSTEM_PROMPT, format_context, user_message
from bot.desk.redact import redact
from bot.desk.service import saved_document_text
from bot.domain import Passage
from bot.sft.example import Example, detect_lang
from bot.storage.desk import CuratedAnswer

SOURCE = "curated:desk"


def curated_example(saved: CuratedAnswer, *, redact_personal_data: bool) -> Example:
    clean = redact if redact_personal_data else str
    question, answer = clean(saved.question), clean(saved.answer)
    passage = Passage(
        chunk_id=0,
        document_id=saved.document_id or 0,
        title=question,
        source_uri=f"desk:curated:{saved.id}",
        text=saved_document_text(question, answer),
        score=1.0,
        scope=saved.scope,
    )
    messages = (
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": user_message(question, format_context([passage]))},
        {"role": "assistant", "content": f"{answer} [1]"},
    )
    return Example(messages=messages, source=SOURCE, group=f"{SOURCE}:{saved.id}", lang=detect_lang(question))


def curated_examples(saved: Sequence[CuratedAnswer], *, redact_personal_data: bool) -> list[Example]:
    return [curated_example(s, redact_personal_data=redact_personal_data) for s in saved]
