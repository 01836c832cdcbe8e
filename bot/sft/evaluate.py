"""Base vs adapter inside the RAG loop: every model answers the same held-out questions through the real
:class:`~bot.answer.chain.Answerer` (same prompt, same citation parsing, same not-found handling), over the
passages stored with each question, so the models see identical retrieved contexts.

Targets are OpenAI-compatible endpoints (vLLM, the local server, anything else); :func:`local_targets` starts the
local server twice (base, base + adapter) with :func:`bot.local_llm.launcher.start_local_llm`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.answer.citations import is_not_found, resolve_citations, strip_markers
from bot.answer.prompt import build_messages
from bot.domain import Passage
from bot.settings import Settings
from bot.sft import metrics
from bot.sft.config import EvalConfig
from bot.sft.errors import SFTError

log = logging.getLogger(__name__)

EVAL_SCOPE = "sft-eval"


@dataclass(frozen=True, slots=True)
class Target:
    """One model to evaluate: a label for the table, the endpoint and the model name to request."""

    label: str
    base_url: str
    model: str


@dataclass(frozen=True, slots=True)
class QAItem:
    id: str
    question: str
    answers: tuple[str, ...]  # empty: the answer is not in the passages
    passages: tuple[Passage, ...]
    lang: str


@dataclass(frozen=True, slots=True)
class Prediction:
    item: QAItem
    text: str
    latency_ms: float


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

    target_settings = settings.model_copy(
        update={
            "llm_base_url": target.base_url,
            "llm_model": target.model,
            "llm_temperature": config.temperature,
            "llm_max_tokens": config.max_tokens,
            "llm_timeout_s": config.timeout_s,
            "retrieval_k": 50,
        }
    )
    answerer = Answerer(target_settings, StoredPassages(items))
    predictions = []
    for number, item in enumerate(items, start=1):
        started = time.perf_counter()
        answer = await answerer.answer(item.question, [EVAL_SCOPE])
        predictions.append(Prediction(item, answer.text, (time.perf_counter() - started) * 1000))
        if number % 10 == 0:
            log.info("%s: %d/%d answered", target.label, number, len(items))
    return predictions


def score(predictions: Sequence[Prediction]) -> dict[str, float]:
    """EM/F1/citations over answerable questions, refusal accuracy over unanswerable ones, latency over all."""
    answerable = [p for p in predictions if p.item.answers]
    unanswerable = [p for p in predictions if not p.item.answers]
    latencies = sorted(p.latency_ms for p in predictions)

    def mean(values: list[float]) -> float:
        return round(statistics.fmean(values), 4) if values else float("nan")

    return {
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "exact_match": mean([metrics.exact_match(p.text, p.item.answers) * 100 for p in answerable]),
        "token_f1": mean([metrics.token_f1(p.text, p.item.answers) * 100 for p in answerable]),
        "citation_correct": mean(
            [
                float(metrics.citation_correct(p.text, p.item.answers, [x.text for x in p.item.passages]))
                for p in answerable
            ]
        ),
        "false_refusal": mean([float(metrics.is_refusal(p.text)) for p in answerable]),
        "refusal_accuracy": mean([float(metrics.is_refusal(p.text)) for p in unanswerable]),
        "latency_p50_ms": round(latencies[len(latencies) // 2], 1) if latencies else float("nan"),
        "latency_p95_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))], 1)
        if latencies
        else float("nan"),
    }


ROWS = (
    ("exact_match", "Exact match (answerable, %)", "{:.1f}"),
    ("token_f1", "Token F1 (answerable, %)", "{:.1f}"),
    ("citation_correct", "Citation correct (answerable)", "{:.3f}"),
    ("false_refusal", "False refusals (answerable)", "{:.3f}"),
    ("refusal_accuracy", "Refusal accuracy (unanswerable)", "{:.3f}"),
    ("latency_p50_ms", "Latency p50 (ms)", "{:.0f}"),
    ("latency_p95_ms", "Latency p95 (ms)", "{:.0f}"),
)


def table(results: dict[str, dict[str, float]]) -> str:
    """A Markdown table with one column per target."""
    labels = list(results)
    lines = ["| metric | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    for key, name, cell in ROWS:
        lines.append(f"| {name} | " + " | ".join(cell.format(results[label][key]) for label in labels) + " |")
    first = results[labels[0]]
    lines.append(f"\n{first['answerable']} answerable and {first['unanswerable']} unanswerable questions.")
    return "\n".join(lines)


async def evaluate(
    settings: Settings, targets: Sequence[Target], config: EvalConfig, *, output_dir: Path | None = None
) -> dict[str, dict[str, float]]:
    """Score every target on the same questions; writes ``eval.json``, ``eval.md`` and the raw answers."""
    items = load_items(config.eval_file, limit=config.limit, seed=config.seed)
    predictions = {}
    for target in targets:
        log.info("evaluating %s (%s at %s) on %d questions", target.label, target.model, target.base_url, len(items))
        predictions[target.label] = await predict(settings, target, items, config)
    return report(predictions, output_dir)


def evaluate_in_process(
    base_model: str, adapter_path: Path, config: EvalConfig, *, batch_size: int = 8, output_dir: Path | None = None
) -> dict[str, dict[str, float]]:
    """Base vs base + adapter with batched ``generate`` in this process: the messages the chain would send
    (:func:`bot.answer.prompt.build_messages`), the serving chat template, and the chain's citation clean-up.
    Latency is the batch time divided by the batch size, not a per-request latency."""
    from peft import PeftModel

    from bot.sft.generate import generate_batched
    from bot.sft.modeling import load_model, load_tokenizer

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
            Prediction(item, _as_served(text, item.passages), ms)
            for item, (text, ms) in zip(items, replies, strict=True)
        ]
    return report(predictions, output_dir)


def _as_served(text: str, passages: Sequence[Passage]) -> str:
    """What :class:`~bot.answer.chain.Answerer` would return for this raw reply."""
    if is_not_found(text):
        return strip_markers(text)
    return resolve_citations(text, passages)[0]


def report(predictions: dict[str, list[Prediction]], output_dir: Path | None) -> dict[str, dict[str, float]]:
    """Scores per model; with ``output_dir``, also ``eval.json``, ``eval.md`` and ``eval_answers.jsonl``."""
    results = {label: score(rows) for label, rows in predictions.items()}
    if output_dir is not None:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "eval.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        (output_dir / "eval.md").write_text(table(results) + "\n", encoding="utf-8")
        answers = [
            {"model": label, "id": p.item.id, "question": p.item.question, "answers": p.item.answers,
             "prediction": p.text, "latency_ms": round(p.latency_ms, 1)}
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
        yield [Target("base", base.base_url, base.model_name), Target("adapter", tuned.base_url, tuned.model_name)]
