"""Passages cut to the sentences a question is about, for a small generator (``CONTEXT_SENTENCES``).

A 270M model reads five 256-token chunks slowly: prefill of the whole prompt is most of its first-token time.
Keeping only the ``sentences`` sentences of the retrieved passages that share the most words with the question
(English words by a light stem: endings cut, then five letters; Chinese by character bigrams, as the keyword index
does) keeps the answering sentence for 97 % of the real-loop training questions with half the text (10 sentences
of five passages). Passages keep their rank and title, their sentences their order; a passage left with no sentence
is dropped, so citations number what the model saw. An adapter trained on such passages (``context_sentences`` of
the SFT dataset) answers in 0.55 s to the first token instead of 1.0 s; the adapter's ``EVAL.md`` (stage 5) has
what it costs in answers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from bot.domain import Passage
from bot.text import cjk_bigrams, words

STEM_CHARS = 5
"""English words count as the same term when they share this many first letters once a plural or verb ending is
cut (open/opens/opened, merger/mergers, park/parking)."""

_ENDINGS = ("ing", "ed", "s")

# fmt: off
STOP_WORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "by", "did", "do", "does", "for", "from", "had", "has", "have", "how",
    "in", "into", "is", "it", "its", "of", "on", "or", "so", "than", "that", "the", "their", "them", "there",
    "these", "they", "this", "to", "was", "were", "what", "when", "where", "which", "who", "whom", "whose", "why",
    "will", "with",
})
# fmt: on

_SENTENCE_END = re.compile(r"(?<=[.!?。！？；])\s+|(?<=[。！？；])|\n+")


def focus_passages(question: str, passages: Sequence[Passage], sentences: int) -> tuple[Passage, ...]:
    """``passages`` with only the ``sentences`` sentences sharing the most terms with ``question`` (ties: the
    better-ranked passage, then the earlier sentence); ``0`` keeps them whole."""
    if sentences <= 0:
        return tuple(passages)
    wanted = terms(question)
    split = [_split(p) for p in passages]
    ranked = sorted(
        (-len(wanted & terms(text)), number, index)
        for number, (_, body) in enumerate(split)
        for index, text in enumerate(body)
    )
    kept: dict[int, set[int]] = {}
    for _, number, index in ranked[:sentences]:
        kept.setdefault(number, set()).add(index)
    focused = []
    for number, passage in enumerate(passages):
        if number in kept:
            head, body = split[number]
            text = " ".join(s for index, s in enumerate(body) if index in kept[number])
            focused.append(replace(passage, text=f"{head}\n\n{text}" if head else text))
    return tuple(focused)


def terms(text: str) -> set[str]:
    """Search terms of ``text``: stems of its English words outside :data:`STOP_WORDS`, its CJK bigrams."""
    return {_stem(w) for w in words(text) if w not in STOP_WORDS} | set(cjk_bigrams(text))


def _stem(word: str) -> str:
    for ending in _ENDINGS:
        if word.endswith(ending) and not word.endswith("ss") and len(word) - len(ending) >= 3:
            return word[: -len(ending)][:STEM_CHARS]
    return word[:STEM_CHARS]


def _split(passage: Passage) -> tuple[str, list[str]]:
    """The passage's title line (chunks start with their document's title) and its sentences."""
    text = passage.text.strip()
    head = ""
    if passage.title and text.startswith(passage.title) and "\n" in text:
        head, text = text.split("\n", 1)
    return head, [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]
