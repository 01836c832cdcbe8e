"""`lorebot sft cycle` as a command: the [cycle] config section, a run with nothing new to learn, and a run that
evaluates on a freshly launched embedded server and stops at the decision."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from psycopg_pool import AsyncConnectionPool
from typer.testing import CliRunner

from bot.embeddings import Embedder
from bot.settings import Settings
from bot.sft.config import SFTConfig, load_config
from bot.sft.lora_runtime import LoraRuntime
from bot.sft.registry import ServingTarget, promote
from bot.sft_cli import sft_app
from bot.storage import adapters as registry
from tests.fixtures.llm import FakeLLM
from tests.test_sft_cycle import _config, _seed_feedback, _train_shipped
from tests.test_vllm_lora import FakeVLLM, running_fake_vllm

runner = CliRunner()


def test_the_cycle_section_is_read_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "sft.toml"
    path.write_text('[cycle]\nmargin = 2.5\nmetrics = ["token_f1"]\nruns_dir = "runs/x"\n', encoding="utf-8")
    cycle = load_config(path).cycle
    assert (cycle.margin, cycle.metrics, cycle.runs_dir, cycle.train_from) == (
        2.5,
        ("token_f1",),
        Path("runs/x"),
        "serving",
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [('train_from = "serve"', "cycle.train_from must be one of 'serving', 'base'"),
     ("marign = 1.0", "unknown SFT config key(s) in [cycle]: marign")],
)  # fmt: skip
def test_a_misspelt_cycle_setting_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str, message: str):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "sft.toml"
    config.write_text(f"[cycle]\n{line}\n", encoding="utf-8")
    result = runner.invoke(sft_app, ["cycle", "--config", str(config)])
    assert result.exit_code == 1 and message in result.output


def test_a_cycle_with_no_new_feedback_does_nothing(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))

    result = runner.invoke(sft_app, ["cycle"])

    assert result.exit_code == 0, result.output
    assert "nothing-new: 0 new examples since the last promoted cycle" in result.output
    assert not (tmp_path / "runs").exists()
    status = runner.invoke(sft_app, ["status"])
    assert "no adapters registered yet" in status.output


def test_the_production_config_is_qlora_on_qwen3_within_the_rank_vllm_allows() -> None:
    import re

    root = Path(__file__).resolve().parents[1]
    config = load_config(root / "configs" / "sft-qwen3-4b.toml")
    assert config.train.base_model.endswith("Qwen3-4B-Instruct-2507") and config.train.qlora
    assert config.train.device == "cuda" and config.cycle.train_from == "serving"
    compose = (root / "docker-compose.yml").read_text()
    assert "--model=${VLLM_BASE_MODEL:-Qwen/Qwen3-4B-Instruct-2507}" in compose
    assert config.train.lora.r <= int(re.search(r"LORA_RANK:-(\d+)", compose)[1])


async def test_the_cycle_command_evaluates_on_a_fresh_embedded_server_and_stops_at_the_decision(
    settings: Settings,
    pool: AsyncConnectionPool,
    embedder: Embedder,
    fake_llm: FakeLLM,
    tiny_model_dir: Path,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`lorebot sft cycle --start-server` with `cycle.promote = false`: a throwaway knowledge base, the embedded
    server launched as a process with the serving adapter, the decision table printed, nothing promoted."""
    await _seed_feedback(settings, embedder, fake_llm)
    config = _config(tmp_path, tiny_model_dir)
    shipped, _ = await _train_shipped(pool, config, tmp_path)
    with running_fake_vllm(FakeVLLM()) as vllm:
        target = ServingTarget(LoraRuntime(vllm.base_url), "lorebot")
        await registry.register(
            pool, name="shipped", base_model=str(tiny_model_dir), path=str(shipped), parent=None, dataset_hash="",
            dataset_size=0, train_config={}, actor="cli:ops",
        )  # fmt: skip
        await promote(pool, "shipped", "cli:ops", target)
        toml = tmp_path / "cycle.toml"
        toml.write_text(_toml(config), encoding="utf-8")
        for name, value in {"DATABASE_URL": database_url, "DATA_DIR": str(tmp_path / "data"),
                            "LLM_BASE_URL": vllm.base_url, "LLM_MODEL": "lorebot"}.items():  # fmt: skip
            monkeypatch.setenv(name, value)

        command = ["cycle", "--config", str(toml), "--start-server"]
        result = await asyncio.to_thread(runner.invoke, sft_app, command)
        again = await asyncio.to_thread(runner.invoke, sft_app, command)

        assert vllm.loras == {"lorebot": str(shipped)}  # the serving server was not touched
    assert result.exit_code == 0, result.output
    assert "| loop | all | token_f1 | 0.000 | 100.000 | +100.00 | +20.00 |" in result.output
    assert "PROMOTE" in result.output and "seconds per stage: collect" in result.output
    assert re.search(r"passed: (cycle-[\d-]+) passed the gate; promote it with `lorebot sft promote \1`", result.output)
    assert (await registry.serving(pool)).name == "shipped"
    assert again.exit_code == 0 and "unchanged: the same data as cycle" in again.output, again.output
    assert "which passed and waits for `lorebot sft promote" in again.output


def _toml(config: SFTConfig) -> str:
    """The test config as the TOML file an operator writes (the cycle stops at the decision)."""
    train, lora, evaluation, cycle = config.train, config.train.lora, config.eval, config.cycle
    return f"""
[dataset]
tokenizer = {json.dumps(config.dataset.tokenizer)}
max_tokens = 2000
eval_fraction = 0.2
seed = 1

[train]
base_model = {json.dumps(train.base_model)}
max_steps = {train.max_steps}
batch_size = {train.batch_size}
learning_rate = {train.learning_rate}
warmup_ratio = 0.0
lr_scheduler = "constant"
save_steps = {train.save_steps}
max_seq_len = {train.max_seq_len}

[train.lora]
r = {lora.r}
alpha = {lora.alpha}
dropout = 0.0

[eval]
qa_files = [{json.dumps(str(evaluation.qa_files[0]))}]
withheld_fraction = 0.0
question_offset = 0
limit = 0
max_tokens = {evaluation.max_tokens}

[cycle]
runs_dir = {json.dumps(str(cycle.runs_dir))}
min_new_examples = {cycle.min_new_examples}
margin = {cycle.margin}
tolerance = {cycle.tolerance}
min_questions = {cycle.min_questions}
promote = false
"""
