"""``lorebot report`` as an operator runs it: real database and embeddings, seeded questions, every output form."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from lorebot.cli import app

runner = CliRunner()


@pytest.fixture
def seeded(monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path, embedder) -> str:
    monkeypatch.chdir(tmp_path)  # no developer .env
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "hours.md").write_text("# Support hours\n\nThe desk is open on Saturdays from 10am to 2pm.\n")
    assert runner.invoke(app, ["ingest", str(tmp_path / "hours.md")]).exit_code == 0
    with psycopg.connect(database_url, autocommit=True) as conn:
        chunk = conn.execute("SELECT id FROM chunks").fetchone()[0]
        for question, found, cited, latency in [
            ("When is the desk open?", True, [chunk], 120),
            ("Is the desk open on Saturday?", True, [chunk], 80),
            ("Can I pay by card? call +86 138 0013 8000", False, [], 40),
        ]:
            conn.execute(
                "INSERT INTO messages (platform, user_id, question, answer, found, scopes, cited_chunk_ids, model,"
                " latency_ms) VALUES ('slack', 'U1', %s, 'a', %s, '{default}', %s::bigint[], 'm', %s)",
                (question, found, cited, latency),
            )
    return database_url


def test_json_report_has_the_exact_figures_and_redacted_questions(seeded: str) -> None:
    result = runner.invoke(app, ["report", "--since", "7d", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert (payload["asked"], payload["answered"], payload["not_found"]) == (3, 2, 1)
    assert payload["median_latency_ms"] == 80.0 and payload["escalations"] == 0
    assert payload["topics"][0]["examples"] == ["Can I pay by card? call [phone]"]
    assert [(d["title"], d["citations"]) for d in payload["cited_most"]] == [("Support hours", 2)]


def test_csv_and_table_reports(seeded: str) -> None:
    rows = list(csv.reader(io.StringIO(runner.invoke(app, ["report", "--csv", "--scope", "default"]).output)))
    assert rows[0] == ["section", "name", "value", "detail"]
    assert ["figure", "asked", "3", ""] in rows and ["cited_most", "Support hours", "2", rows[-1][3]] in rows
    table = runner.invoke(app, ["report"])
    assert table.exit_code == 0 and "Unanswered and 👎 questions by topic" in table.output
    assert "Support hours" in table.output
    empty = json.loads(runner.invoke(app, ["report", "--json", "--scope", "other"]).output)
    assert empty["asked"] == 0 and empty["helpful_rate"] is None and empty["topics"] == []


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--since", "7x"], 1, "cannot read the time span"),
        (["--json", "--csv"], 2, "choose one of --json and --csv"),
    ],
)
def test_bad_options_are_refused_with_a_clear_error(seeded: str, args: list[str], code: int, message: str) -> None:
    result = runner.invoke(app, ["report", *args])
    assert result.exit_code == code and message in result.output
