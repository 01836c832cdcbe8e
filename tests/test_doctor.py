"""``lorebot doctor`` says what works and what to fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from tests.fixtures.net import unused_port

runner = CliRunner()


@pytest.fixture
def doctor_env(monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path, embedder) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))


def test_all_checks_pass_with_a_migrated_database_and_a_live_llm(
    doctor_env: None, monkeypatch: pytest.MonkeyPatch, fake_llm
) -> None:
    monkeypatch.setenv("LLM_BASE_URL", fake_llm.base_url)
    monkeypatch.setenv("LLM_MODEL", "fake-model")
    result = runner.invoke(app, ["doctor"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for line in ("database", "pgvector", "schema", "embeddings", "llm"):
        assert line in result.output
    assert "FAIL" not in result.output
    assert "all-MiniLM-L6-v2" in result.output or "384 dimensions" in result.output


def test_an_unreachable_llm_fails_and_says_what_to_check(doctor_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_BASE_URL", f"http://127.0.0.1:{unused_port()}/v1")
    result = runner.invoke(app, ["doctor"], terminal_width=200)
    assert result.exit_code == 1
    assert "FAIL" in result.output and "check LLM_BASE_URL" in result.output


def test_a_model_the_endpoint_does_not_serve_is_reported(
    doctor_env: None, monkeypatch: pytest.MonkeyPatch, fake_llm
) -> None:
    monkeypatch.setenv("LLM_BASE_URL", fake_llm.base_url)
    monkeypatch.setenv("LLM_MODEL", "lorebot")
    result = runner.invoke(app, ["doctor"], terminal_width=200)
    assert result.exit_code == 1
    assert "not LLM_MODEL='lorebot'" in result.output


def test_an_unreachable_database_fails_with_a_hint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, embedder) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"postgresql://nobody@127.0.0.1:{unused_port()}/lorebot")
    result = runner.invoke(app, ["doctor"], terminal_width=200)
    assert result.exit_code == 1
    assert "check DATABASE_URL" in result.output


def test_no_llm_checks_the_database_and_settings_without_loading_a_model(database_url: str, tmp_path: Path) -> None:
    """A new process, so the check that torch stays unimported is real (this test process may hold the model)."""
    env = {**os.environ, "DATABASE_URL": database_url, "DATA_DIR": str(tmp_path / "data"), "COLUMNS": "200"}
    env["LLM_BASE_URL"] = f"http://127.0.0.1:{unused_port()}/v1"  # would fail if it were contacted
    code = "import sys; from bot.cli import app; app(['doctor', '--no-llm'], standalone_mode=False); "
    code += "print('torch imported:', 'torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "torch imported: False" in done.stdout
    checks = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("│")]
    assert checks == ["database", "pgvector", "schema", "embeddings"], done.stdout
    assert "FAIL" not in done.stdout
    assert "all-MiniLM-L6-v2, 384 dimensions" in done.stdout and "not loaded" in done.stdout


def test_no_llm_reports_a_dimension_the_installed_model_cannot_produce(
    doctor_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMBEDDING_DIM", "768")
    result = runner.invoke(app, ["doctor", "--no-llm"], terminal_width=200)
    assert result.exit_code == 1
    words = " ".join(word for word in result.output.split() if word != "│")  # the table wraps long details
    assert "produces 384-dimensional vectors but EMBEDDING_DIM is 768" in words
