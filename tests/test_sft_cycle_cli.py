"""`lorebot sft cycle` as a command: the [cycle] config section, and a run with nothing new to learn."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.sft.cli import sft_app
from bot.sft.config import load_config

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
