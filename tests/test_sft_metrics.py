"""Answer metrics on answers whose scores are known by hand."""

from __future__ import annotations

import pytest

from bot.answer.prompt import NOT_FOUND_ANSWER
from bot.sft import metrics


def test_exact_match_ignores_case_punctuation_articles_and_citations() -> None:
    assert metrics.exact_match("The Denver Broncos. [2]", ["Denver Broncos"]) == 1.0
    assert metrics.exact_match("Broncos [2]", ["Denver Broncos"]) == 0.0
    assert metrics.exact_match("光荣和ω-force。[1]", ["光荣和ω-force"]) == 1.0


def test_token_f1_is_the_best_overlap_with_any_gold_answer() -> None:
    assert metrics.token_f1("Denver Broncos [1]", ["Denver Broncos", "Broncos"]) == 1.0
    # prediction 3 tokens, gold 2, overlap 2: p=2/3 r=1 → f1=0.8
    assert metrics.token_f1("the Denver Broncos team", ["Denver Broncos"]) == pytest.approx(0.8)
    assert metrics.token_f1("Carolina Panthers", ["Denver Broncos"]) == 0.0
    assert metrics.token_f1("", ["Denver Broncos"]) == 0.0


def test_token_f1_counts_chinese_characters() -> None:
    # prediction 光荣 (2 chars) vs gold 光荣公司 (4 chars): p=1, r=0.5 → f1=2/3
    assert metrics.token_f1("光荣 [1]", ["光荣公司"]) == pytest.approx(2 / 3)


def test_refusal_is_the_exact_not_found_sentence() -> None:
    assert metrics.is_refusal(NOT_FOUND_ANSWER)
    assert metrics.is_refusal(NOT_FOUND_ANSWER.upper() + " [1]")
    assert not metrics.is_refusal("I could not find the keys.")


def test_citation_is_correct_only_when_every_cited_source_holds_the_answer() -> None:
    passages = ["The Broncos won.", "Denver Broncos beat the Panthers.", "Weather was fine."]
    assert metrics.citation_correct("Denver Broncos [2]", ["Denver Broncos"], passages)
    assert not metrics.citation_correct("Denver Broncos [3]", ["Denver Broncos"], passages)
    assert not metrics.citation_correct("Denver Broncos [2][3]", ["Denver Broncos"], passages)
    assert not metrics.citation_correct("Denver Broncos", ["Denver Broncos"], passages)
    assert not metrics.citation_correct("Denver Broncos [9]", ["Denver Broncos"], passages)
    assert metrics.cited_numbers("a [2, 3] b [2] c 【1】") == [2, 3, 1]
