"""Text from users and platforms is validated once in the core: what cannot be stored or searched is refused with
a Lorebot error before any work, free text is cleaned, and no input ends in a foreign exception.

The property tests draw seeded random strings mixing the characters that break things (NUL, C0/C1 controls,
lone surrogates, bidi controls, astral and combining characters) with huge lengths.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator

import pytest

from bot.domain import Actor, ConversationKey, Question
from bot.errors import InvalidInput, InvalidQuestion, LorebotError, PermissionDenied
from bot.service import Lorebot
from bot.settings import Settings
from bot.validation import MAX_LABEL_CHARS, MAX_QUESTION_CHARS, check_label, clean_text, question_text

ADMIN = Actor("slack", "UADMIN", "Ada", is_admin=True)
MEMBER = Actor("slack", "UMEMBER", "Max")
SCOPES = ("default",)
HOURS = "The support desk is open on Saturdays from 10am to 2pm."

_POOLS = (
    [chr(c) for c in range(0x20, 0x7F)],  # printable ASCII
    [chr(c) for c in (*range(0x00, 0x20), *range(0x7F, 0xA0))],  # C0 and C1 controls, NUL included
    [chr(c) for c in range(0xD800, 0xE000, 37)],  # lone surrogates
    ["\u200e", "\u200f", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"],
    ["你", "好", "é", "ß", "\u0301", "\ufeff", "\uffff", "\U0001f600", "\U0010ffff", "\u3000", "\u2028"],
)


def random_text(rng: random.Random) -> str:
    """A short or (one time in ten) huge string drawn from a random mix of the pools above."""
    length = rng.choice([0, 1, 2, 5, 20, 80]) if rng.random() < 0.9 else rng.choice([5_000, 100_000])
    pools = rng.sample(_POOLS, rng.randint(1, len(_POOLS)))
    return "".join(rng.choice(rng.choice(pools)) for _ in range(length))


def encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@pytest.fixture
async def service(settings: Settings, fake_llm, embedder) -> AsyncIterator[Lorebot]:
    settings = settings.model_copy(
        update={"llm_base_url": fake_llm.base_url, "llm_model": "fake-model", "rate_limit_per_minute": 0}
    )
    service = await Lorebot.start(settings, embedder=embedder)
    await service.add_text(ADMIN, HOURS, title="Support hours", source_uri="wiki:hours")
    yield service
    await service.close()


async def audit_rows(service: Lorebot) -> list[tuple]:
    async with service.pool.connection() as conn:
        cursor = await conn.execute("SELECT user_id, action, target, allowed FROM audit_log ORDER BY id")
        return await cursor.fetchall()


# --- the validators over random Unicode ----------------------------------------------------------------------


def test_question_validator_returns_storable_text_or_raises_invalid_question() -> None:
    rng = random.Random(10)
    outcomes = {"accepted": 0, "refused": 0}
    for _ in range(3000):
        text = random_text(rng)
        try:
            checked = question_text(text)
        except InvalidQuestion:
            outcomes["refused"] += 1
            continue
        outcomes["accepted"] += 1
        assert checked == checked.strip() and 0 < len(checked) <= MAX_QUESTION_CHARS
        assert encodes(checked) and "\x00" not in checked
    assert outcomes["accepted"] > 300 and outcomes["refused"] > 300


def test_label_validator_accepts_only_short_printable_identifiers() -> None:
    rng = random.Random(11)
    accepted = 0
    for _ in range(3000):
        label = random_text(rng)
        try:
            checked = check_label(label, "user id")
        except InvalidInput as e:
            assert str(e).startswith("the user id ")
            continue
        accepted += 1
        assert checked == label and len(label) <= MAX_LABEL_CHARS and encodes(label)
        assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in label)
    assert accepted > 300


def test_text_cleaner_never_fails_and_always_gives_storable_text() -> None:
    rng = random.Random(12)
    for _ in range(3000):
        text = random_text(rng)
        cleaned = clean_text(text)
        assert encodes(cleaned) and "\x00" not in cleaned and len(cleaned) == len(text)
        if encodes(text) and "\x00" not in text:
            assert cleaned == text


async def test_random_questions_searches_and_documents_end_in_lorebot_errors_at_worst(service: Lorebot) -> None:
    rng = random.Random(13)
    admin_actions = 1  # the fixture's document
    for _ in range(12):
        text, title = random_text(rng), random_text(rng)
        for call in (
            service.search(MEMBER, text, SCOPES),
            service.ask(Question(text, MEMBER, SCOPES)),
            service.add_text(ADMIN, text + " desk", title=title),
        ):
            with contextlib.suppress(LorebotError):  # anything else fails the test
                await call
        admin_actions += 1
    assert len(await audit_rows(service)) == admin_actions


# --- the regressions from the probe --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "message"),
    [("\ud800", "not valid Unicode"), ("support\x00hours", "NUL"), ("x" * (MAX_QUESTION_CHARS + 1), "too long")],
)
async def test_search_text_gets_the_question_validation(service: Lorebot, query: str, message: str) -> None:
    with pytest.raises(InvalidQuestion, match=message):
        await service.search(MEMBER, query, SCOPES)


async def test_a_question_with_nul_is_refused_before_the_llm_is_called(service: Lorebot, fake_llm) -> None:
    with pytest.raises(InvalidQuestion, match="NUL"):
        await service.ask(Question("When\x00 is support open?", MEMBER, SCOPES))
    assert fake_llm.chat_requests == []


@pytest.mark.parametrize(
    ("actor", "conversation", "message"),
    [
        (Actor("slack", "U\x00X", "Max"), None, "the user id"),
        (Actor("slack\ud800", "UX", "Max"), None, "the platform"),
        (MEMBER, ConversationKey("local", "api", "c\x001"), "the conversation channel"),
        (MEMBER, ConversationKey("local", "api", "c1", "t" * (MAX_LABEL_CHARS + 1)), "the conversation thread"),
    ],
)
async def test_a_question_from_an_invalid_user_or_conversation_label_is_refused(
    service: Lorebot, fake_llm, actor: Actor, conversation: ConversationKey | None, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        await service.ask(Question("When is support open?", actor, SCOPES, conversation))
    assert fake_llm.chat_requests == []


async def test_a_display_name_with_nul_is_stored_with_a_replacement_character(service: Lorebot) -> None:
    answer = await service.ask(Question("When is support open on Saturdays?", Actor("slack", "U1", "M\x00ax"), SCOPES))

    async with service.pool.connection() as conn:
        cursor = await conn.execute("SELECT user_name FROM messages WHERE id = %s", (answer.message_id,))
        assert await cursor.fetchone() == ("M\ufffdax",)


async def test_a_title_with_nul_is_cleaned_stored_and_audited(service: Lorebot) -> None:
    result = await service.add_text(ADMIN, "Parking is in garage B.", title="Par\x00king\ud800")

    assert result.document.title == "Par\ufffdking\ufffd"
    assert (await audit_rows(service))[-1] == ("UADMIN", "add_text", "Par\ufffdking\ufffd", True)


async def test_an_admin_id_with_nul_is_permission_denied_and_the_refusal_audited(service: Lorebot) -> None:
    forged = Actor("slack", "UADMIN\x00", "Ada", is_admin=True)

    with pytest.raises(PermissionDenied, match="user id"):
        await service.add_text(forged, "Free pizza for everyone.", title="Pizza")

    assert (await audit_rows(service))[-1] == ("UADMIN\ufffd", "add_text", "Pizza", False)
    assert [d.title for d in await service.list_documents(MEMBER, SCOPES)] == ["Support hours"]


async def test_feedback_comment_with_nul_is_stored_with_a_replacement_character(service: Lorebot) -> None:
    answer = await service.ask(Question("When is support open on Saturdays?", MEMBER, SCOPES))

    await service.record_feedback(MEMBER, answer.message_id, -1, "wro\x00ng")

    async with service.pool.connection() as conn:
        cursor = await conn.execute("SELECT comment FROM feedback WHERE message_id = %s", (answer.message_id,))
        assert await cursor.fetchone() == ("wro\ufffdng",)
