"""Preference training in the cycle (``cycle.preference = "kto"``): 👎 answers are collected beside the 👍 ones,
SFT trains on the 👍 ones only, then KTO continues the SFT adapter on both (tiny Gemma 3, CPU) and its adapter
becomes the candidate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from psycopg_pool import AsyncConnectionPool
from safetensors.torch import load_file

from bot.answer.prompt import format_context
from bot.domain import Actor, Answer, Passage, Question
from bot.settings import Settings
from bot.sft.config import CycleConfig, DatasetConfig, LoraConfig, SFTConfig, TrainConfig
from bot.sft.cycle import CycleRun, run_cycle
from bot.sft.lora_runtime import LoraRuntime, ServingError
from bot.sft.preference import kto_records
from bot.sft.registry import ServingTarget
from bot.storage import adapters as registry
from bot.storage import conversations, cycles, feedback
from tests.fixtures.net import unused_port

ASKER, RATER = Actor("slack", "U1"), Actor("slack", "U2")
WEIGHTS = "adapter_model.safetensors"


async def _rated(pool: AsyncConnectionPool, number: int, answer: str, score: int) -> None:
    text = f"Vault {number} stands on hill {number}. The keeper of vault {number} is named Zorb."
    passage = Passage(chunk_id=1, document_id=1, title="Vaults", source_uri=f"kb://v{number}", text=text, score=1)
    recorded = Answer(text=answer, citations=(), passages=(passage,), found=True, model="m")
    question = Question(f"Who keeps vault {number}?", ASKER, ("default",))
    message = await conversations.record_message(
        pool, question, recorded, prompt_context=format_context([passage]), latency_ms=1
    )
    await feedback.record(pool, message, RATER, score)


def test_kto_rows_are_prompt_completion_and_label() -> None:
    example = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "liked": False}
    assert kto_records([example]) == [
        {"prompt": [{"role": "user", "content": "q"}], "completion": [{"role": "assistant", "content": "a"}],
         "label": False}
    ]  # fmt: skip


async def test_a_kto_cycle_trains_sft_on_likes_then_kto_on_likes_and_dislikes(
    settings: Settings, pool: AsyncConnectionPool, tiny_model_dir: Path, tmp_path: Path
) -> None:
    for number in range(6):
        await _rated(pool, number, "Zorb [1]", 1)
        await _rated(pool, number, "Vault [1]", -1)
    model = str(tiny_model_dir)
    config = SFTConfig(
        dataset=DatasetConfig(tokenizer=model, max_tokens=2000, eval_fraction=0.0),
        train=TrainConfig(base_model=model, max_steps=4, batch_size=2, learning_rate=1e-2, logging_steps=1,
                          save_steps=4, max_seq_len=512, lora=LoraConfig(r=8, alpha=16, dropout=0.0)),
        cycle=CycleConfig(runs_dir=tmp_path / "cycles", min_new_examples=4, preference="kto",
                          preference_learning_rate=1e-3, preference_max_steps=4),
    )  # fmt: skip
    dead = ServingTarget(LoraRuntime(f"http://127.0.0.1:{unused_port()}/v1", timeout_s=2), "lorebot")
    run = CycleRun(settings, pool, config, settings, dead, dead, "cli:ops")

    with pytest.raises(ServingError):  # stops before the evaluation: training is what this test looks at
        await run_cycle(run)

    cycle = await cycles.open_cycle(pool)
    directory = config.cycle.runs_dir / cycle.name
    assert "Vault [1]" not in (directory / "data" / "train.jsonl").read_text()
    summary = json.loads((directory / "kto" / "kto_summary.json").read_text())
    assert summary["examples"] == {"liked": 6, "disliked": 6} and summary["steps"] == 4
    kto, sft = load_file(directory / "kto" / "adapter" / WEIGHTS), load_file(directory / "run" / "adapter" / WEIGHTS)
    assert kto.keys() == sft.keys() and any(not torch.equal(kto[k], sft[k]) for k in kto)  # KTO moved the SFT LoRA
    candidate = await registry.adapter(pool, cycle.candidate)
    assert candidate.path == str((directory / "kto" / "adapter").resolve())
