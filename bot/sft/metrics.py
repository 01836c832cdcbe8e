"""Answer metrics: SQuAD exact match and token F1 (character level for Chinese, as CMRC scores), citation
correctness and refusal accuracy. Pure functions over strings, so they are easy to test and reuse."""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Sequence

from bot.answer.prompt import NOT_FOUND_ANSWER

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_MARKERS = re.compile(r"\s*(?:\[\s*\d+(?:\s*[,，、;]\s*\d+)*\s*\]|【\s*\d+\s*】)")
_CITED = re.compile(r"\d+")
_CJK = re.compile(r"([\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff])")
_PUNCTUATION = set(string.punctuation) | {
    "，",
    "。",
    "！",
    "？",
    "；",
    "：",
    "、",
    "“",
    "”",
    "‘",
    "’",
    "（",
    "）",
    "《",
    "》",
    "「",
    "」",
    "【",
    "】",
    "·",
    "—",
    "…",
}
_NOT_FOUND = " ".join(re.sub(r"\W+", " ", NOT_FOUND_ANSWER.lower()).split())


def strip_citations(text: str) -> str:
    """The answer without ``[n]`` markers."""
    return _MARKERS.sub("", text).strip()


def cited_numbers(text: str) -> list[int]:
    """Source numbers cited with ``[n]`` / ``[n, m]`` markers, in order, without repeats."""
    numbers = [int(d) for marker in _MARKERS.findall(text) for d in _CITED.findall(marker)]
    return list(dict.fromkeys(numbers))


def normalize(text: str) -> str:
    """SQuAD normalisation (lower case, no punctuation, no English articles, single spaces)."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(" " if char in _PUNCTUATION else char for char in text)
    return " ".join(_ARTICLES.sub(" ", text).split())


def tokens(text: str) -> list[str]:
    """Words for English, single characters for CJK (mixed text splits both ways)."""
    return _CJK.sub(r" \1 ", normalize(text)).split()


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    prediction = (
        normalize(strip_citations(prediction)).replace(" ", "")
        if _is_cjk(prediction)
        else normalize(strip_citations(prediction))
    )
    golds = {normalize(a).replace(" ", "") if _is_cjk(a) else normalize(a) for a in answers}
    return float(prediction in golds)


def token_f1(prediction: str, answers: Sequence[str]) -> float:
    """Best F1 over the gold answers, in [0, 1]."""
    predicted = tokens(strip_citations(prediction))
    best = 0.0
    for answer in answers:
        gold = tokens(answer)
        common = sum((Counter(predicted) & Counter(gold)).values())
        if common:
            precision, recall = common / len(predicted), common / len(gold)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def is_refusal(prediction: str) -> bool:
    """The model said the answer is not in the sources (the exact refusal, markers and punctuation aside)."""
    return _NOT_FOUND in " ".join(re.sub(r"\W+", " ", strip_citations(prediction).lower()).split())


def citation_correct(prediction: str, answers: Sequence[str], passages: Sequence[str]) -> bool:
    """At least one source is cited and every cited source exists and contains a gold answer."""
    numbers = cited_numbers(prediction)
    if not numbers or any(not 1 <= n <= len(passages) for n in numbers):
        return False
    golds = [normalize(a) for a in answers]
    return all(any(gold and gold in normalize(passages[n - 1]) for gold in golds) for n in numbers)


def _is_cjk(text: str) -> bool:
    return bool(_CJK.search(text))


def contains_answer(prediction: str, answers: Sequence[str]) -> bool:
    """A gold answer appears in the prediction (both normalised; spaces ignored for Chinese)."""
    text = normalize(strip_citations(prediction))
    if _is_cjk(text):
        text = text.replace(" ", "")
    for answer in answers:
        gold = normalize(answer).replace(" ", "") if _is_cjk(answer) else normalize(answer)
        if gold and gold in text:
            return True
    return False
