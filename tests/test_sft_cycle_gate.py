"""The promotion gate's decision table: margin on the primary metric, tolerance on every gated metric and
language, lower-is-better metrics, languages with too few questions, scores that do not exist."""

from __future__ import annotations

import math

from bot.sft.config import CycleConfig
from bot.sft.gate import decide, table

CONFIG = CycleConfig(margin=1.0, tolerance=2.0, min_questions=5)


def _loop(f1: float, refusal: float, false_refusal: float, *, zh_f1: float = 40.0, zh_questions: int = 20) -> dict:
    def scores(value: float, count: int) -> dict:
        return {"answerable": count, "unanswerable": 4, "token_f1": value, "gold_cited": 0.5,
                "refusal_accuracy": refusal, "false_refusal": false_refusal}  # fmt: skip

    return {"loop": {"all": scores(f1, 40), "en": scores(f1, 20), "zh": scores(zh_f1, zh_questions)}}


def test_a_candidate_that_gains_the_margin_and_loses_nothing_is_promoted() -> None:
    decision = decide(_loop(40.0, 0.8, 0.1), _loop(41.5, 0.8, 0.05), CONFIG)

    assert decision.promote and decision.reasons == ()
    primary = next(r for r in decision.rows if (r.suite, r.lang, r.metric) == ("loop", "all", "token_f1"))
    assert (primary.gain, primary.needed, primary.passed) == (1.5, 1.0, True)
    false_refusal = next(r for r in decision.rows if (r.lang, r.metric) == ("all", "false_refusal"))
    assert false_refusal.gain == 5.0  # fewer false refusals is better: +5 points
    assert table(decision).endswith("PROMOTE")


def test_a_gain_below_the_margin_is_refused() -> None:
    decision = decide(_loop(40.0, 0.8, 0.1), _loop(40.5, 0.8, 0.1), CONFIG)

    assert not decision.promote
    assert decision.reasons == ("loop all token_f1 gains +0.50 points (needs +1.00)",)


def test_a_regression_in_one_language_beyond_the_tolerance_is_refused() -> None:
    decision = decide(_loop(40.0, 0.8, 0.1), _loop(45.0, 0.8, 0.1, zh_f1=37.5), CONFIG)

    assert decision.reasons == ("loop zh token_f1 changes -2.50 points (needs -2.00)",)
    assert "| loop | zh | token_f1 | 40.000 | 37.500 | -2.50 | -2.00 | 24 | FAIL |" in table(decision)


def test_rates_are_compared_in_points_and_more_false_refusals_is_worse() -> None:
    decision = decide(_loop(40.0, 0.80, 0.10), _loop(45.0, 0.77, 0.13), CONFIG)

    assert set(decision.reasons) == {
        f"loop {lang} {metric} changes -3.00 points (needs -2.00)"
        for lang in ("all", "en", "zh")
        for metric in ("refusal_accuracy", "false_refusal")
    }


def test_a_language_with_too_few_questions_is_reported_but_does_not_gate() -> None:
    decision = decide(_loop(40.0, 0.8, 0.1, zh_questions=0), _loop(45.0, 0.8, 0.1, zh_f1=0.0, zh_questions=0), CONFIG)

    assert decision.promote
    zh = next(r for r in decision.rows if (r.lang, r.metric) == ("zh", "token_f1"))
    assert not zh.gating and "| not gating |" in table(decision)


def test_the_regression_suite_gates_like_the_loop() -> None:
    current = {
        **_loop(40.0, 0.8, 0.1),
        "regression": {"all": {"questions": 30, "token_f1": 90.0, "wrong_refusal": 0.0}},
    }
    candidate = {
        **_loop(45.0, 0.8, 0.1),
        "regression": {"all": {"questions": 30, "token_f1": 70.0, "wrong_refusal": 0.2}},
    }

    decision = decide(current, candidate, CONFIG)

    assert decision.reasons == (
        "regression all token_f1 changes -20.00 points (needs -2.00)",
        "regression all wrong_refusal changes -20.00 points (needs -2.00)",
    )


def test_missing_or_null_scores_are_skipped_and_no_primary_score_refuses() -> None:
    current = {"loop": {"all": {"answerable": 0, "unanswerable": 9, "token_f1": math.nan, "refusal_accuracy": 0.5}}}
    candidate = {"loop": {"all": {"answerable": 0, "unanswerable": 9, "token_f1": None, "refusal_accuracy": 0.9}}}

    decision = decide(current, candidate, CONFIG)

    assert [r.metric for r in decision.rows] == ["refusal_accuracy"]
    assert decision.reasons == ("no token_f1 score in the real loop: nothing to decide on",)
