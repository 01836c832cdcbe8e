"""The shipped adapter on the real Gemma 3 270M: it must beat the base model on held-out questions."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bot.sft.config import GEMMA3_270M, DatasetConfig, EvalConfig
from bot.sft.dataset import build_dataset
from bot.sft.evaluate import evaluate_in_process

SHIPPED = Path(__file__).resolve().parents[1] / "bot" / "adapters" / "lorebot-gemma3-270m"


def test_shipped_adapter_is_a_small_peft_lora() -> None:
    assert (SHIPPED / "adapter_config.json").is_file()
    assert (SHIPPED / "adapter_model.safetensors").stat().st_size < 20 * 1024 * 1024
    for card in ("DATASET_CARD.md", "EVAL.md"):
        assert (SHIPPED / card).read_text(encoding="utf-8").strip()


@pytest.mark.slow
def test_shipped_adapter_answers_held_out_questions_better_than_the_base_model(
    shared_dir: Path, tmp_path: Path
) -> None:
    squad = shared_dir / "data" / "qa" / "squad-v1.1-dev-part-a.json"
    dataset = replace(
        DatasetConfig(), output_dir=tmp_path / "data", qa_files=(squad,), tokenizer="", passage_tokens=80, seed=42
    )
    build_dataset(dataset)  # the same seed and split as the adapter's training: these articles were held out
    config = EvalConfig(eval_file=tmp_path / "data" / "eval_qa.jsonl", limit=12, seed=3, max_tokens=24)
    results = evaluate_in_process(GEMMA3_270M, SHIPPED, config, batch_size=6)
    base, tuned = results["base"]["all"], results["adapter"]["all"]
    assert tuned["token_f1"] > base["token_f1"] + 25
    assert tuned["refusal_accuracy"] >= base["refusal_accuracy"]
    assert tuned["citation_correct"] > base["citation_correct"]
