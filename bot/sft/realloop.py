"""The real RAG loop for SFT: SQuAD-format paragraphs become a throwaway knowledge base built with Lorebot's own
ingestion, and questions are answered over what Lorebot's own retriever returns at serving ``k``.

Training examples and the evaluation both come from here, so the model is trained and measured on exactly what
serving gives it: real chunk sizes with the title prefix, real ranking (the gold chunk is not always first), real
hard negatives (neighbouring paragraphs of the same article) and refusals for questions whose paragraph was
withheld from the index. Questions are never asked of the paragraphs of another split: each split is its own
scope.
"""

from __future__ import annotations

import logging
import random
import re
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from bot.answer.chain import AnswerRequest, condense_messages, search_query
from bot.answer.focus import focus_passages
from bot.answer.prompt import NOT_FOUND_ANSWER, build_messages
from bot.domain import Actor, Passage, Turn
from bot.embeddings import Embedder
from bot.errors import LorebotError
from bot.ingest.pipeline import TextSource
from bot.service import Lorebot
from bot.settings import Settings
from bot.sft import metrics
from bot.sft.config import DatasetConfig
from bot.sft.example import Example, detect_lang
from bot.sft.squad import Paragraph
from bot.storage.embedded import stop_embedded_server

log = logging.getLogger(__name__)

LOOP_ACTOR = Actor("sft", "real-loop", "SFT real loop", is_admin=True)
PRONOUNS = {"en": "it", "zh": "它"}
MIN_ZH_NAME = 3
_ZH_NAME_CHAR = re.compile(r"[\u4e00-\u9fff·]")
_ZH_NOT_NAME = re.compile(r"什么|哪|谁|多少|几|为什么|如何|怎么|怎样|是否|时候|吗|呢")
_ZH_EDGES = frozenset("的是由在了和与及为被把对从·")


@dataclass(frozen=True, slots=True)
class LoopQuestion:
    """A question of the loop; ``answers`` is empty when its paragraph was withheld (the right reply is a refusal)."""

    id: str
    question: str
    answers: tuple[str, ...]
    gold_uri: str  # the source URI of the question's own paragraph
    title: str
    article: str
    lang: str


@dataclass(frozen=True, slots=True)
class LoopCorpus:
    """The paragraphs to ingest and the questions to ask over them."""

    documents: tuple[TextSource, ...]
    questions: tuple[LoopQuestion, ...]

    def answerable(self) -> list[LoopQuestion]:
        return [q for q in self.questions if q.answers]


@contextmanager
def throwaway_settings(settings: Settings) -> Iterator[Settings]:
    """Settings for a knowledge base that lives only until the block ends: an embedded server in a temporary
    folder, never the configured database (evaluation data must not reach a production knowledge base)."""
    with tempfile.TemporaryDirectory(prefix="lorebot-sft-loop-") as name:
        directory = Path(name)
        directory.chmod(0o755)  # the embedded server's OS user must reach it
        try:
            yield settings.model_copy(update={"database_url": None, "data_dir": directory})
        finally:
            stop_embedded_server(directory)


@asynccontextmanager
async def loop_service(settings: Settings, *, embedder: Embedder | None = None) -> AsyncIterator[Lorebot]:
    """The real service (ingestion, retrieval, chain) on ``settings``' database without a rate limit, closed
    afterwards."""
    service = await Lorebot.start(settings.model_copy(update={"rate_limit_per_minute": 0}), embedder=embedder)
    try:
        yield service
    finally:
        await service.close()


def paragraph_uri(paragraph: Paragraph, index: int) -> str:
    return f"{paragraph.article}#{index}"


def build_corpus(
    articles: dict[str, list[Paragraph]],
    *,
    rng: random.Random,
    withheld_fraction: float,
    questions: slice,
) -> LoopCorpus:
    """Ingest every paragraph except a random ``withheld_fraction``; ask the ``questions`` slice of every
    paragraph's questions.

    A withheld paragraph's questions become unanswerable ones, unless one of their answers appears in an
    ingested paragraph (then the index may well answer them, and they are left out rather than mislabelled).
    """
    documents: list[TextSource] = []
    ingested: list[str] = []
    asked: list[tuple[Paragraph, str, bool]] = []
    for paragraphs in articles.values():
        for index, paragraph in enumerate(paragraphs):
            uri = paragraph_uri(paragraph, index)
            withheld = rng.random() < withheld_fraction
            if not withheld:
                documents.append(TextSource(paragraph.context, title=paragraph.title, source_uri=uri))
                ingested.append(metrics.normalize(paragraph.context))
            asked.append((paragraph, uri, withheld))
    chosen: list[LoopQuestion] = []
    for paragraph, uri, withheld in asked:
        for qid, question, answers in paragraph.questions[questions]:
            texts = tuple(dict.fromkeys(a.strip() for a, _ in answers if a.strip()))
            if not texts:
                continue
            if withheld and any(metrics.normalize(a) in text for a in texts for text in ingested):
                continue
            lang = detect_lang(paragraph.context + question)
            chosen.append(
                LoopQuestion(qid, question, () if withheld else texts, uri, paragraph.title, paragraph.article, lang)
            )
    return LoopCorpus(tuple(documents), tuple(chosen))


async def ingest(service: Lorebot, corpus: LoopCorpus, scope: str) -> int:
    """Add the corpus with the real bulk ingestion; returns the number of chunks stored."""
    chunks = 0
    async for item, outcome in service.add_many(LOOP_ACTOR, list(corpus.documents), scope=scope):
        if isinstance(outcome, LorebotError):
            raise LorebotError(f"cannot ingest {item.source_uri}: {outcome}") from outcome
        chunks += outcome.document.chunk_count
    log.info("real loop: %d paragraphs as %d chunks in scope %s", len(corpus.documents), chunks, scope)
    return chunks


async def retrieved_rag(
    config: DatasetConfig,
    service: Lorebot,
    splits: Sequence[tuple[str, dict[str, list[Paragraph]], dict[str, list[Paragraph]]]],
) -> dict[str, list[Example]]:
    """Training and held-out RAG examples over real retrieval, each split of each QA file in its own scope."""
    rng = random.Random(config.seed)
    k = config.retrieval_k or service.settings.retrieval_k
    built: dict[str, list[Example]] = {"train": [], "eval": []}
    for number, (source, *articles) in enumerate(splits):
        for split, chosen in zip(built, articles, strict=True):
            corpus = build_corpus(
                chosen,
                rng=rng,
                withheld_fraction=config.withheld_fraction,
                questions=slice(config.questions_per_paragraph),
            )
            scope = f"sft-{split}-{number}"
            await ingest(service, corpus, scope)
            built[split] += await training_examples(
                service,
                corpus,
                scope=scope,
                k=k,
                sentences=config.context_sentences,
                source=source,
                rng=rng,
                multi_turn_ratio=config.multi_turn_ratio,
                answer_history=config.answer_history,
            )
        log.info("real loop: %s → %d train / %d eval examples so far", source, *map(len, built.values()))
    return built


def reply_for(question: LoopQuestion, passages: Sequence[Passage]) -> str:
    """The reply the model should give over ``passages``: the answer cited with the first passage holding it
    (the question's own paragraph first), else the refusal."""
    golds = [metrics.normalize(a) for a in question.answers]

    def holds(passage: Passage) -> bool:
        text = metrics.normalize(passage.text)
        return any(gold and gold in text for gold in golds)

    ranked = sorted(enumerate(passages, start=1), key=lambda pair: pair[1].source_uri != question.gold_uri)
    number = next((n for n, passage in ranked if holds(passage)), None)
    return NOT_FOUND_ANSWER if number is None else f"{question.answers[0]} [{number}]"


def follow_up(question: LoopQuestion, earlier: str) -> str:
    """The question as the next turn after ``earlier``: a name both questions use becomes a pronoun, so only the
    conversation tells what the follow-up is about. Unchanged (a standalone follow-up) when they share none.

    The name is the longest run both contain of capitalised words or numbers (English: "Super Bowl 50", "ABC";
    never the question's first word), or of at least three Chinese characters without a question word or a
    particle at either end ("广茂铁路", not "是由" or "什么时候").
    """
    lang = question.lang
    shared = [
        n
        for n in _names(question.question, lang)
        if _mentions(question.question, n, lang) and _mentions(earlier, n, lang)
    ]
    if not shared:
        return question.question
    return re.sub(_pattern(max(shared, key=len), lang), PRONOUNS[lang], question.question, count=1)


def _names(question: str, lang: str) -> list[str]:
    """Every candidate name in ``question``: runs of its Chinese characters, or of its capitalised words."""
    if lang == "zh":
        text = "".join(ch if _ZH_NAME_CHAR.match(ch) else " " for ch in question)
        return [
            run[start:end]
            for run in text.split()
            for start in range(len(run))
            for end in range(start + MIN_ZH_NAME, len(run) + 1)
            if not _ZH_NOT_NAME.search(run[start:end]) and run[start] not in _ZH_EDGES and run[end - 1] not in _ZH_EDGES
        ]
    tokens = re.findall(r"[\w'-]+", question)[1:]  # the first word is capitalised as the sentence's start
    names = [tokens[i:j] for i in range(len(tokens)) for j in range(i + 1, len(tokens) + 1)]
    return [" ".join(n) for n in names if all(w[0].isupper() or w[0].isdigit() for w in n) and n[0][0].isupper()]


def _mentions(text: str, name: str, lang: str) -> bool:
    return re.search(_pattern(name, lang), text) is not None


def _pattern(name: str, lang: str) -> str:
    """``name`` as a regular expression: anywhere in Chinese; in English as whole words, with an article before
    it ("of the Scottish Parliament" → "of it")."""
    return re.escape(name) if lang == "zh" else rf"(?<![\w'-])(?:[Tt]he )?{re.escape(name)}(?![\w'-])"


async def training_examples(
    service: Lorebot,
    corpus: LoopCorpus,
    *,
    scope: str,
    k: int,
    sentences: int,
    source: str,
    rng: random.Random,
    multi_turn_ratio: float,
    answer_history: bool = True,
) -> list[Example]:
    """One example per question over the passages the real retriever returns, cut to their ``sentences`` most
    relevant sentences as the chain cuts them (:mod:`bot.answer.focus`); a ``multi_turn_ratio`` share
    of the answerable ones become a conversation instead: the condense step (history + follow-up → the
    standalone question) and the answer to the follow-up, each as the chain prompts them: with the history, or
    (``answer_history=False``, the chain's ``ANSWER_HISTORY``) the standalone question alone.

    Questions with nothing relevant retrieved are skipped: serving answers them without the model.
    """
    by_article: dict[str, list[LoopQuestion]] = {}
    for question in corpus.answerable():
        by_article.setdefault(question.article, []).append(question)
    examples: list[Example] = []
    for question in corpus.questions:
        earlier = [q for q in by_article.get(question.article, []) if q is not question]
        if question.answers and earlier and rng.random() < multi_turn_ratio:
            referred = [q for q in earlier if follow_up(question, q.question) != question.question]
            first = rng.choice(referred or earlier)
            examples += await _conversation(
                service, question, first, scope=scope, k=k, sentences=sentences, source=source, history=answer_history
            )
            continue
        passages = await _retrieve(service, question.question, scope, k, sentences)
        if passages:
            examples.append(_example(question, build_messages(question.question, passages), passages, source))
    return examples


async def _retrieve(service: Lorebot, query: str, scope: str, k: int, sentences: int) -> tuple[Passage, ...]:
    """What the chain's retrieve step gives the model for ``query``."""
    return focus_passages(query, await service.retriever.search(query, [scope], k), sentences)


async def _conversation(
    service: Lorebot,
    question: LoopQuestion,
    first: LoopQuestion,
    *,
    scope: str,
    k: int,
    sentences: int,
    source: str,
    history: bool,
) -> list[Example]:
    earlier = await _retrieve(service, first.question, scope, k, sentences)
    turns = (Turn(first.question, reply_for(first, earlier)),)
    asked = follow_up(question, first.question)
    condense = condense_messages(AnswerRequest(asked, (scope,), turns))
    examples = [_example(question, [*condense], (), source, reply=question.question)]
    passages = await _retrieve(service, search_query(question.question, asked), scope, k, sentences)
    if passages:
        answer = build_messages(asked, passages, turns) if history else build_messages(question.question, passages)
        examples.append(_example(question, answer, passages, source))
    return examples


def _example(
    question: LoopQuestion,
    messages: list[dict[str, str]],
    passages: Sequence[Passage],
    source: str,
    *,
    reply: str | None = None,
) -> Example:
    reply = reply if reply is not None else reply_for(question, passages)
    return Example(
        messages=(*messages, {"role": "assistant", "content": reply}),
        source=source,
        group=question.article,
        lang=question.lang,
    )
