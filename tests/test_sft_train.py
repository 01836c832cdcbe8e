"""Training on a tiny random Gemma 3: assistant-only loss mask, loss falls, checkpoints resume, save → reload →
generate with the serving loader."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from bot.local_llm.adapter_format import AdapterFormat
from bot.local_llm.chat_template import CHAT_TEMPLATE
from bot.sft.config import TrainConfig
from bot.sft.train import (
    SUMMARY_FILE,
    build_trainer,
    latest_checkpoint,
    model_inputs,
    skip_non_finite_steps,
    supervised_loss,
    train,
)

torch = pytest.importorskip("torch")


def test_loss_mask_keeps_only_assistant_tokens(tiny_train_config: TrainConfig) -> None:
    trainer = build_trainer(replace(tiny_train_config, output_dir=tiny_train_config.output_dir.parent / "mask"))
    tokenizer = trainer.processing_class
    assert tokenizer.chat_template == CHAT_TEMPLATE
    for row, source in zip(trainer.train_dataset, _train_records(tiny_train_config), strict=True):
        ids = row["input_ids"]
        mask = [label != -100 for label in row["labels"]]
        assert [label for label, keep in zip(row["labels"], mask, strict=True) if keep] == [
            t for t, keep in zip(ids, mask, strict=True) if keep
        ]
        supervised = tokenizer.decode([t for t, keep in zip(ids, mask, strict=True) if keep])
        assert supervised == source["messages"][-1]["content"] + "<end_of_turn>"
        masked = tokenizer.decode([t for t, keep in zip(ids, mask, strict=True) if not keep])
        prompt = tokenizer.apply_chat_template(source["messages"][:-1], tokenize=False, add_generation_prompt=True)
        assert masked == prompt + "\n"  # everything but the reply: the prompt and the newline after the turn


def test_supervised_logits_loss_equals_the_full_loss(tiny_model_dir: Path) -> None:
    from bot.local_llm.modeling import load_model

    model = load_model(str(tiny_model_dir))
    torch.manual_seed(1)
    input_ids = torch.randint(10, 500, (3, 20))
    labels = input_ids.clone()
    labels[:, :12] = -100
    labels[1, 12:15] = -100
    inputs = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels}
    expected = model(**inputs).loss
    assert supervised_loss(model, inputs).item() == pytest.approx(expected.item(), rel=1e-5)


def test_a_right_padded_batch_scores_each_example_as_if_alone(tiny_model_dir: Path) -> None:
    """The padding mask is dropped for right padding (see model_inputs); the real tokens' loss must not change,
    also where the padding runs past the sliding window (64 in the tiny model)."""
    from bot.local_llm.modeling import load_model

    model = load_model(str(tiny_model_dir))
    torch.manual_seed(2)
    short, long = torch.randint(10, 500, (1, 12)), torch.randint(10, 500, (1, 150))
    input_ids = torch.cat([torch.cat([short, torch.zeros(1, 138, dtype=torch.long)], dim=1), long])
    mask = (torch.arange(150) < torch.tensor([[12], [150]])).long()
    labels = input_ids.masked_fill(mask == 0, -100)
    labels[:, :6] = -100
    batch = supervised_loss(model, {"input_ids": input_ids, "attention_mask": mask, "labels": labels})
    summed, scored = 0.0, 0
    for ids in (short, long):
        alone = ids.clone()
        alone[:, :6] = -100
        count = ids.shape[1] - 6
        summed += supervised_loss(model, {"input_ids": ids, "labels": alone}).item() * count
        scored += count
    assert batch.item() == pytest.approx(summed / scored, rel=1e-5)


def test_the_padding_mask_is_kept_unless_the_padding_is_on_the_right() -> None:
    ids = torch.ones(2, 4, dtype=torch.long)
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    assert "attention_mask" not in model_inputs({"input_ids": ids, "attention_mask": right, "labels": ids})
    assert model_inputs({"input_ids": ids, "attention_mask": left, "labels": ids})["attention_mask"] is left


def test_a_batch_with_nothing_supervised_has_zero_loss(tiny_model_dir: Path) -> None:
    from bot.local_llm.modeling import load_model

    model = load_model(str(tiny_model_dir))
    input_ids = torch.randint(10, 500, (2, 16))
    labels = torch.full_like(input_ids, -100)
    loss = supervised_loss(model, {"input_ids": input_ids, "labels": labels})
    loss.backward()
    assert loss.item() == 0.0
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_a_step_with_non_finite_gradients_is_skipped() -> None:
    model = torch.nn.Linear(3, 2)
    callback = skip_non_finite_steps()
    model.weight.grad, model.bias.grad = torch.ones(2, 3), torch.ones(2)
    callback.on_pre_optimizer_step(None, _State(), None, model=model)
    assert model.weight.grad is not None and callback.skipped == 0
    model.weight.grad[0, 1] = float("nan")
    callback.on_pre_optimizer_step(None, _State(), None, model=model)
    assert model.weight.grad is None and model.bias.grad is None and callback.skipped == 1


class _State:
    global_step = 7


def test_training_lowers_the_loss_and_writes_a_summary(tiny_adapter: Path, tiny_train_config: TrainConfig) -> None:
    summary = json.loads((tiny_train_config.output_dir / SUMMARY_FILE).read_text())
    losses = [loss for _, loss in summary["loss_curve"]]
    assert summary["steps"] == 24 and len(losses) == 24
    assert sum(losses[-4:]) / 4 < 0.8 * sum(losses[:4]) / 4
    assert summary["tokens_per_second"] > 0 and summary["hardware"]["device"] == "cpu"
    assert summary["skipped_steps"] == 0
    config = json.loads((tiny_adapter / "adapter_config.json").read_text())
    assert config["r"] == 8
    assert (tiny_adapter / "adapter_model.safetensors").stat().st_size > 0


def test_training_resumes_from_the_latest_checkpoint(tiny_adapter: Path, tiny_train_config: TrainConfig) -> None:
    assert latest_checkpoint(tiny_train_config.output_dir).name == "checkpoint-24"
    more = replace(tiny_train_config, max_steps=30, save_steps=30)
    train(more)
    summary = json.loads((more.output_dir / SUMMARY_FILE).read_text())
    assert summary["resumed_from"].endswith("checkpoint-24")
    assert summary["steps"] == 30


def test_training_continues_an_existing_adapter(tiny_lora_dir: Path, tiny_train_config: TrainConfig) -> None:
    from safetensors.torch import load_file

    config = replace(
        tiny_train_config,
        init_adapter=tiny_lora_dir,
        output_dir=tiny_train_config.output_dir.parent / "continued",
        max_steps=4,
        save_steps=4,
    )
    adapter = train(config)

    before, after = (
        load_file(tiny_lora_dir / "adapter_model.safetensors"),
        load_file(adapter / "adapter_model.safetensors"),
    )
    assert set(before) == set(after)  # the same modules (q/v, rank 8), not a fresh LoRA from the config
    assert sorted(json.loads((adapter / "adapter_config.json").read_text())["target_modules"]) == ["q_proj", "v_proj"]
    assert any(not torch.equal(before[name], after[name]) for name in before)


def test_the_adapter_declares_the_passage_format_of_its_dataset(tiny_train_config: TrainConfig, tmp_path: Path) -> None:
    dataset = shutil.copytree(tiny_train_config.dataset_dir, tmp_path / "data")
    AdapterFormat(context_sentences=9).write(dataset)  # as a dataset built with context_sentences = 9
    config = replace(tiny_train_config, dataset_dir=dataset, output_dir=tmp_path / "run", max_steps=1, save_steps=1)
    assert AdapterFormat.read(train(config)) == AdapterFormat(context_sentences=9)
    assert AdapterFormat.read(tiny_train_config.output_dir / "adapter") == AdapterFormat(context_sentences=0)


def test_an_init_adapter_that_is_no_adapter_is_refused(tiny_train_config: TrainConfig, tmp_path: Path) -> None:
    from bot.sft.errors import SFTError

    with pytest.raises(SFTError, match="not a PEFT adapter folder"):
        train(replace(tiny_train_config, init_adapter=tmp_path, output_dir=tmp_path / "run"))


def test_saved_adapter_reloads_in_the_serving_loader_and_generates(tiny_adapter: Path, tiny_model_dir: Path) -> None:
    from bot.local_llm.model import load_local_model

    local = load_local_model(tiny_model_dir, tiny_adapter, name="tiny")
    messages = [{"role": "user", "content": "Who keeps vault 01?"}]
    prompt = local.prompt_ids(messages)
    output = local.model.generate(torch.tensor([prompt]), max_new_tokens=5, do_sample=False)
    assert output.shape[1] > len(prompt)


def _train_records(config) -> list[dict]:
    path = config.dataset_dir / "train.jsonl"
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return records[: config.max_train_examples or None]
