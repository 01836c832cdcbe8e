"""The `lorebot sft` commands end to end on small inputs (the heavy work is tested in the other test_sft files)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from psycopg_pool import AsyncConnectionPool
from typer.testing import CliRunner

from bot.answer.prompt import build_messages, format_context
from bot.domain import Actor, Answer, Passage, Question
from bot.sft_cli import sft_app
from bot.storage import conversations, feedback
from tests.fixtures.llm import FakeLLM

runner = CliRunner()


def _config(tmp_path: Path, squad: Path, curated: list[Path]) -> Path:
    path = tmp_path / "sft.toml"
    files = ", ".join(json.dumps(str(p)) for p in curated)
    path.write_text(
        f"""
[dataset]
output_dir = {json.dumps(str(tmp_path / "data"))}
tokenizer = ""
eval_fraction = 0.34
qa_files = [{json.dumps(str(squad))}]
curated_files = [{files}]

[eval]
eval_file = {json.dumps(str(tmp_path / "data" / "eval_qa.jsonl"))}
limit = 3
question_offset = 0
""",
        encoding="utf-8",
    )
    return path


def test_dataset_command_builds_files(tmp_path: Path, tiny_squad_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(sft_app, ["dataset", "--config", str(_config(tmp_path, tiny_squad_file, []))])
    assert result.exit_code == 0, result.output
    assert "train /" in result.output
    assert (tmp_path / "data" / "dataset_card.md").is_file()


def test_dataset_command_reports_the_bad_line_and_writes_nothing(
    tmp_path: Path,
    tiny_squad_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": []}\n', encoding="utf-8")
    result = runner.invoke(sft_app, ["dataset", "--config", str(_config(tmp_path, tiny_squad_file, [bad]))])
    assert result.exit_code == 1
    assert f"{bad}: line 1: 'messages' must be a non-empty list" in result.output
    assert not (tmp_path / "data").exists()


def test_unknown_config_key_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "sft.toml"
    config.write_text("[train]\nlearning_rat = 1e-4\n", encoding="utf-8")
    result = runner.invoke(sft_app, ["train", "--config", str(config)])
    assert result.exit_code == 1
    assert "unknown SFT config key(s) in [train]: learning_rat" in result.output


@pytest.mark.parametrize("mode", ["real loop", "--stored"])
def test_eval_command_prints_the_side_by_side_table(
    tmp_path: Path,
    tiny_squad_file: Path,
    fake_llm: FakeLLM,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "lorebot"))
    config = _config(tmp_path, tiny_squad_file, [])
    dataset = ["dataset", "--config", str(config)]
    if mode == "--stored":
        config.write_text(config.read_text().replace("[dataset]", '[dataset]\nrag_passages = "stored"'))
    assert runner.invoke(sft_app, dataset).exit_code == 0
    fake_llm.default_reply = "Zorb [1]"
    targets = ["--target", f"a={fake_llm.base_url}", "--target", f"b={fake_llm.base_url}"]
    result = runner.invoke(
        sft_app, ["eval", "--config", str(config), *targets, *([mode] if mode == "--stored" else [])]
    )
    assert result.exit_code == 0, result.output
    assert "| metric | a · all | b · all | a · en | b · en |" in result.output, result.output
    counts = re.search(r"en: (\d+) answerable / (\d+) unanswerable", result.output)
    assert counts is not None and int(counts[1]) + int(counts[2]) == 3, result.output  # eval.limit = 3
    assert {r["model"] for r in fake_llm.chat_requests} == {"a", "b"}, result.output
    assert not list(tmp_path.glob("lorebot/pgdata")), "the real loop uses a throwaway database, never DATA_DIR"


@pytest.mark.parametrize(
    ("section", "line", "message"),
    [
        ("dataset", 'rag_passages = "retrived"', "dataset.rag_passages must be one of 'retrieved', 'stored'"),
        ("eval", 'mode = "lop"', "eval.mode must be one of 'loop', 'stored'"),
    ],
)
def test_a_misspelt_mode_is_an_error_not_a_fallback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, section: str, line: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "sft.toml"
    config.write_text(f"[{section}]\n{line}\n", encoding="utf-8")
    result = runner.invoke(sft_app, ["dataset" if section == "dataset" else "eval", "--config", str(config)])
    assert result.exit_code == 1
    assert message in result.output


def test_eval_command_rejects_a_malformed_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(sft_app, ["eval", "--target", "no-url"])
    assert result.exit_code != 0
    assert "MODEL=http://host:port/v1" in result.output


async def test_dataset_command_includes_rated_answers_from_the_database(
    tmp_path: Path, database_url: str, pool: AsyncConnectionPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    question = Question("When is standup?", Actor("slack", "U1"), ("default",))
    passages = (Passage(chunk_id=1, document_id=1, title="Handbook", source_uri="kb://h", text="At 10am.", score=1),)
    answer = Answer(text="At 10am [1].", citations=(), passages=passages, found=True, model="m")
    context = format_context(passages)
    message_id = await conversations.record_message(pool, question, answer, prompt_context=context, latency_ms=3)
    await feedback.record(pool, message_id, Actor("slack", "U2"), 1)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "lorebot"))
    config = tmp_path / "sft.toml"
    config.write_text(f'[dataset]\noutput_dir = "{tmp_path / "data"}"\ntokenizer = ""\neval_fraction = 0.0\n')
    result = await asyncio.to_thread(runner.invoke, sft_app, ["dataset", "--config", str(config), "--feedback"])
    assert result.exit_code == 0, result.output
    [record] = [json.loads(line) for line in (tmp_path / "data" / "train.jsonl").read_text().splitlines()]
    assert record["messages"] == [
        *build_messages("When is standup?", passages),
        {"role": "assistant", "content": "At 10am [1]."},
    ]
