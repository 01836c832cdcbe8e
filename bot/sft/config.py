"""The SFT config file (TOML): every hyper-parameter of dataset building, training and evaluation in one place.

Relative paths are resolved against the directory the command runs in. Unknown keys are an error, so a typo
never silently falls back to a default.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from bot.local_llm.modeling import GEMMA3_270M
from bot.sft.errors import SFTError


@dataclass(frozen=True)
class DatasetConfig:
    output_dir: Path = Path("runs/sft-data")
    seed: int = 42
    eval_fraction: float = 0.1
    tokenizer: str = GEMMA3_270M  # model name or path used to count tokens; "" counts characters
    max_tokens: int = 384
    qa_files: tuple[Path, ...] = ()
    questions_per_paragraph: int = 1
    # "retrieved": passages from real ingestion + retrieval (bot.sft.realloop), what serving sees;
    # "stored": a gold window plus distractor windows of passage_tokens (fast, not what serving sees)
    rag_passages: str = "retrieved"
    retrieval_k: int = 0  # passages per question; 0 = the serving default (RETRIEVAL_K)
    # sentences of those passages shown to the model (bot.answer.focus; 0 = whole passages); the loop evaluation
    # shows the same, and the adapter trained so declares it (bot.local_llm.adapter_format): the embedded model
    # serves it that way, another endpoint needs CONTEXT_SENTENCES set to it
    context_sentences: int = 0
    withheld_fraction: float = 0.25  # paragraphs left out of the index: their questions must be refused
    multi_turn_ratio: float = 0.15  # answerable questions asked as a follow-up in a conversation
    # whether a follow-up's answer example carries the earlier turns, or asks the rewritten question alone; the
    # adapter declares it (bot.local_llm.adapter_format) and the chain's ANSWER_HISTORY serves it so
    answer_history: bool = True
    # Largest share of refusals among one language's RAG training examples; the surplus is dropped at random.
    # 1.0 keeps them all. Withheld paragraphs plus spans outside the top k made a third of the Chinese examples
    # refusals, and the small model learned to refuse answerable Chinese questions.
    max_refusal_share: float = 1.0
    distractors: int = 2
    passage_tokens: int = 120
    unanswerable_ratio: float = 0.25
    instruction_files: tuple[Path, ...] = ()
    instruction_ratio: float = 0.2  # share of the training set taken from instruction files
    curated_files: tuple[Path, ...] = ()
    feedback: bool = False  # include 👍-rated answers from the database in settings
    feedback_limit: int = 10000

    def __post_init__(self) -> None:
        _check_choice("dataset.rag_passages", self.rag_passages, ("retrieved", "stored"))
        if not 0 <= self.max_refusal_share <= 1:
            raise SFTError(f"dataset.max_refusal_share must be between 0 and 1, not {self.max_refusal_share}")
        if self.context_sentences < 0 or (self.context_sentences and self.rag_passages != "retrieved"):
            raise SFTError("dataset.context_sentences must be ≥ 0, and cuts only retrieved passages")


@dataclass(frozen=True)
class LoraConfig:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class TrainConfig:
    base_model: str = GEMMA3_270M
    init_adapter: Path | None = None  # continue training this PEFT adapter instead of a fresh LoRA
    dataset_dir: Path = Path("runs/sft-data")
    output_dir: Path = Path("runs/sft")
    seed: int = 42
    max_seq_len: int = 384
    packing: bool = False
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 4
    grad_accum: int = 1
    learning_rate: float = 2e-4
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    logging_steps: int = 5
    save_steps: int = 25
    save_total_limit: int = 3
    eval_steps: int = 0  # 0 = no evaluation loss during training
    max_train_examples: int = 0  # 0 = all
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16
    device: str = "auto"  # auto | cpu | cuda | mps
    qlora: bool = False  # 4-bit base weights; CUDA only
    threads: int = 0  # torch CPU threads; 0 = torch default
    gradient_checkpointing: bool = False  # saves activation memory for long sequences, costs ~30 % speed
    lora: LoraConfig = field(default_factory=LoraConfig)


@dataclass(frozen=True)
class EvalConfig:
    # "loop": ingest held-out paragraphs with the real ingestion and ask through the service (real retrieval,
    # relevance gate, k, prompt, citations); "stored": the passages stored in eval_file (fast, not the real loop)
    mode: str = "loop"
    qa_files: tuple[Path, ...] = ()  # loop mode; empty = the dataset's qa_files, held-out articles only
    withheld_fraction: float = 0.25  # loop mode: paragraphs not ingested; their questions must be refused
    question_offset: int = 1  # loop mode: skip each paragraph's first questions (the ones datasets train on)
    eval_file: Path = Path("runs/sft-data/eval_qa.jsonl")
    limit: int = 100  # questions: in loop mode per QA file
    seed: int = 42
    max_tokens: int = 48
    temperature: float = 0.0
    timeout_s: float = 120.0
    # loop mode: ask every question as the second turn of a conversation begun with another paragraph's question
    # (the chat a user has: condensing, and the answer prompt carrying the earlier turn); doubles the questions asked
    follow_up: bool = False
    # with follow_up: begin each conversation, where the article has one, with a question naming something the
    # question names, which the follow-up then calls "it" (what condensing must resolve)
    refer_back: bool = False

    def __post_init__(self) -> None:
        _check_choice("eval.mode", self.mode, ("loop", "stored"))


@dataclass(frozen=True)
class CycleConfig:
    """``lorebot sft cycle``: what counts as enough new data, what to train from, and the promotion gate.

    Gate metrics are compared in points (rates x 100); ``false_refusal`` counts as better when it falls.
    """

    runs_dir: Path = Path("runs/sft-cycles")
    min_new_examples: int = 20  # fewer new 👍 answers / curated examples: no cycle runs
    train_from: str = "serving"  # "serving": continue the serving adapter; "base": a fresh LoRA
    feedback_limit: int = 10000
    regression_limit: int = 200  # past 👍 questions replayed to both models
    primary_metric: str = "token_f1"  # real loop, all languages: the candidate must gain `margin` on it
    margin: float = 1.0
    tolerance: float = 2.0  # points any gated metric may lose, per language, in the loop and the regression set
    metrics: tuple[str, ...] = ("token_f1", "gold_cited", "refusal_accuracy", "false_refusal", "wrong_refusal")
    min_questions: int = 5  # a language with fewer questions is reported but does not gate
    promote: bool = True  # False: record the decision, promote by hand (`lorebot sft promote`)
    preference: str = "none"  # "kto": after SFT, KTO on the 👍 and 👎 answers (bot.sft.preference)
    preference_beta: float = 0.1
    preference_learning_rate: float = 5e-5
    preference_max_steps: int = -1  # -1: one epoch

    def __post_init__(self) -> None:
        _check_choice("cycle.train_from", self.train_from, ("serving", "base"))
        _check_choice("cycle.preference", self.preference, ("none", "kto"))


@dataclass(frozen=True)
class SFTConfig:
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    cycle: CycleConfig = field(default_factory=CycleConfig)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise SFTError(f"{name} must be one of {', '.join(map(repr, choices))}, not {value!r}")


def load_config(path: Path | None) -> SFTConfig:
    """The config in ``path`` (defaults for every missing key); :class:`SFTError` on unreadable or unknown keys."""
    if path is None:
        return SFTConfig()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise SFTError(f"cannot read SFT config {path}: {e}") from e
    return _build(SFTConfig, raw, "")


def _build(cls: type, raw: dict[str, Any], where: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise SFTError(f"unknown SFT config key(s) in [{where or 'root'}]: {', '.join(unknown)}")
    values = {}
    for name, value in raw.items():
        default = known[name].default_factory() if callable(known[name].default_factory) else known[name].default
        if hasattr(default, "__dataclass_fields__"):
            values[name] = _build(type(default), value, f"{where}.{name}".strip("."))
        elif isinstance(default, tuple):
            values[name] = tuple(Path(v) if name.endswith("_files") else v for v in value)
        elif "Path" in str(known[name].type):
            values[name] = Path(value)
        else:
            values[name] = value
    return cls(**values)
