"""The question detector on the labelled channel messages in ``tests/fixtures/desk/messages.jsonl``.

The set holds 265 English and Chinese messages of a support / patient-information channel. The first 235 were
written while the rules were written; the 30 marked ``"split": "holdout"`` were written afterwards and the rules
were not changed for them, so their figures are the honest estimate.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.desk.detector import is_question

MESSAGES = Path(__file__).parent / "fixtures" / "desk" / "messages.jsonl"
MIN_PRECISION = 0.9


def _labelled(split: str | None = None) -> list[dict]:
    rows = [json.loads(line) for line in MESSAGES.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [row for row in rows if split is None or row.get("split") == split]


def _precision_recall(rows: list[dict]) -> tuple[float, float]:
    predicted = [(is_question(row["text"]), row["question"]) for row in rows]
    true_positives = sum(1 for guess, truth in predicted if guess and truth)
    return (
        true_positives / sum(1 for guess, _ in predicted if guess),
        true_positives / sum(1 for _, truth in predicted if truth),
    )


def test_the_labelled_set_has_at_least_200_english_and_chinese_messages_of_both_kinds() -> None:
    rows = _labelled()
    assert len(rows) >= 200
    for lang in ("en", "zh"):
        kinds = {row["question"] for row in rows if row["lang"] == lang}
        assert kinds == {True, False}


def test_precision_on_the_whole_set_is_at_least_0_9_and_recall_is_reported() -> None:
    precision, recall = _precision_recall(_labelled())
    print(f"question detector, all {len(_labelled())} messages: precision {precision:.3f}, recall {recall:.3f}")
    assert precision >= MIN_PRECISION
    assert recall >= 0.9


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_precision_per_language_is_at_least_0_9(lang: str) -> None:
    precision, recall = _precision_recall([row for row in _labelled() if row["lang"] == lang])
    print(f"question detector, {lang}: precision {precision:.3f}, recall {recall:.3f}")
    assert precision >= MIN_PRECISION


def test_held_out_messages_written_after_the_rules() -> None:
    """Weaker than the tuned set (measured: precision 0.857, recall 0.800 on 30 messages); the floor keeps it from
    getting worse unnoticed."""
    precision, recall = _precision_recall(_labelled("holdout"))
    print(f"question detector, held-out: precision {precision:.3f}, recall {recall:.3f}")
    assert precision >= 0.85 and recall >= 0.8


@pytest.mark.parametrize(
    "text",
    ["", "   ", "?", "why?", "@alice how do I reset my password?", "@小王 怎么重置密码？", "thanks!", "谢谢"],
)
def test_empty_short_addressed_and_polite_messages_are_not_questions(text: str) -> None:
    assert not is_question(text)


def test_a_huge_message_is_judged_quickly_without_error() -> None:
    assert is_question("How do I " + "really " * 50_000 + "reset my password?")
