"""The desk in the core: channel behaviour and scope settings from chat, hand-over, saving a person's answer, and
the report's figures on a seeded database (real Postgres, real embeddings)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from bot.answer.prompt import SYSTEM_PROMPT
from bot.desk import texts
from bot.desk.policy import ChannelMode, ChannelPolicy, HandoverTarget, should_answer
from bot.desk.report import parse_since, report_csv, report_payload
from bot.domain import Actor, ConversationKey, Place, Question
from bot.errors import InvalidInput, NotFound, PermissionDenied
from bot.service import Lorebot
from bot.settings import Settings

ADMIN = Actor("slack", "UADMIN", is_admin=True)
USER = Actor("slack", "UUSER")
NURSE = Actor("slack", "UNURSE")
HOURS = "Clinic hours. The clinic is open Monday to Friday from 8am to 6pm. It is closed at weekends."
PARKING = "Parking. Patients park in garage B on level 3; the first two hours are free."


@pytest.fixture
async def service(settings: Settings, fake_llm, embedder) -> AsyncIterator[Lorebot]:
    settings = settings.model_copy(
        update={
            "llm_base_url": fake_llm.base_url,
            "desk_channel_modes": {"slack:T1": "questions"},
            "desk_footers": {"default": "Not medical advice."},
        }
    )
    service = await Lorebot.start(settings, embedder=embedder)
    yield service
    await service.close()


async def _nurses(group: str) -> bool:
    return group == "SNURSES"


async def _other_group(group: str) -> bool:
    return group == "SOTHER"


async def _sql(service: Lorebot, query: str, **params) -> list[tuple]:
    async with service.pool.connection() as conn:
        cursor = await conn.execute(query, params)
        return await cursor.fetchall() if cursor.description else []


@pytest.mark.parametrize(
    ("mode", "text", "mentioned", "in_thread", "answered"),
    [
        ("mention", "How do I reset my password?", False, False, False),
        ("mention", "hello", True, False, True),
        ("questions", "How do I reset my password?", False, False, True),
        ("questions", "thanks, that worked", False, False, False),
        ("questions", "@alice how do I reset my password?", False, False, False),
        ("threads", "How do I reset my password?", True, False, False),
        ("threads", "and on weekends?", False, True, True),
    ],
)
def test_channel_modes_decide_which_messages_are_answered(
    mode: str, text: str, mentioned: bool, in_thread: bool, answered: bool
) -> None:
    policy = ChannelPolicy(ChannelMode(mode))
    assert should_answer(policy, text, mentioned=mentioned, in_bot_thread=in_thread) is answered


async def test_channel_settings_from_chat_win_over_settings_and_need_an_admin(service: Lorebot) -> None:
    desk = service.desk
    assert (await desk.policy("slack", "T1", "C1")).mode is ChannelMode.QUESTIONS  # from DESK_CHANNEL_MODES
    assert (await desk.policy("slack", "T2", "C1")).mode is ChannelMode.MENTION
    with pytest.raises(PermissionDenied):
        await desk.set_policy(USER, "slack", "T1", "C1", mode="threads")
    with pytest.raises(InvalidInput, match="mention, questions, threads"):
        await desk.set_policy(ADMIN, "slack", "T1", "C1", mode="everything")
    await desk.set_policy(ADMIN, "slack", "T1", "C1", mode="threads")
    await desk.set_policy(ADMIN, "slack", "T1", "C1", language="zh")
    assert await desk.policy("slack", "T1", "C1") == ChannelPolicy(ChannelMode.THREADS, "zh")
    audited = await _sql(service, "SELECT allowed, detail->>'outcome' FROM audit_log ORDER BY id")
    assert audited == [(False, None), (True, "failed"), (True, "ok"), (True, "ok")]


async def test_a_channel_language_asks_the_model_to_answer_in_it(service: Lorebot, fake_llm) -> None:
    await service.add_text(ADMIN, HOURS, title="Hours")
    await service.desk.set_policy(ADMIN, "slack", "T1", "C1", language="zh")
    fake_llm.reply("周一至周五上午8点到下午6点 [1]。")
    question = "When is the clinic open?"
    await service.ask(Question(question, USER, place=Place("slack", "T1", "C1")))
    await service.ask(Question(question, USER, place=Place("slack", "T1", "C2")))
    in_chinese, unset = (request["messages"][0]["content"] for request in fake_llm.chat_requests[-2:])
    assert in_chinese == SYSTEM_PROMPT + "\nWrite the answer in Simplified Chinese (简体中文)."
    assert unset == SYSTEM_PROMPT  # exactly the prompt the adapter is trained on


async def test_a_thread_shows_answers_in_its_parent_channels_language(service: Lorebot) -> None:
    """A Discord thread is its own conversation but answers from its parent channel (the place): the language the
    model is asked for and the one the answer is shown in come from the same channel."""
    admin, user = Actor("discord", "1", is_admin=True), Actor("discord", "2")
    await service.desk.set_policy(admin, "discord", "G1", "C1", language="zh")
    await service.desk.set_handover(admin, "default", "CNURSES", "")
    in_thread = Question(
        "When is the clinic open?",
        user,
        ("default",),
        conversation=ConversationKey("discord", "G1", "T9", "T9"),
        place=Place("discord", "G1", "C1"),
    )
    assert await service.desk.channel_language(in_thread) == "zh"
    decoration = await service.desk.decoration(in_thread)
    assert decoration.language == "zh"
    assert decoration.ask_person == texts.text("zh", "ask_person")


async def test_footer_and_hand_over_target_per_scope(service: Lorebot) -> None:
    desk = service.desk
    assert (await desk.scope_desk("default", "slack")).footer == "Not medical advice."
    with pytest.raises(InvalidInput):
        await desk.set_footer(ADMIN, "default", "x" * 301)
    await desk.set_footer(ADMIN, "default", "Call 112 in an emergency.")
    await desk.set_handover(ADMIN, "default", "CNURSES", "SNURSES")
    scope = await desk.scope_desk("default", "slack")
    assert scope.footer == "Call 112 in an emergency."
    assert scope.target == HandoverTarget("CNURSES", "SNURSES")
    assert (await desk.scope_desk("default", "discord")).target is None


async def test_hand_over_then_saving_the_reply_makes_a_cited_document_and_curated_data(
    service: Lorebot, fake_llm
) -> None:
    await service.add_text(ADMIN, PARKING, title="Parking")
    await service.desk.set_handover(ADMIN, "default", "CNURSES", "SNURSES")
    question = Question("Can I bring my dog to the clinic? mail me at jo@example.com", USER, ("default",))
    answer = await service.ask(question)
    assert answer.message_id is not None

    with pytest.raises(NotFound):
        await service.desk.hand_over(USER, 999_999, "asked")
    handover = await service.desk.hand_over(USER, answer.message_id, "not_found")
    again = await service.desk.hand_over(USER, answer.message_id, "thumbs_down")
    assert handover.created and not again.created and again.escalation_id == handover.escalation_id
    assert handover.target == HandoverTarget("CNURSES", "SNURSES") and handover.question == question.text
    await service.desk.posted(handover, "1700000000.000100")

    with pytest.raises(PermissionDenied):
        await service.desk.save_answer(USER, "CNURSES", "1700000000.000100", "Only guide dogs are allowed.")
    with pytest.raises(NotFound):
        await service.desk.save_answer(NURSE, "CNURSES", "1700000000.999999", "x", supporter=_nurses)
    with pytest.raises(InvalidInput):
        await service.desk.save_answer(NURSE, "CNURSES", "1700000000.000100", "   ", supporter=_nurses)
    with pytest.raises(InvalidInput, match="at most 8000"):
        await service.desk.save_answer(NURSE, "CNURSES", "1700000000.000100", "x" * 8001, supporter=_nurses)
    with pytest.raises(PermissionDenied):  # a member of another group is no supporter here
        await service.desk.save_answer(USER, "CNURSES", "1700000000.000100", "x", supporter=_other_group)
    saved = await service.desk.save_answer(
        NURSE, "CNURSES", "1700000000.000100", "Only guide dogs are allowed inside.", supporter=_nurses
    )
    assert saved.document.scope == "default" and saved.document.added_by == "slack:UNURSE"
    assert "jo@example.com" not in saved.document.title and "[email]" in saved.document.title

    fake_llm.reply("Only guide dogs are allowed inside [1].")
    repeat = await service.ask(Question("Can I bring my dog to the clinic?", USER, ("default",)))
    assert [c.document_id for c in repeat.citations] == [saved.document.id]
    curated = await _sql(service, "SELECT question, answer, document_id, saved_by FROM curated_answers")
    assert curated == [
        (
            "Can I bring my dog to the clinic? mail me at [email]",
            "Only guide dogs are allowed inside.",
            saved.document.id,
            "slack:UNURSE",
        )
    ]


async def test_report_figures_match_a_seeded_database_exactly(service: Lorebot) -> None:
    hours = (await service.add_text(ADMIN, HOURS, title="Hours")).document
    parking = (await service.add_text(ADMIN, PARKING, title="Parking")).document
    await service.add_text(ADMIN, "Billing. Invoices are sent monthly.", title="Billing", scope="billing")
    chunk = {
        d.id: (await _sql(service, "SELECT id FROM chunks WHERE document_id = %(d)s", d=d.id))[0][0]
        for d in (hours, parking)
    }
    rows = [
        # question, found, latency, cited document, age in days, scope
        ("When is the clinic open?", True, 100, hours.id, 1, "default"),
        ("Opening hours on Monday?", True, 300, hours.id, 2, "default"),
        ("Where do I park?", True, 200, parking.id, 3, "default"),
        ("Can I bring my dog?", False, 50, None, 1, "default"),
        ("Are dogs allowed in the clinic?", False, 70, None, 2, "default"),
        ("What is the wifi password? call me on +44 20 7946 0958", False, 90, None, 1, "default"),
        ("Old question", False, 999, None, 30, "default"),
        ("How are invoices sent?", True, 400, None, 1, "billing"),
    ]
    ids = []
    for text, found, latency, document, age, scope in rows:
        cited = [chunk[document]] if document else []
        inserted = await _sql(
            service,
            "INSERT INTO messages (platform, user_id, question, answer, found, scopes, cited_chunk_ids, model,"
            " latency_ms, created_at) VALUES ('slack', 'UUSER', %(q)s, 'a', %(found)s, ARRAY[%(scope)s],"
            " %(cited)s::bigint[], 'm', %(latency)s, now() - %(age)s * interval '1 day') RETURNING id",
            q=text,
            found=found,
            scope=scope,
            cited=cited,
            latency=latency,
            age=age,
        )
        ids.append(inserted[0][0])
    for message, user, score in [(0, "U1", 1), (0, "U2", 1), (1, "U1", -1), (2, "U1", 1), (6, "U1", -1)]:
        await _sql(
            service,
            "INSERT INTO feedback (message_id, platform, user_id, score) VALUES (%(m)s, 'slack', %(u)s, %(s)s)",
            m=ids[message],
            u=user,
            s=score,
        )
    await _sql(
        service,
        "INSERT INTO escalations (message_id, reason, platform, scope, requested_by, channel)"
        " VALUES (%(m)s, 'not_found', 'slack', 'default', 'slack:UUSER', 'C')",
        m=ids[3],
    )

    report = await service.desk.report(ADMIN, since=parse_since("7d"), scope="default")
    assert (report.asked, report.answered, report.not_found) == (6, 3, 3)
    assert (report.thumbs_up, report.thumbs_down, report.escalations) == (3, 1, 1)
    assert report.helpful_rate == 0.75 and report.median_latency_ms == 95.0
    assert [(d.title, d.citations) for d in report.cited_most] == [("Hours", 2), ("Parking", 1)]
    assert report.never_cited == () and report.never_cited_total == 0
    assert [t.questions for t in report.topics] == [2, 1, 1]  # the dog questions are one topic
    assert {"Can I bring my dog?", "Are dogs allowed in the clinic?"} == set(report.topics[0].examples)
    assert any("[phone]" in e for t in report.topics for e in t.examples)
    assert not any("7946" in e for t in report.topics for e in t.examples)

    everywhere = await service.desk.report(ADMIN, since=timedelta(days=7))
    assert (everywhere.asked, everywhere.answered) == (7, 4)
    assert [d.title for d in everywhere.never_cited] == ["Billing"]

    private = await service.desk.report(USER, since=timedelta(days=7))
    assert not private.shows_questions and all(t.examples == () for t in private.topics)
    assert report_payload(private)["asked"] == 7
    assert "figure,asked,7," in report_csv(private)


def test_csv_cells_that_look_like_formulas_are_defused() -> None:
    from datetime import UTC, datetime

    from bot.desk.report import CitedDocument, Report, Topic

    hostile = Report(
        since=datetime(2026, 1, 1, tzinfo=UTC),
        scope=None,
        asked=1,
        answered=0,
        not_found=1,
        thumbs_up=0,
        thumbs_down=0,
        escalations=0,
        median_latency_ms=1.0,
        topics=(Topic(1, 1, 0, ('=HYPERLINK("x")',)),),
        cited_most=(),
        never_cited=(CitedDocument(1, "@SUM(A1)", "default"),),
        never_cited_total=1,
        shows_questions=True,
    )
    text = report_csv(hostile)
    assert "'=HYPERLINK" in text and "'@SUM(A1)" in text and "\n=" not in text and ",=" not in text


@pytest.mark.parametrize("value", ["", "7", "0d", "7y", "-1d", "99999d"])
def test_unreadable_time_spans_are_refused(value: str) -> None:
    with pytest.raises(InvalidInput):
        parse_since(value)
