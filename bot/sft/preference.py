"""Preference training from 👍 and 👎 answers with TRL's KTO: unpaired, so every rated answer counts (a question
rarely has both a liked and a disliked answer, which DPO would need).

It continues the SFT candidate of the cycle: the policy starts from that adapter, the reference is the base model
(PEFT's adapter-disabled model; TRL's KTO has no reference-adapter option), and the result is one LoRA adapter that
vLLM and the embedded server serve like any other.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot.sft.config import CycleConfig, TrainConfig
from bot.sft.errors import SFTError

log = logging.getLogger(__name__)

ADAPTER_DIR = "adapter"
SUMMARY_FILE = "kto_summary.json"


def kto_records(examples: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """KTO's conversational rows: the prompt turns, the answer as the completion, 👍/👎 as the label."""
    return [
        {"prompt": e["messages"][:-1], "completion": e["messages"][-1:], "label": bool(e.get("liked", True))}
        for e in examples
    ]


def train_kto(
    train: TrainConfig, cycle: CycleConfig, examples: Sequence[dict[str, Any]], *, init_adapter: Path, output_dir: Path
) -> Path:
    """KTO on ``examples`` (cycle example records), starting from ``init_adapter``; returns the adapter folder."""
    import torch
    from datasets import Dataset
    from peft import PeftModel
    from trl import KTOConfig, KTOTrainer

    from bot.local_llm.modeling import load_model, load_tokenizer, pick_device

    records = kto_records(examples)
    if not any(r["label"] for r in records) or all(r["label"] for r in records):
        raise SFTError("KTO needs both 👍 and 👎 answers in the cycle's data")
    device = pick_device(train.device)
    tokenizer = load_tokenizer(train.base_model)
    model = load_model(train.base_model, device=device, dtype=train.dtype, qlora=train.qlora)
    model = PeftModel.from_pretrained(model, str(init_adapter), is_trainable=True)
    dtype = next(model.parameters()).dtype
    args = KTOConfig(
        output_dir=str(output_dir),
        seed=train.seed,
        max_length=train.max_seq_len,
        beta=cycle.preference_beta,
        learning_rate=cycle.preference_learning_rate,
        max_steps=cycle.preference_max_steps,
        num_train_epochs=1.0,
        per_device_train_batch_size=max(2, train.batch_size),  # KTO estimates its KL term within a batch
        gradient_accumulation_steps=train.grad_accum,
        logging_steps=train.logging_steps,
        save_strategy="no",
        bf16=dtype == torch.bfloat16,
        fp16=dtype == torch.float16,
        use_cpu=device == "cpu",
        report_to="none",
        disable_tqdm=True,
    )
    started = time.monotonic()
    trainer = KTOTrainer(model=model, args=args, train_dataset=Dataset.from_list(records), processing_class=tokenizer)
    result = trainer.train()
    adapter = output_dir / ADAPTER_DIR
    trainer.model.save_pretrained(adapter)
    margins = [e["rewards/margins"] for e in trainer.state.log_history if "rewards/margins" in e]
    summary = {
        "examples": {"liked": sum(r["label"] for r in records), "disliked": sum(not r["label"] for r in records)},
        "steps": trainer.state.global_step,
        "seconds": round(time.monotonic() - started, 1),
        "final_loss": result.training_loss,
        "reward_margins": margins,
    }
    (output_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    log.info("KTO adapter saved to %s after %d steps", adapter, summary["steps"])
    return adapter
