"""The question detector on labelled channel messages in ``tests/fixtures/desk/``.

``messages.jsonl`` holds 265 English and Chinese messages of a support / patient-information channel: the first
235 were written while the rules were written (the development set); the 30 marked ``"split": "holdout"`` were
written afterwards. ``holdout_2.jsonl`` (104 messages) and ``holdout_3.jsonl`` (131, support, clinic, engineering
and HR channels) were each written and committed before the next change of the rules; ``dev_2.jsonl`` (98) was
written with that change, for the kinds the held-out sets had shown to fail (rhetorical and social questions,
offers, bot posts, messages that name their addressee, Chinese questions without a listed cue word). Rules are
changed for development messages only, so the held-out sets give the honest estimate.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.desk.detector import is_question

FIXTURES = Path(__file__).parent / "fixtures" / "desk"
MESSAGES = FIXTURES / "messages.jsonl"
HOLDOUT_2 = FIXTURES / "holdout_2.jsonl"
HOLDOUT_3 = FIXTURES / "holdout_3.jsonl"
DEV_2 = FIXTURES / "dev_2.jsonl"
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


def _every_labelled_message() -> list[dict]:
    return _labelled() + _labelled(path=HOLDOUT_2) + _labelled(path=HOLDOUT_3) + _labelled(path=DEV_2)


@pytest.mark.parametrize(
    ("lang", "min_precision", "min_recall"),
    [
        # all 598 messages: measured precision 0.983 (288/293), recall 0.990 (288/291)
        (None, 0.982, 0.989),
        # English 0.980 (149/152) / 0.987 (149/151); Chinese 0.986 (139/141) / 0.993 (139/140)
        ("en", 0.98, 0.986),
        ("zh", 0.985, 0.992),
    ],
)
def test_precision_on_every_labelled_message_is_at_least_0_9(
    lang: str | None, min_precision: float, min_recall: float
) -> None:
    rows = [row for row in _every_labelled_message() if lang is None or row["lang"] == lang]
    precision, recall = _precision_recall(rows)
    print(f"question detector, {lang or 'all'} ({len(rows)} messages): precision {precision:.3f}, recall {recall:.3f}")
    assert precision >= max(min_precision, MIN_PRECISION) and recall >= min_recall


@pytest.mark.parametrize(("path", "min_size"), [(HOLDOUT_2, 80), (HOLDOUT_3, 120), (DEV_2, 80)])
def test_each_later_set_has_english_and_chinese_messages_of_both_kinds(path: Path, min_size: int) -> None:
    rows = _labelled(path=path)
    assert len(rows) >= min_size
    for lang in ("en", "zh"):
        assert {row["question"] for row in rows if row["lang"] == lang} == {True, False}


@pytest.mark.parametrize(
    ("name", "rows", "min_precision", "min_recall"),
    [
        # 30 messages; measured precision 0.857 (12/14), recall 0.800 (12/15) before dev_2's rules, 0.867 (13/15)
        # and 0.867 after (English 0.875 / 0.875, Chinese 0.857 / 0.857): still below 0.9
        ("held-out 1", _labelled("holdout"), 0.866, 0.866),
        # 104 messages; measured precision 0.797 (47/59), recall 0.940 (47/50) with the rules it was written
        # against, 0.825 (47/57) and 0.940 after the first development-set fixes, 0.962 (50/52) and 1.000 (50/50)
        # after dev_2's rules (English 0.962 / 1.000, Chinese 0.962 / 1.000); its failure kinds were known when
        # dev_2 was written, so this is no longer a clean estimate
        ("held-out 2", _labelled(path=HOLDOUT_2), 0.961, 1.0),
        # 131 messages, committed before dev_2's rules: measured precision 0.740 (54/73), recall 0.818 (54/66)
        # before them, 0.985 (65/66) and 0.985 (65/66) after (English 0.970 / 0.970, Chinese 1.000 / 1.000). The
        # same person wrote this set and then the rules, so it is optimistic as well
        ("held-out 3", _labelled(path=HOLDOUT_3), 0.984, 0.984),
    ],
)
def test_held_out_messages_written_after_the_rules(
    name: str, rows: list[dict], min_precision: float, min_recall: float
) -> None:
    """The floors are the measured figures, so they catch a change that makes them worse."""
    precision, recall = _precision_recall(rows)
    print(f"question detector, {name} ({len(rows)} messages): precision {precision:.3f}, recall {recall:.3f}")
    assert precision >= min_precision and recall >= min_recall


def test_development_messages_are_all_judged_right() -> None:
    """The rules are tuned on these 235 + 98 messages (measured: precision 1.000, recall 1.000)."""
    rows = [row for row in _labelled() if row.get("split") != "holdout"] + _labelled(path=DEV_2)
    assert len(rows) == 333
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
        "Dana, could you check the on-call rota?",
        "[CI] Build #12 failed: how do I read this? https://ci.example.com/12",
        "【通知】明天几点开会？",
    ],
)
def test_empty_short_addressed_bot_and_polite_messages_are_not_questions(text: str) -> None:
    assert not is_question(text)


def test_a_huge_message_is_judged_quickly_without_error() -> None:
    assert is_question("How do I " + "really " * 50_000 + "reset my password?")
