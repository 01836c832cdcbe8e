"""Evaluation through the real chain against an OpenAI-compatible endpoint (the fake LLM server, real HTTP)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.answer.prompt import NOT_FOUND_ANSWER, SYSTEM_PROMPT
from bot.settings import Settings
from bot.sft.config import EvalConfig
from bot.sft.errors import SFTError
from bot.sft.evaluate import Target, evaluate, evaluate_in_process, load_items, table
from tests.fixtures.llm import FakeLLM

ITEMS = [
    {
        "id": "a1",
        "question": "Who won Super Bowl 50?",
        "answers": ["Denver Broncos", "Broncos"],
        "gold": 2,
        "passages": [
            {"title": "Weather", "source_uri": "w", "text": "It rained in Santa Clara."},
            {"title": "Super Bowl 50", "source_uri": "sb", "text": "The Denver Broncos won Super Bowl 50."},
        ],
        "lang": "en",
    },
    {
        "id": "a2",
        "question": "谁开发了战国无双3？",
        "answers": ["光荣和ω-force"],
        "gold": 1,
        "passages": [{"title": "战国无双3", "source_uri": "z", "text": "《战国无双3》是由光荣和ω-force开发的。"}],
        "lang": "zh",
    },
    {
        "id": "u1",
        "question": "What is the capital of Mars?",
        "answers": [],
        "gold": None,
        "passages": [{"title": "Weather", "source_uri": "w", "text": "It rained in Santa Clara."}],
        "lang": "en",
    },
]


@pytest.fixture
def eval_file(tmp_path: Path) -> Path:
    path = tmp_path / "eval_qa.jsonl"
    path.write_text("".join(json.dumps(item, ensure_ascii=False) + "\n" for item in ITEMS), encoding="utf-8")
    return path


def _settings(tmp_path: Path) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path / "data")


async def test_eval_scores_each_model_on_identical_prompts(tmp_path: Path, eval_file: Path, fake_llm: FakeLLM) -> None:
    perfect = {
        "Who won Super Bowl 50?": "Denver Broncos [2]",
        "谁开发了战国无双3？": "光荣和ω-force [1]",
        "What is the capital of Mars?": NOT_FOUND_ANSWER,
    }
    fake_llm.script(
        lambda body: (
            perfect[body["messages"][-1]["content"].rsplit("Question: ", 1)[1]]
            if body["model"] == "tuned"
            else "It rained in Santa Clara. The Denver Broncos won Super Bowl 50."
        )
    )
    config = EvalConfig(eval_file=eval_file, limit=0)
    targets = [Target("base", fake_llm.base_url, "base"), Target("tuned", fake_llm.base_url, "tuned")]
    results = await evaluate(_settings(tmp_path), targets, config, output_dir=tmp_path / "report")

    tuned, base = results["tuned"]["all"], results["base"]["all"]
    assert results["tuned"]["zh"]["token_f1"] == 100.0 and results["tuned"]["en"]["answerable"] == 1
    assert (tuned["exact_match"], tuned["token_f1"], tuned["citation_correct"]) == (100.0, 100.0, 1.0)
    assert (tuned["refusal_accuracy"], tuned["false_refusal"]) == (1.0, 0.0)
    # base: "Denver Broncos" inside an 11-token echo (F1 2/11·… = 0.308) and nothing for the Chinese question
    assert base["exact_match"] == 0.0
    assert base["token_f1"] == pytest.approx((2 * (2 / 11) * 1 / (2 / 11 + 1) + 0) / 2 * 100, abs=1e-3)
    assert (base["citation_correct"], base["refusal_accuracy"]) == (0.0, 0.0)
    assert tuned["latency_p50_ms"] > 0
    requests = fake_llm.chat_requests
    assert len(requests) == 6
    by_model = {m: [r["messages"] for r in requests if r["model"] == m] for m in ("base", "tuned")}
    assert by_model["base"] == by_model["tuned"]
    assert by_model["base"][0][0] == {"role": "system", "content": SYSTEM_PROMPT}
    [super_bowl] = [m[1]["content"] for m in by_model["base"] if m[1]["content"].endswith("Super Bowl 50?")]
    assert '<source id="2" title="Super Bowl 50">' in super_bowl
    assert (
        "| Token F1 (answerable, %) | 15.4 | 100.0 | 30.8 | 100.0 | 0.0 | 100.0 |"
        in (tmp_path / "report" / "eval.md").read_text()
    )
    assert "all: 2 answerable / 1 unanswerable, en: 1 answerable / 1 unanswerable" in table(results)


async def test_an_empty_reply_is_scored_wrong_and_the_evaluation_goes_on(
    tmp_path: Path, eval_file: Path, fake_llm: FakeLLM
) -> None:
    fake_llm.script(lambda body: "" if body["messages"][-1]["content"].endswith("Super Bowl 50?") else NOT_FOUND_ANSWER)
    config = EvalConfig(eval_file=eval_file, limit=0)
    results = await evaluate(_settings(tmp_path), [Target("mute", fake_llm.base_url, "mute")], config)

    english = results["mute"]["en"]
    assert (english["answerable"], english["token_f1"], english["false_refusal"]) == (1, 0.0, 0.0)
    assert english["refusal_accuracy"] == 1.0  # the unanswerable question after it was still asked
    assert len(fake_llm.chat_requests) == 3


def test_eval_file_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(SFTError, match="lorebot sft dataset"):
        load_items(tmp_path / "missing.jsonl", limit=0, seed=1)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(ITEMS[0]) + "\n" + json.dumps({"id": "x"}) + "\n", encoding="utf-8")
    with pytest.raises(SFTError, match="line 2"):
        load_items(bad, limit=0, seed=1)


def test_eval_sample_is_seeded(eval_file: Path) -> None:
    first = [i.id for i in load_items(eval_file, limit=2, seed=3)]
    assert first == [i.id for i in load_items(eval_file, limit=2, seed=3)]
    assert len(first) == 2


def test_in_process_eval_scores_base_and_adapter_on_the_same_questions(
    tmp_path: Path,
    eval_file: Path,
    tiny_model_dir: Path,
    tiny_lora_dir: Path,
) -> None:
    config = EvalConfig(eval_file=eval_file, limit=0, max_tokens=4)
    results = evaluate_in_process(str(tiny_model_dir), tiny_lora_dir, config, batch_size=2, output_dir=tmp_path / "r")
    assert list(results) == ["base", "adapter"]
    assert all(r["all"]["answerable"] == 2 and r["all"]["unanswerable"] == 1 for r in results.values())
    rows = [json.loads(line) for line in (tmp_path / "r" / "eval_answers.jsonl").read_text().splitlines()]
    assert [r["model"] for r in rows] == ["base"] * 3 + ["adapter"] * 3
    assert [r["id"] for r in rows[:3]] == [r["id"] for r in rows[3:]]
    assert all(r["latency_ms"] > 0 for r in rows)
