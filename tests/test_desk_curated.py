"""Saved answers become curated SFT data (what ``lorebot sft dataset`` reads from the database), redacted."""

from __future__ import annotations

from bot.domain import Actor, Question
from bot.service import Lorebot
from bot.settings import Settings
from bot.sft.curated import SOURCE
from bot.sft.feedback import load_feedback_examples

ADMIN = Actor("slack", "UADMIN", is_admin=True)
USER = Actor("slack", "UUSER")


async def _save(service: Lorebot, question: str, reply: str) -> None:
    await service.desk.set_handover(ADMIN, "default", "CNURSES", "")
    answer = await service.ask(Question(question, USER, ("default",)))
    handover = await service.desk.hand_over(USER, answer.message_id or 0, "asked")
    await service.desk.posted(handover, "1.000001")
    await service.desk.save_answer(ADMIN, "CNURSES", "1.000001", reply)


async def test_nothing_is_curated_until_someone_saves_an_answer(settings: Settings, fake_llm, embedder) -> None:
    settings = settings.model_copy(update={"llm_base_url": fake_llm.base_url})
    service = await Lorebot.start(settings, embedder=embedder)
    try:
        answer = await service.ask(Question("Can I bring my dog?", USER, ("default",)))
        await service.desk.set_handover(ADMIN, "default", "CNURSES", "")
        await service.desk.hand_over(USER, answer.message_id or 0, "asked")
        assert [e for e in await load_feedback_examples(settings, limit=10) if e.source == SOURCE] == []
        await _save(service, "我可以带狗去诊所吗？邮箱 li@example.cn", "只允许导盲犬。请致电 138 0013 8000 咨询。")
    finally:
        await service.close()

    examples = [e for e in await load_feedback_examples(settings, limit=10) if e.source == SOURCE]
    assert len(examples) == 1
    example = examples[0]
    system, user, assistant = (m["content"] for m in example.messages)
    assert example.lang == "zh" and "numbered sources" in system
    assert '<source id="1"' in user and "Question: 我可以带狗去诊所吗？邮箱 [email]" in user
    assert assistant == "只允许导盲犬。请致电 [phone] 咨询。 [1]"
    assert "138 0013" not in example.text() and "li@example.cn" not in example.text()


async def test_redaction_can_be_turned_off_for_sft_data(settings: Settings, fake_llm, embedder) -> None:
    settings = settings.model_copy(update={"llm_base_url": fake_llm.base_url, "desk_redact_personal_data": False})
    service = await Lorebot.start(settings, embedder=embedder)
    try:
        await _save(service, "Whom do I call about billing?", "Call billing on +44 20 7946 0958.")
    finally:
        await service.close()
    (example,) = [e for e in await load_feedback_examples(settings, limit=10) if e.source == SOURCE]
    assert example.messages[-1]["content"] == "Call billing on +44 20 7946 0958. [1]"
