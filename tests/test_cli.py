"""The ``lorebot`` CLI as a user runs it: real database, real embeddings, the fake LLM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app

runner = CliRunner()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path, fake_llm, embedder) -> Path:
    monkeypatch.chdir(tmp_path)  # no developer .env
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LLM_BASE_URL", fake_llm.base_url)
    monkeypatch.setenv("LLM_MODEL", "fake-model")
    docs = tmp_path / "docs"
    (docs / "nested").mkdir(parents=True)
    (docs / "hours.md").write_text("# Support hours\n\nThe desk is open on Saturdays from 10am to 2pm.\n")
    (docs / "nested" / "billing.md").write_text("# Billing\n\nInvoices are sent on the first day of the month.\n")
    (docs / "nested" / "notes.txt").write_text("Not matched by the glob.")
    return docs


def _json(output: str):
    return json.loads(output)


def test_ingest_search_list_and_remove_round_trip(cli_env: Path) -> None:
    result = runner.invoke(app, ["ingest", str(cli_env), "--glob", "*.md"])
    assert result.exit_code == 0, result.output
    assert result.output.count("added") == 2

    again = runner.invoke(app, ["ingest", str(cli_env), "--glob", "*.md"])
    assert again.output.count("unchanged") == 2

    hits = _json(runner.invoke(app, ["search", "When is the desk open on Saturday?", "--json"]).output)
    assert hits[0]["title"] == "Support hours" and hits[0]["source_uri"].endswith("hours.md")

    documents = _json(runner.invoke(app, ["docs", "list", "--json"]).output)
    assert sorted(d["title"] for d in documents) == ["Billing", "Support hours"]

    billing = next(d for d in documents if d["title"] == "Billing")
    removed = runner.invoke(app, ["docs", "remove", str(billing["id"])])
    assert removed.exit_code == 0 and "removed" in removed.output
    assert [d["title"] for d in _json(runner.invoke(app, ["docs", "list", "--json"]).output)] == ["Support hours"]


def test_ask_json_has_answer_citations_chunks_and_timings(cli_env: Path, fake_llm) -> None:
    runner.invoke(app, ["ingest", str(cli_env / "hours.md")])
    fake_llm.reply("From 10am to 2pm [1].")
    payload = _json(runner.invoke(app, ["ask", "When is the desk open on Saturday?", "--json"]).output)
    assert payload["answer"] == "From 10am to 2pm [1]."
    assert payload["citations"][0]["title"] == "Support hours"
    assert payload["retrieved"] and "llm_ms" in payload["timings_ms"]


def test_ingest_of_a_missing_path_fails_with_a_clear_message(cli_env: Path) -> None:
    result = runner.invoke(app, ["ingest", str(cli_env / "nope.md")])
    assert result.exit_code != 0
    assert "nope.md" in result.output


def test_removing_an_unknown_document_exits_non_zero(cli_env: Path) -> None:
    result = runner.invoke(app, ["docs", "remove", "424242"])
    assert result.exit_code == 1
    assert "no document 424242" in result.output


def test_names_that_look_like_markup_are_printed_literally_and_the_batch_goes_on(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    odd = cli_env / "odd[" / "x]"  # the path reads odd[/x]: a closing tag with nothing to close
    odd.mkdir(parents=True)
    (odd / "notes[bold].md").write_text("# Odd [/x] name [bold]\n\nThe printer error code is E4711.\n")

    result = runner.invoke(app, ["ingest", "http://10.0.0.1/[/x]", str(odd)])

    assert result.exit_code == 1  # the private address is refused; the file is still added
    assert "failed http://10.0.0.1/[/x]: " in result.output
    assert "added #" in result.output and "odd[/x]/notes[bold].md" in result.output
    documents = _json(runner.invoke(app, ["docs", "list", "--json"]).output)
    assert [d["title"] for d in documents] == ["Odd [/x] name [bold]"]
    for command in (["docs", "list"], ["search", "printer error code E4711"]):
        shown = runner.invoke(app, command)
        assert shown.exit_code == 0 and "Odd [/x] name [bold]" in shown.output
    missing = runner.invoke(app, ["ingest", str(cli_env / "gone[/x].md")])
    assert missing.exit_code == 1 and "gone[/x].md" in missing.output


def test_ingesting_a_url_with_credentials_is_refused_without_showing_them(cli_env: Path) -> None:
    result = runner.invoke(app, ["ingest", "https://alice:s3cret@kb.example/page", str(cli_env / "hours.md")])

    assert result.exit_code == 1
    assert "credentials" in result.output and "s3cret" not in result.output and "alice" not in result.output
    assert "https://***@kb.example/page" in result.output


def test_chat_logs_to_a_file_in_the_data_dir_and_shows_only_the_conversation(
    fresh_data_dir: Path, tmp_path: Path, fake_llm
) -> None:
    fake_llm.reply("Lorebot answers questions from your team's documents [1].")
    env = {name: value for name, value in os.environ.items() if name not in ("DATABASE_URL", "XDG_RUNTIME_DIR")}
    env |= {"DATA_DIR": str(fresh_data_dir), "LLM_BASE_URL": fake_llm.base_url, "LOG_LEVEL": "INFO"}

    chat = subprocess.run(
        [sys.executable, "-c", "from lorebot.cli import app; app()", "chat"],
        input="What is Lorebot?\nexit\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,  # no developer .env
        env=env,
        timeout=300,
    )

    screen = chat.stdout + chat.stderr
    log_file = fresh_data_dir / "logs" / "lorebot.log"
    assert chat.returncode == 0, screen
    assert "Lorebot answers questions from your team's documents [1]." in chat.stdout
    assert screen.count(f"logging to {log_file}") == 1
    assert " INFO " not in screen and "XDG_RUNTIME_DIR" not in screen
    logged = log_file.read_text()
    assert " INFO bot.service: answered message=" in logged
    assert "XDG_RUNTIME_DIR is not set" in logged
