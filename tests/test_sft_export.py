"""Export: adapter files, the vLLM command line with the adapter's rank, honest GGUF reporting."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import pytest

from bot.local_llm.adapter_format import AdapterFormat
from bot.sft.errors import SFTError
from bot.sft.export import adapter_rank, export, serving_chat_template, vllm_command


def test_export_copies_the_adapter_and_names_its_rank_for_vllm(
    tiny_lora_dir: Path,
    tiny_model_dir: Path,
    tmp_path: Path,
) -> None:
    result = export(tiny_lora_dir, tmp_path / "export", name="lorebot", base_model=str(tiny_model_dir))
    weights = "adapter_model.safetensors"
    assert (result.adapter_dir / weights).read_bytes() == (tiny_lora_dir / weights).read_bytes()
    config = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(tiny_model_dir)
    assert config["r"] == 8
    args = shlex.split(result.vllm_command)
    assert args[:3] == ["vllm", "serve", str(tiny_model_dir)]
    assert "--enable-lora" in args
    assert args[args.index("--lora-modules") + 1] == f"lorebot={result.adapter_dir.resolve()}"
    assert args[args.index("--max-lora-rank") + 1] == "8" == str(result.rank)
    template = Path(args[args.index("--chat-template") + 1])
    assert template == (tmp_path / "export" / "chat_template.jinja").resolve()
    assert "generation %}" not in template.read_text() and "<start_of_turn>model" in template.read_text()
    serving = (tmp_path / "export" / "serving.md").read_text(encoding="utf-8")
    assert result.vllm_command in serving


def test_export_keeps_the_passage_format_the_adapter_was_trained_on(tiny_lora_dir: Path, tmp_path: Path) -> None:
    adapter = shutil.copytree(tiny_lora_dir, tmp_path / "trained")
    AdapterFormat(context_sentences=12).write(adapter)
    result = export(adapter, tmp_path / "export", name="lorebot", half=True)
    assert AdapterFormat.read(result.adapter_dir) == AdapterFormat(context_sentences=12)


def test_serving_template_renders_like_the_training_template(tiny_model_dir: Path) -> None:
    from bot.local_llm.modeling import load_tokenizer

    tokenizer = load_tokenizer(str(tiny_model_dir))
    messages = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "Q"},
        {"role": "assistant", "content": "A"},
    ]
    trained = tokenizer.apply_chat_template(messages, tokenize=False)
    served = tokenizer.apply_chat_template(messages, tokenize=False, chat_template=serving_chat_template())
    assert served == trained


def test_without_llama_cpp_no_gguf_is_faked_and_the_command_is_documented(tiny_lora_dir: Path, tmp_path: Path) -> None:
    result = export(tiny_lora_dir, tmp_path / "export", name="lorebot", llama_cpp_dir=tmp_path / "no-llama")
    assert result.gguf_lora is None
    assert not list((tmp_path / "export").glob("*.gguf"))
    serving = (tmp_path / "export" / "serving.md").read_text(encoding="utf-8")
    assert "No GGUF LoRA was written" in serving and "convert_lora_to_gguf.py" in serving


def test_vllm_rank_is_rounded_up_to_a_supported_value(tmp_path: Path) -> None:
    command = vllm_command("gemma3-270m", "lb", tmp_path, 12)
    assert "--max-lora-rank 16" in command and command.startswith("vllm serve google/gemma-3-270m ")


def test_rank_pattern_overrides_count(tiny_lora_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "adapter"
    shutil.copytree(tiny_lora_dir, folder)
    config = json.loads((folder / "adapter_config.json").read_text())
    config["rank_pattern"] = {"q_proj": 32}
    (folder / "adapter_config.json").write_text(json.dumps(config))
    assert adapter_rank(folder) == 32


def test_export_refuses_a_folder_that_is_not_an_adapter(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SFTError, match="not a PEFT adapter folder"):
        export(tmp_path / "empty", tmp_path / "out", name="x")
    assert not (tmp_path / "out").exists()


def test_half_precision_export_halves_the_weights_and_still_loads(
    tiny_lora_dir: Path,
    tiny_model_dir: Path,
    tmp_path: Path,
) -> None:
    import torch
    from safetensors.torch import load_file

    from bot.local_llm.model import load_local_model

    result = export(tiny_lora_dir, tmp_path / "export", name="lorebot", half=True)
    weights = load_file(str(result.adapter_dir / "adapter_model.safetensors"))
    original = load_file(str(tiny_lora_dir / "adapter_model.safetensors"))
    assert {t.dtype for t in weights.values()} == {torch.float16}
    for key, tensor in original.items():
        assert torch.allclose(weights[key].float(), tensor, atol=1e-3, rtol=1e-3)
    local = load_local_model(tiny_model_dir, result.adapter_dir, name="tiny")
    assert next(local.model.parameters()).dtype == torch.float32
