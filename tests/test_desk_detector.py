"""The question detector on labelled channel messages in ``tests/fixtures/desk/``.

``messages.jsonl`` holds 265 English and Chinese messages of a support / patient-information channel: the first
235 were written while the rules were written (the development set); the 30 marked ``"split": "holdout"`` were
written afterwards. ``holdout_2.jsonl`` holds 104 more from support, clinic and engineering channels, written and
committed before the rules were changed again. Rules are changed for the development messages only, so the two
held-out sets give the honest estimate: it is below the 0.9 precision the development set reaches.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.desk.detector import is_question

FIXTURES = Path(__file__).parent / "fixtures" / "desk"
MESSAGES = FIXTURES / "messages.jsonl"
HOLDOUT_2 = FIXTURES / "holdout_2.jsonl"
MIN_PRECISION = 0.9


def _labelled(split: str | None = None, path: Path = MESSAGES) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
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


def test_the_second_held_out_set_has_at_least_80_english_and_chinese_messages_of_both_kinds() -> None:
    rows = _labelled(path=HOLDOUT_2)
    assert len(rows) >= 80
    for lang in ("en", "zh"):
        assert {row["question"] for row in rows if row["lang"] == lang} == {True, False}


@pytest.mark.parametrize(
    ("name", "rows", "min_precision", "min_recall"),
    [
        # 30 messages; measured precision 0.857 (12/14), recall 0.800 (12/15), unchanged by the later rules
        ("held-out 1", _labelled("holdout"), 0.857, 0.8),
        # 104 messages; measured precision 0.797 (47/59), recall 0.940 (47/50) with the rules it was written
        # against, 0.825 (47/57) and 0.940 after the development-set fixes (English 0.833 / 1.000, Chinese
        # 0.815 / 0.880)
        ("held-out 2", _labelled(path=HOLDOUT_2), 0.824, 0.94),
    ],
)
def test_held_out_messages_written_after_the_rules(
    name: str, rows: list[dict], min_precision: float, min_recall: float
) -> None:
    """Weaker than the development set, and below the 0.9 target: the floors are the measured figures, so they
    catch a change that makes them worse."""
    precision, recall = _precision_recall(rows)
    print(f"question detector, {name} ({len(rows)} messages): precision {precision:.3f}, recall {recall:.3f}")
    assert precision >= min_precision and recall >= min_recall


def test_development_messages_are_all_judged_right() -> None:
    """The rules are tuned on these 235 messages (measured: precision 1.000, recall 1.000)."""
    rows = [row for row in _labelled() if row.get("split") != "holdout"]
    assert len(rows) == 235
    assert _precision_recall(rows) == (1.0, 1.0)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "?",
        "why?",
        "@alice how do I reset my password?",
        "@小王 怎么重置密码？",
        "thanks!",
        "谢谢",
        "What a day...",
        "Who wants cake? It's in the kitchen.",
    ],
)
def test_empty_short_addressed_and_polite_messages_are_not_questions(text: str) -> None:
    assert not is_question(text)


def test_a_huge_message_is_judged_quickly_without_error() -> None:
    assert is_question("How do I " + "really " * 50_000 + "reset my password?")
