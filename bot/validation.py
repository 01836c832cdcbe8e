"""One validation of the text users and platforms send, the same for every adapter.

Postgres text cannot hold NUL, UTF-8 cannot encode lone surrogates (what a broken client or the JSON escape
``"\\ud800"`` produces), and the tokenizer, the embedder and the database each fail on them in their own foreign
way. So the service checks questions and search text (:func:`question_text`) and ids (:func:`check_label`) before
any work, and cleans the free text it stores or shows (:func:`clean_text`): no such input gets further.
"""

from __future__ import annotations

import re
from dataclasses import replace

from bot.domain import Actor, Question
from bot.errors import InvalidInput, InvalidQuestion

MAX_QUESTION_CHARS = 4000
MAX_LABEL_CHARS = 200
"""Ids and labels (platform, user, workspace, channel, thread) are short machine strings: longer is a client bug."""
REPLACEMENT_CHARACTER = "\ufffd"

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def question_text(text: str, *, what: str = "question") -> str:
    """``text`` without surrounding blanks; raises :class:`InvalidQuestion` when it is empty, longer than
    :data:`MAX_QUESTION_CHARS`, or holds NUL or lone surrogates."""
    text = text.strip()
    if not text:
        raise InvalidQuestion(f"the {what} is empty")
    if len(text) > MAX_QUESTION_CHARS:
        raise InvalidQuestion(f"the {what} is too long ({len(text)} characters, at most {MAX_QUESTION_CHARS})")
    if _LONE_SURROGATE.search(text):
        raise InvalidQuestion(f"the {what} is not valid Unicode (it holds a lone surrogate)")
    if "\x00" in text:
        raise InvalidQuestion(f"the {what} holds a NUL character")
    return text


def check_label(value: str, what: str) -> str:
    """``value`` when it can serve as an id: at most :data:`MAX_LABEL_CHARS`, valid Unicode, no control
    characters; raises :class:`InvalidInput` naming ``what`` otherwise."""
    if len(value) > MAX_LABEL_CHARS:
        raise InvalidInput(f"the {what} is longer than {MAX_LABEL_CHARS} characters")
    if _LONE_SURROGATE.search(value):
        raise InvalidInput(f"the {what} is not valid Unicode (it holds a lone surrogate)")
    if _CONTROL.search(value):
        raise InvalidInput(f"the {what} holds a control character")
    return value


def check_actor(actor: Actor) -> None:
    """Raise :class:`InvalidInput` unless the actor's platform and user id are valid ids."""
    check_label(actor.platform, "platform")
    check_label(actor.user_id, "user id")


def checked_question(question: Question) -> Question:
    """``question`` as the core may use it: text checked and stripped, ids checked, display name cleaned.

    Raises :class:`InvalidQuestion` for the text, :class:`InvalidInput` for the user or conversation ids.
    """
    text = question_text(question.text)
    check_actor(question.actor)
    if question.conversation is not None:
        for part in ("platform", "workspace", "channel", "thread"):
            check_label(getattr(question.conversation, part), f"conversation {part}")
    actor = replace(question.actor, display_name=clean_text(question.actor.display_name))
    return replace(question, text=text, actor=actor)


def clean_text(text: str) -> str:
    """Free text to store or show (titles, names, comments, audit targets): NUL and lone surrogates become
    U+FFFD, so it can always be stored and it still shows that something was there."""
    return _UNSTORABLE.sub(REPLACEMENT_CHARACTER, text)
