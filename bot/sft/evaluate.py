"""Base vs adapter inside the RAG loop.

The default, **real-loop** evaluation (:func:`evaluate_loop`) is what a user gets: held-out SQuAD-format
paragraphs are ingested with Lorebot's own ingestion into a throwaway knowledge base (a random share withheld,
so their questions must be refused) and every question is asked through :meth:`bot.service.Lorebot.ask` —
real chunking, embedding, hybrid retrieval, relevance gate, ``k``, prompt, citation parsing and not-found path.

The **stored-passage** evaluation (:func:`evaluate`, :func:`evaluate_in_process`) answers over the passages
stored with each question in ``eval_qa.jsonl``: fast, identical contexts for every model, but not what serving
produces (short windows around the answer, no retriever). Targets are OpenAI-compatible endpoints (vLLM, the
local server, anything else); :func:`local_targets` starts the local server twice (base, base + adapter).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import statistics
import time
from collections.abc import Awaitable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from bot.answer.citations import is_not_found, resolve_citations, strip_markers
from bot.answer.prompt import build_messages
from bot.domain import Answer, ConversationKey, Passage, Question
from bot.embeddings import Embedder
from bot.errors import EmptyAnswer
from bot.local_llm.adapter_format import AdapterFormat
from bot.service import Lorebot
from bot.settings import Settings
from bot.sft import metrics
from bot.sft.config import DatasetConfig, EvalConfig
from bot.sft.errors import SFTError
from bot.sft.realloop import LOOP_ACTOR, LoopCorpus, build_corpus, follow_up, ingest, loop_service

log = logging.getLogger(__name__)

EVAL_SCOPE = "sft-eval"


@dataclass(frozen=True, slots=True)
class Target:
    """One model to evaluate: a label for the table, the endpoint and the model name to request, and how its
    adapter declares it is served when known (None: the dataset config's passage format, the settings' history)."""

    label: str
    base_url: str
    model: str
    prompt_format: AdapterFormat | None = None


@dataclass(frozen=True, slots=True)
class QAItem:
    id: str
    question: str
    answers: tuple[str, ...]  # empty: the answer is not in the passages (or its paragraph is not in the index)
    passages: tuple[Passage, ...]  # stored passages; empty in the real loop, where retrieval finds them
    lang: str
    gold_uri: str = ""  # real loop: the source URI of the question's own paragraph


@dataclass(frozen=True, slots=True)
class Prediction:
    item: QAItem
    text: str
    latency_ms: float
    passages: tuple[Passage, ...]  # what the model was shown
    cited_uris: tuple[str, ...] = ()
    first_token_ms: float | None = None

    @classmethod
    def of(cls, item: QAItem, answer: Answer, started: float) -> Prediction:
        """The prediction ``answer`` makes for ``item``, timed from ``started`` (``time.perf_counter()``)."""
        return cls(
            item,
            answer.text,
            (time.perf_counter() - started) * 1000,
            answer.passages,
            tuple(c.source_uri for c in answer.citations),
            answer.timings.get("first_token_ms"),
        )

    @classmethod
    async def timed(cls, item: QAItem, answering: Awaitable[Answer]) -> Prediction:
        """The prediction of ``answering``, timed; an empty reply is scored as a wrong answer (neither a refusal
        nor a citation) instead of ending the whole evaluation."""
        started = time.perf_counter()
        try:
            return cls.of(item, await answering, started)
        except EmptyAnswer:
            return cls(item, "", (time.perf_counter() - started) * 1000, ())


class StoredPassages:
    """A retriever that returns the passages stored with each held-out question (the same for every model)."""

    def __init__(self, items: Sequence[QAItem]) -> None:
        self._by_question = {item.question.strip(): item.passages for item in items}

    async def search(self, query: str, scopes: Sequence[str], k: int) -> list[Passage]:
        return list(self._by_question.get(query.strip(), ()))[:k]


def load_items(path: Path, *, limit: int, seed: int) -> list[QAItem]:
    """A seeded sample of ``limit`` questions from ``eval_qa.jsonl`` (0 = all)."""
    if not path.is_file():
        raise SFTError(f"{path} not found; build the dataset with `lorebot sft dataset` first")
    items = []
    with path.open(encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                passages = tuple(
                    Passage(
                        chunk_id=i,
                        document_id=i,
                        title=p["title"],
                        source_uri=p["source_uri"],
                        text=p["text"],
                        score=1.0,
                        scope=EVAL_SCOPE,
                    )
                    for i, p in enumerate(record["passages"], start=1)
                )
                items.append(
                    QAItem(
                        str(record["id"]),
                        record["question"],
                        tuple(record["answers"]),
                        passages,
                        record.get("lang", "en"),
                    )
                )
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise SFTError(f"{path}: line {number}: not an eval record: {e!r}") from e
    if not items:
        raise SFTError(f"{path} holds no questions")
    random.Random(seed).shuffle(items)
    return items[:limit] if limit else items


async def predict(settings: Settings, target: Target, items: Sequence[QAItem], config: EvalConfig) -> list[Prediction]:
    """Answers from one target through the real chain; raises the chain's ``AnswerError`` if the endpoint fails."""
    from bot.answer.chain import Answerer

    target_settings = _target_settings(settings, target, config).model_copy(update={"retrieval_k": 50})
    answerer = Answerer(target_settings, StoredPassages(items))
    predictions = []
    for number, item in enumerate(items, start=1):
        predictions.append(await Prediction.timed(item, answerer.answer(item.question, [EVAL_SCOPE])))
        if number % 10 == 0:
            log.info("%s: %d/%d answered", target.label, number, len(items))
    return predictions


def _target_settings(settings: Settings, target: Target, config: EvalConfig) -> Settings:
    """``settings`` answering with ``target`` and the evaluation's decoding settings."""
    return settings.model_copy(
        update={
            "llm_base_url": target.base_url,
            "llm_model": target.model,
            "llm_temperature": config.temperature,
            "llm_max_tokens": config.max_tokens,
            "llm_timeout_s": config.timeout_s,
        }
    )


def score(predictions: Sequence[Prediction]) -> dict[str, float]:
    """EM/F1/citations over answerable questions, refusal accuracy over unanswerable ones, latency over all."""
    answerable = [p for p in predictions if p.item.answers]
    unanswerable = [p for p in predictions if not p.item.answers]
    with_gold = [p for p in answerable if p.item.gold_uri]
    latencies = [p.latency_ms for p in predictions]
    first_tokens = [p.first_token_ms for p in predictions if p.first_token_ms is not None]

    def mean(values: list[float]) -> float:
        return round(statistics.fmean(values), 4) if values else float("nan")

    return {
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "exact_match": mean([metrics.exact_match(p.text, p.item.answers) * 100 for p in answerable]),
        "token_f1": mean([metrics.token_f1(p.text, p.item.answers) * 100 for p in answerable]),
        "gold_contained": mean([float(metrics.contains_answer(p.text, p.item.answers)) for p in answerable]),
        "gold_cited": mean([float(p.item.gold_uri in p.cited_uris) for p in with_gold]),
        "citation_correct": mean(
            [float(metrics.citation_correct(p.text, p.item.answers, [x.text for x in p.passages])) for p in answerable]
        ),
        "false_refusal": mean([float(metrics.is_refusal(p.text)) for p in answerable]),
        "refusal_accuracy": mean([float(metrics.is_refusal(p.text)) for p in unanswerable]),
        "latency_p50_ms": _percentile(latencies, 0.5),
        "latency_p95_ms": _percentile(latencies, 0.95),
        "first_token_p50_ms": _percentile(first_tokens, 0.5),
    }


def score_by_language(predictions: Sequence[Prediction]) -> Results:
    """:func:`score` over all questions (``all``) and per language, languages in alphabetical order."""
    languages = sorted({p.item.lang for p in predictions})
    return {"all": score(predictions)} | {
        lang: score([p for p in predictions if p.item.lang == lang]) for lang in languages
    }


def _percentile(values: Sequence[float], quantile: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * quantile))], 1)


ROWS = (
    ("exact_match", "Exact match (answerable, %)", "{:.1f}"),
    ("token_f1", "Token F1 (answerable, %)", "{:.1f}"),
    ("gold_contained", "Gold answer contained (answerable)", "{:.3f}"),
    ("gold_cited", "Gold document cited (answerable)", "{:.3f}"),
    ("citation_correct", "Citation correct (answerable)", "{:.3f}"),
    ("false_refusal", "False refusals (answerable)", "{:.3f}"),
    ("refusal_accuracy", "Refusal accuracy (unanswerable)", "{:.3f}"),
    ("latency_p50_ms", "Latency p50 (ms)", "{:.0f}"),
    ("latency_p95_ms", "Latency p95 (ms)", "{:.0f}"),
    ("first_token_p50_ms", "First token p50 (ms)", "{:.0f}"),
)


Results = dict[str, dict[str, dict[str, float]]]
"""Scores by target label, then by language (``all``, ``en``, ``zh``, …)."""


def table(results: Results) -> str:
    """A Markdown table with one column per target and language (all languages first)."""
    columns = [(label, lang) for lang in next(iter(results.values())) for label in results]
    lines = [
        "| metric | " + " | ".join(f"{label} · {lang}" for label, lang in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for key, name, cell in ROWS:
        values = [results[label].get(lang, {}).get(key, float("nan")) for label, lang in columns]
        if all(math.isnan(value) for value in values):
            continue
        lines.append(f"| {name} | " + " | ".join(cell.format(value) for value in values) + " |")
    counts = ", ".join(
        f"{lang}: {scores['answerable']} answerable / {scores['unanswerable']} unanswerable"
        for lang, scores in next(iter(results.values())).items()
    )
    lines.append(f"\nQuestions per target — {counts}.")
    return "\n".join(lines)


async def evaluate(
    settings: Settings, targets: Sequence[Target], config: EvalConfig, *, output_dir: Path | None = None
) -> Results:
    """Score every target on the same questions; writes ``eval.json``, ``eval.md`` and the raw answers."""
    items = load_items(config.eval_file, limit=config.limit, seed=config.seed)
    predictions = {}
    for target in targets:
        log.info("evaluating %s (%s at %s) on %d questions", target.label, target.model, target.base_url, len(items))
        predictions[target.label] = await predict(settings, target, items, config)
    return report(predictions, output_dir)


def evaluate_in_process(
    base_model: str, adapter_path: Path, config: EvalConfig, *, batch_size: int = 8, output_dir: Path | None = None
) -> Results:
    """Base vs base + adapter with batched ``generate`` in this process: the messages the chain would send
    (:func:`bot.answer.prompt.build_messages`), the serving chat template, and the chain's citation clean-up.
    Latency is the batch time divided by the batch size, not a per-request latency."""
    from peft import PeftModel

    from bot.local_llm.modeling import load_model, load_tokenizer
    from bot.sft.generate import generate_batched

    items = load_items(config.eval_file, limit=config.limit, seed=config.seed)
    conversations = [build_messages(item.question, item.passages) for item in items]
    tokenizer = load_tokenizer(base_model)
    model = load_model(base_model).eval()
    predictions = {}
    for label in ("base", "adapter"):
        if label == "adapter":
            model = PeftModel.from_pretrained(model, str(adapter_path)).merge_and_unload().eval()
        log.info("evaluating %s in process on %d questions", label, len(items))
        replies = generate_batched(model, tokenizer, conversations, max_tokens=config.max_tokens, batch_size=batch_size)
        predictions[label] = [
            Prediction(item, _as_served(text, item.passages), ms, item.passages)
            for item, (text, ms) in zip(items, replies, strict=True)
        ]
    return report(predictions, output_dir)


def _as_served(text: str, passages: Sequence[Passage]) -> str:
    """What :class:`~bot.answer.chain.Answerer` would return for this raw reply."""
    if is_not_found(text):
        return strip_markers(text)
    return resolve_citations(text, passages)[0]


def report(predictions: dict[str, list[Prediction]], output_dir: Path | None) -> Results:
    """Scores per model and language; with ``output_dir``, also ``eval.json``, ``eval.md`` and
    ``eval_answers.jsonl``."""
    results = {label: score_by_language(rows) for label, rows in predictions.items()}
    if output_dir is not None:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "eval.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        (output_dir / "eval.md").write_text(table(results) + "\n", encoding="utf-8")
        answers = [
            {"model": label, "id": p.item.id, "lang": p.item.lang, "question": p.item.question,
             "answers": p.item.answers, "prediction": p.text, "gold_uri": p.item.gold_uri,
             "cited_uris": p.cited_uris, "latency_ms": round(p.latency_ms, 1)}
            for label, rows in predictions.items()
            for p in rows
        ]  # fmt: skip
        (output_dir / "eval_answers.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in answers), encoding="utf-8"
        )
    return results


@contextlib.contextmanager
def local_targets(settings: Settings, *, model_path: Path | None, adapter_path: Path) -> Iterator[list[Target]]:
    """Start the local server for the base model and for base + adapter; stop both afterwards."""
    from bot.local_llm.launcher import start_local_llm

    with contextlib.ExitStack() as stack:
        base = stack.enter_context(
            start_local_llm(settings.model_copy(update={"local_llm_use_adapter": False}), model_path=model_path, port=0)
        )
        tuned = stack.enter_context(start_local_llm(settings, model_path=model_path, adapter_path=adapter_path, port=0))
        yield [
            Target("base", base.base_url, base.model_name),
            Target("adapter", tuned.base_url, tuned.model_name, prompt_format=tuned.prompt_format),
        ]


# --- the real loop ------------------------------------------------------------------------------------------


def loop_corpora(config: EvalConfig, dataset: DatasetConfig) -> list[tuple[str, LoopCorpus]]:
    """``(scope, corpus)`` per QA file: all paragraphs of ``config.qa_files``, or the held-out articles of the
    dataset's QA files (the split ``lorebot sft dataset`` never trains on) when none are given."""
    from bot.sft.dataset import split_articles
    from bot.sft.squad import load_articles

    if config.qa_files:
        files = [load_articles(path, source=f"qa:{path.stem}") for path in config.qa_files]
    else:
        files = [held for _, _, held in split_articles(dataset)]
    rng = random.Random(config.seed)
    questions = slice(config.question_offset, None)
    withheld = config.withheld_fraction
    return [
        (f"sft-eval-{number}", build_corpus(articles, rng=rng, withheld_fraction=withheld, questions=questions))
        for number, articles in enumerate(files)
    ]


def loop_items(corpora: Sequence[tuple[str, LoopCorpus]], *, limit: int, seed: int) -> list[tuple[str, QAItem]]:
    """A seeded sample of up to ``limit`` questions per language (0 = all) with the scope to ask them in."""
    by_lang: dict[str, list[tuple[str, QAItem]]] = {}
    for scope, corpus in corpora:
        for q in corpus.questions:
            item = QAItem(q.id, q.question, q.answers, (), q.lang, q.gold_uri)
            by_lang.setdefault(q.lang, []).append((scope, item))
    rng = random.Random(seed)
    chosen = []
    for lang in sorted(by_lang):
        rng.shuffle(by_lang[lang])
        chosen += by_lang[lang][:limit] if limit else by_lang[lang]
    return chosen


async def evaluate_loop(
    settings: Settings,
    targets: Sequence[Target],
    config: EvalConfig,
    dataset: DatasetConfig,
    *,
    output_dir: Path | None = None,
    embedder: Embedder | None = None,
) -> Results:
    """Ingest the evaluation corpus into ``settings``' database (see :func:`~bot.sft.realloop.throwaway_settings`)
    and ask every question through the service, once per target; writes the report like :func:`evaluate`."""
    from bot.service import Lorebot

    corpora = loop_corpora(config, dataset)
    items = loop_items(corpora, limit=config.limit, seed=config.seed)
    turns = _follow_ups(corpora, items, refer_back=config.refer_back) if config.follow_up else []
    predictions: dict[str, list[Prediction]] = {}
    async with loop_service(settings, embedder=embedder) as service:
        for scope, corpus in corpora:
            await ingest(service, corpus, scope)
        for target in targets:
            served = _target_settings(service.settings, target, config)
            declared = asdict(target.prompt_format) if target.prompt_format else {}
            shown = served.model_copy(update={"context_sentences": dataset.context_sentences, **declared})
            bot = Lorebot(shown, service.pool, service.embedder)
            log.info("evaluating %s (%s) on %d questions", target.label, target.base_url, len(items))
            predictions[target.label] = []
            for number, (scope, item) in enumerate(items, start=1):
                conversation = None
                if turns:  # a conversation of its own, begun with the earlier question
                    conversation = ConversationKey("sft-eval", target.label, str(number))
                    earlier, item = turns[number - 1]
                    await bot.ask(Question(earlier, LOOP_ACTOR, (scope,), conversation))
                predictions[target.label].append(await _ask(bot, scope, item, conversation))
                if number % 25 == 0:
                    log.info("%s: %d/%d answered", target.label, number, len(items))
    return report(predictions, output_dir)


def _follow_ups(
    corpora: Sequence[tuple[str, LoopCorpus]], items: Sequence[tuple[str, QAItem]], *, refer_back: bool
) -> list[tuple[str, QAItem]]:
    """For ``follow_up``: each item's earlier question, and the item as the follow-up asks it.

    The earlier question is the previous sampled question of the same scope (the last one for the first), so
    another paragraph's, mostly of another article. With ``refer_back`` it is, where one exists, a question of
    the same article naming something the item's question names, which the follow-up then calls "it"
    (:func:`~bot.sft.realloop.follow_up`)."""
    by_scope: dict[str, list[int]] = {}
    for index, (scope, _) in enumerate(items):
        by_scope.setdefault(scope, []).append(index)
    turns = [("", item) for _, item in items]
    for indices in by_scope.values():
        for position, index in enumerate(indices):
            turns[index] = (items[indices[position - 1]][1].question, items[index][1])
    if refer_back:
        questions = {q.id: q for _, corpus in corpora for q in corpus.questions}
        referring = 0
        for index, (_, item) in enumerate(items):
            question = questions[item.id]
            same_article = [q for q in questions.values() if q.article == question.article and q is not question]
            for earlier in same_article:
                if (asked := follow_up(question, earlier.question)) != question.question:
                    turns[index] = (earlier.question, replace(item, question=asked))
                    referring += 1
                    break
        log.info("follow-ups referring back: %d of %d", referring, len(items))
    return turns


async def _ask(bot: Lorebot, scope: str, item: QAItem, conversation: ConversationKey | None = None) -> Prediction:
    return await Prediction.timed(item, bot.ask(Question(item.question, LOOP_ACTOR, (scope,), conversation)))
