"""Build the SFT dataset: gather examples from every source, clean, split by source document, write atomically.

Outputs in ``output_dir``: ``train.jsonl`` and ``eval.jsonl`` (OpenAI ``{"messages": [...]}`` lines, what TRL,
axolotl and LLaMA-Factory read), ``eval_qa.jsonl`` (held-out RAG questions with gold answers and their sources,
for ``lorebot sft eval``) and ``dataset_card.md`` / ``dataset_card.json``. Every input is parsed before anything
is written, and files are written to temporaries and renamed, so a failed build leaves the old output intact.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bot.local_llm.adapter_format import FORMAT_FILE, AdapterFormat
from bot.sft.card import card_markdown, card_stats
from bot.sft.config import DatasetConfig
from bot.sft.example import Example
from bot.sft.formats import read_examples
from bot.sft.squad import Paragraph, load_articles, rag_examples

log = logging.getLogger(__name__)

INSTRUCTIONS = "instructions"
CHARS_PER_TOKEN = 4
"""Without a tokenizer, lengths are counted in characters and ``max_tokens`` allows this many per token."""

Length = Callable[[Example], int]


@dataclass(frozen=True)
class DatasetResult:
    output_dir: Path
    train: list[Example]
    eval: list[Example]
    dropped: dict[str, int]
    stats: dict


def eval_groups(groups: Iterable[str], fraction: float, seed: int) -> set[str]:
    """A deterministic held-out subset of ``groups``: order by a seeded hash, take the first ``fraction``."""
    unique = sorted(set(groups), key=lambda g: hashlib.sha256(f"{seed}:{g}".encode()).hexdigest())
    if fraction <= 0 or len(unique) < 2:
        return set()
    return set(unique[: max(1, math.ceil(fraction * len(unique)))])


def split_articles(config: DatasetConfig) -> list[tuple[str, dict[str, list[Paragraph]], dict[str, list[Paragraph]]]]:
    """``(source, training articles, held-out articles)`` for each QA file, split by article."""
    splits = []
    for path in config.qa_files:
        source = f"qa:{path.stem}"
        articles = load_articles(path, source=source)
        held_out = eval_groups(articles, config.eval_fraction, config.seed)
        train = {g: ps for g, ps in articles.items() if g not in held_out}
        held = {g: ps for g, ps in articles.items() if g in held_out}
        splits.append((source, train, held))
    return splits


def build_dataset(
    config: DatasetConfig,
    *,
    rag: Mapping[str, Sequence[Example]] | None = None,
    extra: Sequence[Example] = (),
    tokenizer: object | None = None,
) -> DatasetResult:
    """Gather, clean, split and write.

    ``rag`` holds ready-made reading-comprehension examples per split (``train``, ``eval``), e.g. built over
    real retrieval by :mod:`bot.sft.realloop`; without it they are built here over stored passages. ``extra``
    are ready-made examples split by group (e.g. rated answers from the database).
    """
    rng = random.Random(config.seed)
    train: list[Example] = []
    held: list[Example] = []
    if rag is not None:
        train += rag["train"]
        held += rag["eval"]
    else:
        for source, *articles in split_articles(config):
            for split, into in zip(articles, (train, held), strict=True):
                into += rag_examples(
                    split,
                    source=source,
                    rng=rng,
                    questions_per_paragraph=config.questions_per_paragraph,
                    distractors=config.distractors,
                    passage_tokens=config.passage_tokens,
                    unanswerable_ratio=config.unanswerable_ratio,
                )
    train = cap_refusals(train, config.max_refusal_share, rng)
    others = [e for path in config.curated_files for e in read_examples(path, source=f"curated:{path.stem}")]
    _split_into(others + list(extra), config, train, held)
    instructions = [e for path in config.instruction_files for e in read_examples(path, source=INSTRUCTIONS)]
    instr_train: list[Example] = []
    instr_held: list[Example] = []
    _split_into(instructions, config, instr_train, instr_held)
    length = _length_fn(tokenizer)
    limit = config.max_tokens if tokenizer is not None else config.max_tokens * CHARS_PER_TOKEN
    dropped: dict[str, int] = {}
    train = _clean(train, length, limit, dropped, seen=set())
    seen = {_key(e) for e in train}
    held = _clean(held, length, limit, dropped, seen=seen)
    train += _mix(_clean(instr_train, length, limit, dropped, seen=seen), len(train), config, rng)
    held += _mix(_clean(instr_held, length, limit, dropped, seen=seen), len(held), config, rng)
    rng.shuffle(train)
    splits = {"train": train, "eval": held}
    stats = card_stats(splits, {k: [length(e) for e in v] for k, v in splits.items()}, _unit(tokenizer))
    stats["dropped"] = dropped
    settings = {k: str(v) for k, v in asdict(config).items()}
    card = card_markdown(stats, dropped=dropped, settings=settings)
    _write(config.output_dir, train, held, stats, card, AdapterFormat(config.context_sentences, config.answer_history))
    log.info("SFT dataset: %d train, %d eval examples in %s", len(train), len(held), config.output_dir)
    return DatasetResult(config.output_dir, train, held, dropped, stats)


def cap_refusals(examples: Sequence[Example], share: float, rng: random.Random) -> list[Example]:
    """``examples`` in their order, with refusals dropped at random until they are at most ``share`` of each
    language's examples."""
    surplus: set[int] = set()
    for lang in sorted({e.lang for e in examples}):
        refusals = [e for e in examples if e.lang == lang and e.refused]
        answered = sum(1 for e in examples if e.lang == lang) - len(refusals)
        allowed = len(refusals) if share >= 1 else math.floor(answered * share / (1 - share))
        surplus |= {id(e) for e in rng.sample(refusals, max(0, len(refusals) - allowed))}
    return [e for e in examples if id(e) not in surplus]


def _split_into(examples: Sequence[Example], config: DatasetConfig, train: list, held: list) -> None:
    by_source: dict[str, list[Example]] = {}
    for example in examples:
        by_source.setdefault(example.source, []).append(example)
    for group in by_source.values():
        held_out = eval_groups((e.group for e in group), config.eval_fraction, config.seed)
        for example in group:
            (held if example.group in held_out else train).append(example)


def _mix(pool: list[Example], rag_count: int, config: DatasetConfig, rng: random.Random) -> list[Example]:
    """Instruction examples so that they make up ``instruction_ratio`` of the split."""
    if config.instruction_ratio <= 0 or not pool:
        return []
    wanted = round(rag_count * config.instruction_ratio / (1 - config.instruction_ratio)) if rag_count else len(pool)
    return rng.sample(pool, min(wanted, len(pool)))


def _key(example: Example) -> str:
    normalised = " ".join(example.text().split()).lower()
    return hashlib.sha256(normalised.encode()).hexdigest()


def _clean(examples: Sequence[Example], length: Length, max_length: int, dropped: dict, *, seen: set) -> list[Example]:
    kept = []
    for example in examples:
        if any(not m["content"].strip() for m in example.messages if m["role"] != "system"):
            reason = "empty message"
        elif (key := _key(example)) in seen:
            reason = "duplicate"
        elif length(example) > max_length:
            reason = f"longer than {max_length}"
        else:
            seen.add(key)
            kept.append(example)
            continue
        dropped[reason] = dropped.get(reason, 0) + 1
    return kept


def _length_fn(tokenizer: object | None) -> Length:
    """Length of the rendered chat template in tokens, or in characters without a tokenizer."""
    cache: dict[int, int] = {}

    def length(example: Example) -> int:
        if id(example) not in cache:
            if tokenizer is None:
                cache[id(example)] = len(example.text())
            else:
                ids = tokenizer.apply_chat_template(list(example.messages), tokenize=True, return_dict=True)
                cache[id(example)] = len(ids["input_ids"])
        return cache[id(example)]

    return length


def _unit(tokenizer: object | None) -> str:
    return "characters" if tokenizer is None else "tokens"


def _write(
    output_dir: Path, train: list[Example], held: list[Example], stats: dict, card: str, prompt_format: AdapterFormat
) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    contents = {
        "train.jsonl": _jsonl(e.to_record() for e in train),
        "eval.jsonl": _jsonl(e.to_record() for e in held),
        "eval_qa.jsonl": _jsonl({**e.qa, "source": e.source} for e in held if e.qa is not None),
        "dataset_card.json": json.dumps(stats, ensure_ascii=False, indent=2) + "\n",
        "dataset_card.md": card,
        FORMAT_FILE: prompt_format.to_json(),  # the adapter trained on these examples is served the same way
    }
    temporaries = []
    try:
        for name, text in contents.items():
            handle, temporary = tempfile.mkstemp(prefix=f".{name}.", dir=output_dir)
            temporaries.append((temporary, output_dir / name))
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                file.write(text)
        for temporary, final in temporaries:
            os.replace(temporary, final)
    finally:
        for temporary, _ in temporaries:
            if os.path.exists(temporary):
                os.unlink(temporary)


def _jsonl(records: Iterable[dict]) -> str:
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
