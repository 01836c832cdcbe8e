"""What a new user meets first: the embedded default (packaged Gemma 3 270M + the shipped adapter, MiniLM, embedded
Postgres) answering questions about the sample knowledge base through the real service, citing the right document,
and refusing questions the knowledge base cannot answer.

Issue 9's target is every question of ``ANSWERED`` right with the right citation. The shipped adapter gets
``ANSWERED_FLOOR`` of them (stage 6, measured 2026-12-01, see the adapter's EVAL.md), so the test holds that floor
and the refusals; raise the floor with every better adapter until it equals ``len(ANSWERED)``.
"""

from __future__ import annotations

import pytest

from bot.domain import Actor, Answer, Question
from bot.local_llm.launcher import start_local_llm
from bot.sample_kb import ensure_sample_knowledge
from bot.service import Lorebot
from bot.settings import Settings
from bot.sft.metrics import is_refusal

ADMIN = Actor("local", "admin", is_admin=True)
USER = Actor("local", "user")
CLINIC = (
    "The Harbor Street Clinic opens at 8:30 on weekdays. On Saturdays it opens at 10:15 and closes at 14:00. "
    "It is closed on Sundays."
)

ANSWERED = [
    # (question, any of these must be in the answer, the cited document's source ends with)
    ("What are the support hours on Saturday?", ("10am", "10 am"), "support-hours.md"),
    ("When is the support desk open?", ("9am", "Monday"), "support-hours.md"),
    ("How do I reset my password?", ("Forgot password", "forgot password"), "account-help.md"),
    ("如何重置密码？", ("忘记密码",), "faq-zh.md"),
    ("周六客服几点营业？", ("十点", "10"), "faq-zh.md"),
    ("数据存放在哪里？", ("PostgreSQL",), "faq-zh.md"),
    ("When does the Harbor Street Clinic open on Saturdays?", ("10:15",), "text:Harbor Street Clinic"),
    ("When does the Harbor Street Clinic open on weekdays?", ("8:30",), "text:Harbor Street Clinic"),
    ("How quickly are urgent incidents answered?", ("30 minutes",), "support-hours.md"),
    ("Who handles billing questions?", ("finance",), "support-hours.md"),
    ("How many tokens are in a chunk?", ("256",), "lorebot-overview.md"),
    ("Who can add or remove documents?", ("admin", "Admin"), "admin-guide.md"),
]
ANSWERED_FLOOR = 7
REFUSED = ["What is the capital of France?", "How many vacation days do employees get?", "公司的年假有几天？"]


@pytest.fixture(scope="module")
def model_settings(pytestconfig: pytest.Config) -> dict:
    data_dir = pytestconfig.cache.mkdir("lorebot-data")  # the GGUF and its de-quantized copy, kept across runs
    return {"data_dir": data_dir, "llm_timeout_s": 300.0, "llm_temperature": 0.0, "rate_limit_per_minute": 0}


async def _ask_all(settings: Settings, questions: list[str]) -> dict[str, Answer]:
    service = await Lorebot.start(settings)
    try:
        await ensure_sample_knowledge(service, ADMIN)
        await service.add_text(ADMIN, CLINIC, title="Harbor Street Clinic")
        with start_local_llm(settings, port=0) as local:
            served = local.settings_for(settings)  # passages as the shipped adapter was trained on them
            bot = Lorebot(served, service.pool, service.embedder)
            scopes = (settings.default_scope,)
            return {q: await bot.ask(Question(q, USER, scopes)) for q in questions}
    finally:
        await service.close()


@pytest.mark.slow
async def test_the_embedded_model_refuses_out_of_kb_questions_and_answers_the_sample_kb_above_its_floor(
    settings: Settings, model_settings: dict
) -> None:
    settings = settings.model_copy(update=model_settings)
    answers = await _ask_all(settings, [q for q, _, _ in ANSWERED] + REFUSED)

    right, wrong = [], []
    for question, expected, document in ANSWERED:
        answer = answers[question]
        cited = [c.source_uri for c in answer.citations]
        ok = answer.found and any(e in answer.text for e in expected) and any(u.endswith(document) for u in cited)
        (right if ok else wrong).append((question, answer.text, cited))
    answered_out_of_kb = [(q, answers[q].text) for q in REFUSED if answers[q].found and not is_refusal(answers[q].text)]
    assert answered_out_of_kb == []
    assert len(right) >= ANSWERED_FLOOR, "\n".join(map(repr, wrong))
