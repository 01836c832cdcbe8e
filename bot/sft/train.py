"""LoRA SFT with TRL's ``SFTTrainer``: loss on assistant tokens only, the serving chat template, resumable.

The loss is computed from logits at supervised positions only (``logits_to_keep``): with Gemma's 262k-token
vocabulary the output projection dominates the cost of a step, and RAG examples supervise a dozen answer tokens
out of a few hundred, so this makes CPU training several times faster with the same gradients.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from pathlib import Path
from typing import Any

from bot.local_llm.adapter_format import AdapterFormat
from bot.local_llm.modeling import load_model, load_tokenizer, pick_device
from bot.sft.config import TrainConfig
from bot.sft.errors import SFTError

log = logging.getLogger(__name__)

ADAPTER_DIR = "adapter"
SUMMARY_FILE = "train_summary.json"
_MODEL_INPUTS = ("input_ids", "attention_mask", "position_ids")


def supervised_loss(model: Any, inputs: dict, num_items_in_batch: Any = None) -> Any:
    """Next-token cross-entropy over positions whose label is not -100, projecting only those hidden states.

    A batch with nothing supervised (a reply cut off by ``max_seq_len``) gives a zero loss, not 0/0 = NaN.
    """
    import torch.nn.functional as F

    targets = inputs["labels"][:, 1:]
    positions = (targets != -100).any(dim=0).nonzero().squeeze(-1)
    outputs = model(**model_inputs(inputs), logits_to_keep=positions, use_cache=False)
    logits = outputs.logits.float()
    chosen = targets[:, positions]
    total = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), chosen.reshape(-1), ignore_index=-100, reduction="sum"
    )
    count = num_items_in_batch if num_items_in_batch is not None else (chosen != -100).sum()
    return total / count if count else total * 0.0


def model_inputs(inputs: dict) -> dict:
    """The inputs the model takes, without the padding mask when the padding is on the right.

    Right padding comes after every real token, so the causal mask alone already hides it from them; with the
    padding mask, a padded position further than Gemma's sliding window from the last real token attends to
    nothing, and one NaN row there still poisons the weight gradients (NaN × 0 = NaN).
    """
    kept = {k: v for k, v in inputs.items() if k in _MODEL_INPUTS}
    mask = kept.get("attention_mask")
    if mask is not None and bool((mask[:, 1:] <= mask[:, :-1]).all()):
        del kept["attention_mask"]
    return kept


def _trainer_class() -> type:
    from trl import SFTTrainer

    class SupervisedLogitsTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = supervised_loss(model, inputs, num_items_in_batch)
            return (loss, None) if return_outputs else loss

    return SupervisedLogitsTrainer


def skip_non_finite_steps() -> Any:
    """A callback that drops an optimizer step whose gradients hold NaN or inf: one bad batch then costs one step,
    not the run (torch optimizers leave a parameter whose ``grad`` is None untouched, moments included)."""
    import torch
    from transformers import TrainerCallback

    class SkipNonFiniteSteps(TrainerCallback):
        def __init__(self) -> None:
            self.skipped = 0

        def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
            trainable = [p for p in model.parameters() if p.grad is not None]
            norms = torch.stack([torch.linalg.vector_norm(p.grad.float()) for p in trainable]) if trainable else None
            if norms is not None and not bool(torch.isfinite(norms).all()):
                for parameter in trainable:
                    parameter.grad = None
                self.skipped += 1
                log.warning("step %d: non-finite gradients, optimizer step skipped", state.global_step + 1)

    return SkipNonFiniteSteps()


def load_split(dataset_dir: Path, name: str, limit: int = 0) -> Any:
    """A ``messages`` dataset from ``<dataset_dir>/<name>.jsonl``."""
    from datasets import Dataset

    path = dataset_dir / f"{name}.jsonl"
    if not path.is_file():
        raise SFTError(f"{path} not found; build it with `lorebot sft dataset` first")
    with path.open(encoding="utf-8") as file:
        records = [{"messages": json.loads(line)["messages"]} for line in file if line.strip()]
    if limit:
        records = records[:limit]
    return Dataset.from_list(records)


def latest_checkpoint(output_dir: Path) -> Path | None:
    checkpoints = sorted(output_dir.glob("checkpoint-*"), key=lambda p: int(p.name.rsplit("-", 1)[1]))
    return checkpoints[-1] if checkpoints else None


def build_trainer(config: TrainConfig) -> Any:
    """The configured TRL trainer (model, tokenizer with the serving chat template, LoRA, tokenized data)."""
    import torch
    from peft import LoraConfig
    from trl import SFTConfig

    if config.threads:
        torch.set_num_threads(config.threads)
    device = pick_device(config.device)
    tokenizer = load_tokenizer(config.base_model)
    model = load_model(config.base_model, device=device, dtype=config.dtype, qlora=config.qlora)
    train_set = load_split(config.dataset_dir, "train", config.max_train_examples)
    eval_set = load_split(config.dataset_dir, "eval") if config.eval_steps else None
    dtype = next(model.parameters()).dtype
    args = SFTConfig(
        output_dir=str(config.output_dir),
        seed=config.seed,
        max_length=config.max_seq_len,
        packing=config.packing,
        assistant_only_loss=True,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_ratio,
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        logging_steps=config.logging_steps,
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        eval_strategy="steps" if config.eval_steps else "no",
        eval_steps=config.eval_steps or None,
        bf16=dtype == torch.bfloat16,
        fp16=dtype == torch.float16,
        use_cpu=device == "cpu",
        report_to="none",
        dataloader_num_workers=0,
        include_num_input_tokens_seen=True,
        disable_tqdm=True,
        activation_checkpointing=config.gradient_checkpointing,
    )
    peft_config = None
    if config.init_adapter is not None:
        model = _continued_adapter(model, config.init_adapter)
    else:
        peft_config = LoraConfig(
            task_type="CAUSAL_LM",
            r=config.lora.r,
            lora_alpha=config.lora.alpha,
            lora_dropout=config.lora.dropout,
            target_modules=list(config.lora.target_modules),
        )
    log.info("training %d examples on %s (%s)", len(train_set), device, dtype)
    return _trainer_class()(
        model=model,
        callbacks=[skip_non_finite_steps()],
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        processing_class=tokenizer,
        peft_config=peft_config,
    )


def _continued_adapter(model: Any, adapter: Path) -> Any:
    """``model`` wrapped with the trainable PEFT adapter in ``adapter`` (weights cast to the model's dtype)."""
    from peft import PeftModel

    if not (adapter / "adapter_config.json").is_file():
        raise SFTError(f"init_adapter {adapter} is not a PEFT adapter folder (no adapter_config.json)")
    log.info("continuing training of the adapter in %s", adapter)
    return PeftModel.from_pretrained(model, str(adapter), is_trainable=True)


def train(config: TrainConfig, *, resume: bool = True) -> Path:
    """Train (continuing from the latest checkpoint when ``resume``), save the adapter in
    ``<output_dir>/adapter`` and a run summary (hardware, time, tokens/s, loss curve); returns the adapter folder."""
    trainer = build_trainer(config)
    checkpoint = latest_checkpoint(config.output_dir) if resume else None
    if checkpoint:
        log.info("resuming from %s", checkpoint)
    # read now: checkpoint rotation (save_total_limit) may delete the checkpoint during training
    tokens_before = _tokens_seen(checkpoint)
    started = time.monotonic()
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    seconds = time.monotonic() - started
    adapter_dir = config.output_dir / ADAPTER_DIR
    trainer.model.save_pretrained(adapter_dir)
    AdapterFormat.read(config.dataset_dir).write(adapter_dir)  # served as the examples showed passages
    summary = _summary(
        trainer, result, seconds, len(trainer.train_dataset), resumed_from=checkpoint, tokens_before=tokens_before
    )
    (config.output_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    log.info("adapter saved to %s after %d steps in %.0f s", adapter_dir, summary["steps"], seconds)
    return adapter_dir


def _tokens_seen(checkpoint: Path | None) -> int:
    """Input tokens a checkpoint had already processed (0 for a fresh run)."""
    if checkpoint is None:
        return 0
    state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    return int(state.get("num_input_tokens_seen") or 0)


def _tokens_per_second(trainer: Any, result: Any, tokens_before: int) -> float | None:
    """Input tokens this run processed per second (a resumed run starts from the checkpoint's count)."""
    runtime = result.metrics.get("train_runtime")
    if not runtime:
        return None
    return round((int(trainer.state.num_input_tokens_seen or 0) - tokens_before) / runtime, 1)


def _summary(
    trainer: Any, result: Any, seconds: float, examples: int, *, resumed_from: Path | None, tokens_before: int
) -> dict:
    import torch

    state = trainer.state
    parameter = next(trainer.model.parameters())
    device, dtype = parameter.device.type, str(parameter.dtype)
    tokens = int(state.num_input_tokens_seen or 0)
    losses = [(entry["step"], round(entry["loss"], 4)) for entry in state.log_history if "loss" in entry]
    return {
        "hardware": {
            "device": device,
            "dtype": dtype,
            "cpu": platform.processor() or platform.machine(),
            "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None,
        },
        "examples": examples,
        "resumed_from": str(resumed_from) if resumed_from else None,
        "steps": state.global_step,
        "seconds_this_run": round(seconds, 1),
        "train_runtime": result.metrics.get("train_runtime"),
        "input_tokens_seen": tokens,
        "tokens_per_second": _tokens_per_second(trainer, result, tokens_before),
        "final_train_loss": result.training_loss,
        "skipped_steps": sum(getattr(callback, "skipped", 0) for callback in trainer.callback_handler.callbacks),
        "loss_curve": losses,
    }
