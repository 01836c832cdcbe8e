"""``lorebot sft cycle``: new 👍 answers → dataset → training → evaluation → gate → promotion, in one command.

Stages, each recorded in ``sft_cycles`` and written under ``<cycle.runs_dir>/<cycle name>/``:

1. **collect** the 👍 answers, the answers people saved from the support desk and the curated files that no
   promoted cycle has trained on yet (personal data redacted when ``DESK_REDACT_PERSONAL_DATA`` is on); with too
   few, or with exactly the data of the last rejected cycle, nothing runs (the command is idempotent);
2. **dataset**: examples split by the document their answer cites, so one document never sits on both sides;
3. **train** from the serving adapter (or a fresh LoRA), resuming from the latest checkpoint;
4. **evaluate** candidate and current in the same running server (the candidate loaded under its own name):
   the real RAG loop (:func:`bot.sft.evaluate.evaluate_loop`) and the regression set of past 👍 questions;
5. **gate** (:mod:`bot.sft.gate`) and promote (:mod:`bot.sft.registry`) or reject.

An interrupted cycle is resumed from its stage by the next run; a stage's output already on disk is reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from psycopg_pool import AsyncConnectionPool

from bot.desk.redact import redact
from bot.embeddings import Embedder
from bot.files import published
from bot.settings import Settings
from bot.sft import gate
from bot.sft.config import SFTConfig
from bot.sft.curated import curated_examples
from bot.sft.errors import SFTError
from bot.sft.evaluate import Target, evaluate_loop
from bot.sft.example import Example
from bot.sft.feedback import feedback_example
from bot.sft.formats import read_examples
from bot.sft.lora_runtime import ServingError
from bot.sft.registry import Notify, ServingTarget, promote
from bot.sft.regression import replay
from bot.storage import adapters as registry_store
from bot.storage import cycles as store
from bot.storage.cycles import CycleExample, CycleRow
from bot.storage.desk import curated_answers
from bot.storage.sft import rated_answers

log = logging.getLogger(__name__)

EVALUATION_FILE = "evaluation.json"
DECISION_FILE = "decision.md"


@dataclass(frozen=True)
class CycleRun:
    """Everything one cycle needs; the entry point builds it."""

    settings: Settings  # the production database (feedback, registry)
    pool: AsyncConnectionPool
    config: SFTConfig
    eval_settings: Settings  # the throwaway knowledge base of the real-loop evaluation
    evaluate_on: ServingTarget  # a running server that can load the candidate beside the current adapter
    serve: ServingTarget  # the server the bots use: promotion replaces its adapter
    actor: str
    embedder: Embedder | None = None
    notify: Notify | None = None


@dataclass(frozen=True)
class Outcome:
    state: str  # nothing-new | unchanged | promoted | passed | rejected
    message: str
    cycle: str | None = None
    decision: gate.Decision | None = None
    timings: dict[str, float] = field(default_factory=dict)


def example_key(example: Example) -> str:
    """Identity of an example across cycles: its whitespace- and case-normalised text."""
    return hashlib.sha256(" ".join(example.text().split()).lower().encode()).hexdigest()


async def run_cycle(run: CycleRun, *, offered: Path | None = None) -> Outcome:
    """Resume the open cycle or start one; ``offered``: gate this adapter instead of training one. Raises
    :class:`SFTError` while another process runs a cycle."""
    async with store.exclusive(run.pool) as mine:
        if not mine:
            raise SFTError("another `lorebot sft cycle` is running: wait for it (it holds the cycle lock)")
        return await _run_cycle(run, offered)


async def _run_cycle(run: CycleRun, offered: Path | None) -> Outcome:
    started = time.perf_counter()
    cycle = await store.open_cycle(run.pool)
    fresh = cycle is None
    if cycle is None:
        cycle, refusal = await _start(run, offered)
        if cycle is None:
            return refusal
    elif offered is not None:
        raise SFTError(f"cycle {cycle.name} is open (stage {cycle.stage}): finish it first, without --candidate")
    else:
        log.info("resuming cycle %s at stage %s", cycle.name, cycle.stage)
    directory = run.config.cycle.runs_dir / cycle.name
    directory.mkdir(parents=True, exist_ok=True)
    timings = _load_timings(directory)
    if fresh:
        timings["collect"] = round(time.perf_counter() - started, 1)
    if cycle.stage == "collected":
        with _timed(timings, "dataset", directory):
            await _dataset(run, cycle, directory)
        cycle = dataclasses.replace(cycle, stage="dataset")
    if cycle.stage == "dataset":
        with _timed(timings, "train", directory):
            candidate = await _train(run, cycle, directory)
        cycle = dataclasses.replace(cycle, stage="trained", candidate=candidate)
    if cycle.candidate is None:
        raise SFTError(f"cycle {cycle.name} reached stage {cycle.stage} without a candidate")
    if cycle.stage == "trained":
        with _timed(timings, "evaluate", directory):
            await _evaluate(run, cycle, directory)
        cycle = dataclasses.replace(cycle, stage="evaluated")
    with _timed(timings, "gate", directory):
        outcome = await _decide(run, cycle, directory)
    return dataclasses.replace(outcome, timings=timings)


# --- collect ------------------------------------------------------------------------------------------------


async def _start(run: CycleRun, offered: Path | None) -> tuple[CycleRow | None, Outcome]:
    now = datetime.now(UTC)
    name = f"cycle-{now:%Y%m%d-%H%M%S}-{now.microsecond // 1000:03d}"
    if offered is not None:
        weights = offered / "adapter_model.safetensors"
        if not weights.is_file():
            raise SFTError(f"{offered} is not a PEFT adapter folder (no adapter_model.safetensors)")
        data_key = "offered:" + hashlib.sha256(weights.read_bytes()).hexdigest()
        fresh: list[CycleExample] = []
    else:
        fresh = await new_examples(run)
        if len(fresh) < run.config.cycle.min_new_examples:
            message = f"{len(fresh)} new examples since the last promoted cycle (cycle.min_new_examples = "
            return None, Outcome("nothing-new", message + f"{run.config.cycle.min_new_examples}): nothing to do")
        data_key = hashlib.sha256("\n".join(sorted(e.key for e in fresh)).encode()).hexdigest()
    last = await store.last_finished(run.pool)
    if last is not None and last.data_key == data_key and last.state in ("rejected", "passed"):
        waits = f"passed and waits for `lorebot sft promote {last.name}`"
        verdict = "was rejected" if last.state == "rejected" else waits
        return None, Outcome("unchanged", f"the same data as cycle {last.name}, which {verdict}: nothing to do")
    cycle = await store.start(run.pool, name=name, data_key=data_key, actor=run.actor, examples=fresh)
    log.info("cycle %s started with %d new examples", name, len(fresh))
    if offered is not None:
        await _register(run, name, offered, parent=None, dataset=None)
        await store.set_stage(run.pool, cycle.id, "trained", candidate=name)
        cycle = dataclasses.replace(cycle, stage="trained", candidate=name)
    return cycle, Outcome("started", name)


async def new_examples(run: CycleRun) -> list[CycleExample]:
    """👍 answers (grouped by the document they cite), answers people saved from the support desk and curated
    files that no promoted cycle trained on; personal data redacted when ``DESK_REDACT_PERSONAL_DATA`` is on."""
    limit = run.config.cycle.feedback_limit
    rated = await rated_answers(run.pool, history_turns=run.settings.history_turns, limit=limit)
    cited = await store.cited_documents(run.pool, [r.id for r in rated])
    found: list[tuple[Example, int | None, bool]] = []
    for answer in rated:
        example = _redacted(feedback_example(answer), run.settings.desk_redact_personal_data)
        if answer.id in cited:
            example = dataclasses.replace(example, group=f"doc:{cited[answer.id]}")
        found.append((example, answer.id, True))
    if run.config.cycle.preference == "kto":  # 👎 answers: only preference training uses them
        disliked = await rated_answers(run.pool, history_turns=run.settings.history_turns, limit=limit, liked=False)
        redact_on = run.settings.desk_redact_personal_data
        found += [(_redacted(feedback_example(a), redact_on), a.id, False) for a in disliked]
    saved = await curated_answers(run.pool, limit=limit)
    found += [
        (e, None, True) for e in curated_examples(saved, redact_personal_data=run.settings.desk_redact_personal_data)
    ]
    for path in run.config.dataset.curated_files:
        found += [(e, None, True) for e in read_examples(path, source=f"curated:{path.stem}")]
    learned = await store.learned_keys(run.pool)
    fresh: dict[str, CycleExample] = {}
    for example, message_id, liked in found:
        key = example_key(example)
        if key not in learned and key not in fresh:
            record = {**example.to_record(), "source": example.source, "group": example.group, "lang": example.lang,
                      "liked": liked}  # fmt: skip
            fresh[key] = CycleExample(key, message_id, example.lang, record, liked)
    return list(fresh.values())


def _redacted(example: Example, enabled: bool) -> Example:
    """``example`` with e-mail addresses and phone numbers replaced in every non-system message."""
    if not enabled:
        return example
    messages = tuple(m if m["role"] == "system" else {**m, "content": redact(m["content"])} for m in example.messages)
    return dataclasses.replace(example, messages=messages)


# --- dataset and training -----------------------------------------------------------------------------------


async def _dataset(run: CycleRun, cycle: CycleRow, directory: Path) -> None:
    from bot.local_llm.modeling import load_tokenizer
    from bot.sft.dataset import build_dataset

    records = [r for r in await store.examples(run.pool, cycle.id) if r.get("liked", True)]
    examples = [Example(tuple(r["messages"]), r["source"], r["group"], lang=r["lang"]) for r in records]
    config = dataclasses.replace(
        run.config.dataset, output_dir=directory / "data", qa_files=(), curated_files=(), feedback=False
    )
    tokenizer = load_tokenizer(config.tokenizer) if config.tokenizer else None
    result = build_dataset(config, extra=examples, tokenizer=tokenizer)
    if not result.train:
        raise SFTError(f"cycle {cycle.name}: no training example survived cleaning ({result.dropped})")
    await store.set_stage(run.pool, cycle.id, "dataset")


async def _train(run: CycleRun, cycle: CycleRow, directory: Path) -> str:
    from bot.sft.train import ADAPTER_DIR, train

    serving = await registry_store.serving(run.pool)
    parent = serving if run.config.cycle.train_from == "serving" else None
    config = dataclasses.replace(
        run.config.train,
        dataset_dir=directory / "data",
        output_dir=directory / "run",
        init_adapter=Path(parent.path) if parent else run.config.train.init_adapter,
    )
    adapter = directory / "run" / ADAPTER_DIR
    if not (adapter / "adapter_config.json").is_file():
        adapter = await asyncio.to_thread(train, config, resume=True)
    if run.config.cycle.preference == "kto":
        adapter = await _preference(run, cycle, directory, adapter)
    await _register(run, cycle.name, adapter, parent=parent.name if parent else None, dataset=directory / "data")
    await store.set_stage(run.pool, cycle.id, "trained", candidate=cycle.name)
    return cycle.name


async def _preference(run: CycleRun, cycle: CycleRow, directory: Path, sft_adapter: Path) -> Path:
    """KTO from the SFT adapter when the cycle has both 👍 and 👎 answers; else the SFT adapter stays the candidate."""
    from bot.sft.preference import ADAPTER_DIR, train_kto

    records = await store.examples(run.pool, cycle.id)
    labels = {bool(r.get("liked", True)) for r in records}
    if labels != {True, False}:
        log.info("cycle %s: no 👍/👎 mix, no preference training", cycle.name)
        return sft_adapter
    adapter = directory / "kto" / ADAPTER_DIR
    if (adapter / "adapter_config.json").is_file():
        return adapter
    return await asyncio.to_thread(
        train_kto, run.config.train, run.config.cycle, records, init_adapter=sft_adapter, output_dir=directory / "kto"
    )


async def _register(run: CycleRun, name: str, adapter: Path, *, parent: str | None, dataset: Path | None) -> None:
    digest, size = _dataset_identity(dataset)
    settings = {k: str(v) for k, v in dataclasses.asdict(run.config.train).items()}
    await registry_store.register(
        run.pool,
        name=name,
        base_model=run.config.train.base_model,
        path=str(adapter.resolve()),
        parent=parent,
        dataset_hash=digest,
        dataset_size=size,
        train_config=settings,
        actor=run.actor,
    )


def _dataset_identity(directory: Path | None) -> tuple[str, int]:
    """sha256 over train.jsonl and eval.jsonl, and the number of training examples."""
    if directory is None:
        return "", 0
    digest = hashlib.sha256()
    for name in ("train.jsonl", "eval.jsonl"):
        digest.update((directory / name).read_bytes())
    size = sum(1 for line in (directory / "train.jsonl").read_text(encoding="utf-8").splitlines() if line.strip())
    return digest.hexdigest(), size


# --- evaluation and the gate --------------------------------------------------------------------------------


async def _evaluate(run: CycleRun, cycle: CycleRow, directory: Path) -> None:
    candidate = await registry_store.adapter(run.pool, cycle.candidate or "")
    if candidate is None:
        raise SFTError(f"candidate {cycle.candidate} of cycle {cycle.name} is not in the registry")
    serving = await registry_store.serving(run.pool)
    runtime, url = run.evaluate_on.runtime, run.evaluate_on.runtime.base_url
    await runtime.load(candidate.name, Path(candidate.path))
    targets = [Target("current", url, run.evaluate_on.name), Target("candidate", url, candidate.name)]
    loop = await evaluate_loop(
        run.eval_settings, targets, run.config.eval, run.config.dataset,
        output_dir=directory / "eval", embedder=run.embedder,
    )  # fmt: skip
    regression_set = await store.regression_examples(run.pool, limit=run.config.cycle.regression_limit)
    scores: dict[str, dict[str, gate.Scores]] = {}
    for target in targets:
        scores[target.label] = {"loop": loop[target.label]}
        if regression_set:
            scores[target.label]["regression"] = await replay(url, target.model, regression_set, run.config.eval)
    evaluation = _without_nan({**scores, "compared_with": serving.name if serving else "base"})
    _write_json(directory / EVALUATION_FILE, evaluation)
    await registry_store.set_metrics(run.pool, candidate.name, evaluation)
    await store.set_stage(run.pool, cycle.id, "evaluated")


async def _decide(run: CycleRun, cycle: CycleRow, directory: Path) -> Outcome:
    evaluation = json.loads((directory / EVALUATION_FILE).read_text(encoding="utf-8"))
    decision = gate.decide(evaluation["current"], evaluation["candidate"], run.config.cycle)
    (directory / DECISION_FILE).write_text(gate.table(decision) + "\n", encoding="utf-8")
    name = cycle.candidate or ""
    detail = {"cycle": cycle.name, "reasons": list(decision.reasons)}
    if not decision.promote:
        state = "rejected"
        await registry_store.reject(run.pool, name, run.actor, detail)
    elif run.config.cycle.promote:
        state = "promoted"
        await promote(run.pool, name, run.actor, run.serve, detail=detail, notify=run.notify)
    else:
        state = "passed"
    await store.finish(run.pool, cycle.id, state, decision.to_dict())
    if run.evaluate_on.name != name:
        try:
            await run.evaluate_on.runtime.unload(name)
        except ServingError as e:  # the decision stands; the server merely keeps a spare adapter loaded
            log.warning("could not unload candidate %s from the evaluation server: %s", name, e)
    message = {
        "promoted": f"{name} passed the gate and now serves",
        "passed": f"{name} passed the gate; promote it with `lorebot sft promote {name}`",
        "rejected": f"{name} was rejected: " + "; ".join(decision.reasons),
    }[state]
    log.info("cycle %s: %s", cycle.name, message)
    return Outcome(state, message, cycle.name, decision)


# --- bookkeeping --------------------------------------------------------------------------------------------

TIMINGS_FILE = "timings.json"


def _load_timings(directory: Path) -> dict[str, float]:
    path = directory / TIMINGS_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


@contextlib.contextmanager
def _timed(timings: dict[str, float], stage: str, directory: Path) -> Iterator[None]:
    """Adds the seconds a stage took to ``timings`` and its file (a resumed stage adds up)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = round(timings.get(stage, 0.0) + time.perf_counter() - started, 1)
        _write_json(directory / TIMINGS_FILE, timings)


def _without_nan(value: Any) -> Any:
    """NaN (a score with no questions behind it) as null: JSON and Postgres have no NaN."""
    if isinstance(value, dict):
        return {k: _without_nan(v) for k, v in value.items()}
    return None if isinstance(value, float) and math.isnan(value) else value


def _write_json(path: Path, value: Any) -> None:
    with published(path) as partial:
        partial.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
