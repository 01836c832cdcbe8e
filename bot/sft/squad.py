"""SQuAD-format reading comprehension → RAG examples in the exact serving prompt.

Each question becomes the user turn of :func:`bot.answer.prompt.build_messages` over its gold paragraph mixed
with distractor paragraphs (one from the same article when possible, the rest from other articles of the same
split), shuffled; the reply is the gold answer followed by the gold source's citation marker. A share of the
questions is asked over distractors only, and the reply is exactly :data:`~bot.answer.prompt.NOT_FOUND_ANSWER`,
so the model learns to refuse. Passages are cut to a few sentences around the answer to keep sequences short.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.answer.prompt import NOT_FOUND_ANSWER, build_messages
from bot.domain import Passage
from bot.sft.errors import DatasetFormatError
from bot.sft.example import Example, detect_lang

_SENTENCE_END = re.compile(r"(?<=[.!?。！？；])\s*")
_CHARS_PER_TOKEN = {"en": 4.0, "zh": 1.2}


@dataclass(frozen=True, slots=True)
class Paragraph:
    article: str
    title: str
    context: str
    questions: tuple[tuple[str, str, tuple[tuple[str, int], ...]], ...]  # (id, question, ((text, start), ...))


def load_articles(path: Path, *, source: str) -> dict[str, list[Paragraph]]:
    """Paragraphs grouped by article id ``source:title``; raises :class:`DatasetFormatError` on bad structure."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DatasetFormatError(path, e.lineno, f"invalid JSON: {e.msg}") from e
    except OSError as e:
        raise DatasetFormatError(path, 0, f"cannot read file: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise DatasetFormatError(path, 1, "not SQuAD format: expected an object with a 'data' array")
    articles: dict[str, list[Paragraph]] = {}
    for number, article in enumerate(data["data"], start=1):
        try:
            title = str(article.get("title") or article.get("id") or number)
            group = f"{source}:{title}"
            articles.setdefault(group, []).extend(_paragraph(group, title, p) for p in article["paragraphs"])
        except (KeyError, TypeError, AttributeError) as e:
            raise DatasetFormatError(path, number, f"malformed article: {e!r}", unit="article") from e
    return articles


def _paragraph(group: str, title: str, raw: dict) -> Paragraph:
    questions = tuple(
        (str(qa["id"]), qa["question"], tuple((a["text"], int(a.get("answer_start", -1))) for a in qa["answers"]))
        for qa in raw["qas"]
        if qa.get("answers") and not qa.get("is_impossible")
    )
    return Paragraph(article=group, title=title.replace("_", " "), context=raw["context"], questions=questions)


def rag_examples(
    articles: dict[str, list[Paragraph]],
    *,
    source: str,
    rng: random.Random,
    questions_per_paragraph: int,
    distractors: int,
    passage_tokens: int,
    unanswerable_ratio: float,
) -> list[Example]:
    """Answerable and unanswerable RAG examples from one split's articles (distractors stay inside the split)."""
    pool = [p for paragraphs in articles.values() for p in paragraphs]
    examples = []
    for paragraphs in articles.values():
        for paragraph in paragraphs:
            for qid, question, answers in paragraph.questions[:questions_per_paragraph]:
                unanswerable = rng.random() < unanswerable_ratio
                example = _example(
                    paragraph,
                    qid,
                    question,
                    answers,
                    pool,
                    source=source,
                    rng=rng,
                    distractors=distractors,
                    passage_tokens=passage_tokens,
                    unanswerable=unanswerable,
                )
                if example is not None:
                    examples.append(example)
    return examples


def _example(
    paragraph: Paragraph,
    qid: str,
    question: str,
    answers: tuple[tuple[str, int], ...],
    pool: Sequence[Paragraph],
    *,
    source: str,
    rng: random.Random,
    distractors: int,
    passage_tokens: int,
    unanswerable: bool,
) -> Example | None:
    lang = detect_lang(paragraph.context + question)
    budget = int(passage_tokens * _CHARS_PER_TOKEN[lang])
    texts = [a for a, _ in answers]
    gold_text, gold_start = answers[0]
    chosen = _distractors(paragraph, pool, texts, rng, distractors + (1 if unanswerable else 0))
    if len(chosen) < distractors:
        return None
    passages = [(p, _window(p.context, -1, "", budget)) for p in chosen]
    gold_number = None
    if not unanswerable:
        window = _window(paragraph.context, gold_start, gold_text, budget)
        if gold_text not in window:
            return None
        passages.append((paragraph, window))
    rng.shuffle(passages)
    if not unanswerable:
        gold_number = next(i for i, (p, _) in enumerate(passages, start=1) if p is paragraph)
    built = [
        Passage(chunk_id=i, document_id=i, title=p.title, source_uri=f"{p.article}", text=text, score=0.0)
        for i, (p, text) in enumerate(passages, start=1)
    ]
    reply = NOT_FOUND_ANSWER if unanswerable else f"{gold_text.strip()} [{gold_number}]"
    messages = [*build_messages(question, built), {"role": "assistant", "content": reply}]
    qa = {
        "id": qid,
        "question": question,
        "answers": [] if unanswerable else sorted(set(texts), key=texts.index),
        "gold": gold_number,
        "passages": [{"title": p.title, "source_uri": p.source_uri, "text": p.text} for p in built],
        "lang": lang,
    }
    return Example(messages=tuple(messages), source=source, group=paragraph.article, lang=lang, qa=qa)


def _distractors(
    paragraph: Paragraph, pool: Sequence[Paragraph], answers: list[str], rng: random.Random, count: int
) -> list[Paragraph]:
    """One hard distractor from the same article, the rest from other articles; none may contain an answer."""

    def usable(candidate: Paragraph) -> bool:
        return candidate is not paragraph and not any(a in candidate.context for a in answers)

    same = [p for p in pool if p.article == paragraph.article and usable(p)]
    chosen = [rng.choice(same)] if same and count else []
    for _ in range(count * 10):
        if len(chosen) >= count:
            break
        candidate = pool[rng.randrange(len(pool))]
        if candidate.article != paragraph.article and usable(candidate) and candidate not in chosen:
            chosen.append(candidate)
    return chosen


def _window(context: str, start: int, answer: str, budget: int) -> str:
    """Whole sentences around the answer (or from the start) within ``budget`` characters."""
    if len(context) <= budget:
        return context
    spans, offset = [], 0
    for sentence in _SENTENCE_END.split(context):
        if sentence:
            begin = context.find(sentence, offset)
            spans.append((begin, begin + len(sentence)))
            offset = begin + len(sentence)
    if start < 0 or context[start : start + len(answer)] != answer:
        start = context.find(answer) if answer else 0
    centre = next((i for i, (b, e) in enumerate(spans) if b <= max(start, 0) < e), 0)
    lo = hi = centre
    while True:
        grown = False
        if hi + 1 < len(spans) and spans[hi + 1][1] - spans[lo][0] <= budget:
            hi, grown = hi + 1, True
        if lo > 0 and spans[hi][1] - spans[lo - 1][0] <= budget:
            lo, grown = lo - 1, True
        if not grown:
            break
    text = context[spans[lo][0] : spans[hi][1]]
    if len(text) > budget:  # one huge sentence: cut characters around the answer (or keep the start)
        at = text.find(answer) if answer else 0
        left = max(0, min(at - (budget - len(answer)) // 2, len(text) - budget))
        text = text[left : left + budget]
    return text.strip()
