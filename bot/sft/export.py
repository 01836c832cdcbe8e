"""Export an adapter for serving: the PEFT folder itself, the vLLM command line that serves it, and — when
llama.cpp's ``convert_lora_to_gguf.py`` is available — a GGUF LoRA for llama.cpp-style servers.

llama.cpp's converter ships in the ``llama-cpp-python`` sdist (``vendor/llama.cpp``); it needs a folder holding
the base model's ``config.json``, which is written here from the GGUF's own metadata. Without the converter the
README lists the command to run; no placeholder file is written.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bot.local_llm.adapter_format import AdapterFormat
from bot.local_llm.chat_template import CHAT_TEMPLATE
from bot.sft.config import GEMMA3_270M
from bot.sft.errors import SFTError

log = logging.getLogger(__name__)

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
"""``--max-lora-rank`` values vLLM accepts."""
HF_BASE_IDS = {GEMMA3_270M: "google/gemma-3-270m"}
CONVERTER = "convert_lora_to_gguf.py"


@dataclass(frozen=True, slots=True)
class ExportResult:
    output_dir: Path
    adapter_dir: Path
    rank: int
    vllm_command: str
    gguf_lora: Path | None
    gguf_command: str


def adapter_rank(adapter_dir: Path) -> int:
    """``r`` from ``adapter_config.json`` (the largest per-module rank when ranks differ)."""
    try:
        config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise SFTError(f"{adapter_dir} is not a PEFT adapter folder: {e}") from e
    return max([int(config["r"]), *(int(r) for r in (config.get("rank_pattern") or {}).values())])


def vllm_command(base_model: str, name: str, adapter_dir: Path, rank: int, chat_template: Path | None = None) -> str:
    """``vllm serve`` with the adapter as a LoRA module; the rank rounded up to one vLLM accepts."""
    max_rank = next((r for r in VLLM_LORA_RANKS if r >= rank), rank)
    model = HF_BASE_IDS.get(base_model, base_model)
    command = ["vllm", "serve", model, "--enable-lora", "--lora-modules", f"{name}={adapter_dir}"]
    command += ["--max-lora-rank", str(max_rank)]
    command += ["--chat-template", str(chat_template)] if chat_template else []
    return shlex.join(command)


def serving_chat_template() -> str:
    """Lorebot's chat template without the training-only ``{% generation %}`` markers (same rendered text)."""
    return CHAT_TEMPLATE.replace("{% generation %}", "").replace("{% endgeneration %}", "")


def find_converter(llama_cpp_dir: Path | None) -> Path | None:
    """``convert_lora_to_gguf.py`` in the given llama.cpp folder (or its ``vendor/llama.cpp``), if present."""
    if llama_cpp_dir is None:
        return None
    for candidate in (llama_cpp_dir / CONVERTER, llama_cpp_dir / "vendor" / "llama.cpp" / CONVERTER):
        if candidate.is_file():
            return candidate
    return None


def export(
    adapter_dir: Path,
    output_dir: Path,
    *,
    name: str,
    base_model: str = GEMMA3_270M,
    llama_cpp_dir: Path | None = None,
    half: bool = False,
) -> ExportResult:
    """Copy the adapter to ``output_dir/adapter`` (in float16 when ``half``: half the size, same answers), write
    ``serving.md``, convert to a GGUF LoRA when llama.cpp's converter is available."""
    missing = [f for f in ADAPTER_FILES if not (adapter_dir / f).is_file()]
    if missing:
        raise SFTError(f"{adapter_dir} is missing {', '.join(missing)}: not a PEFT adapter folder")
    rank = adapter_rank(adapter_dir)
    target = output_dir / "adapter"
    target.mkdir(parents=True, exist_ok=True)
    _write_config(adapter_dir / "adapter_config.json", target / "adapter_config.json", base_model)
    if half:
        _save_half(adapter_dir / "adapter_model.safetensors", target / "adapter_model.safetensors")
    else:
        shutil.copy2(adapter_dir / "adapter_model.safetensors", target / "adapter_model.safetensors")
    AdapterFormat.read(adapter_dir).write(target)
    template = output_dir / "chat_template.jinja"
    template.write_text(serving_chat_template(), encoding="utf-8")
    vllm = vllm_command(base_model, name, target.resolve(), rank, template.resolve())
    gguf = output_dir / f"{name}-lora.gguf"
    base_config = output_dir / "base-config"
    converter = find_converter(llama_cpp_dir)
    gguf_command = _gguf_command(converter or Path("<llama.cpp>") / CONVERTER, target, base_config, gguf)
    converted = None
    if converter is not None:
        _write_base_config(base_model, base_config)
        _convert(converter, target, base_config, gguf)
        converted = gguf
    (output_dir / "serving.md").write_text(
        _readme(name, rank, vllm, gguf_command, converted, base_model), encoding="utf-8"
    )
    log.info("exported %s (rank %d) to %s; GGUF LoRA: %s", adapter_dir, rank, output_dir, converted or "not converted")
    return ExportResult(output_dir, target, rank, vllm, converted, gguf_command)


def _write_config(source: Path, target: Path, base_model: str) -> None:
    """The adapter config naming the base model portably (training records a local cache path)."""
    config = json.loads(source.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = HF_BASE_IDS.get(base_model, base_model)
    config["inference_mode"] = True
    target.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def _save_half(source: Path, target: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(source))
    save_file({k: v.to(torch.float16) if v.is_floating_point() else v for k, v in tensors.items()}, str(target))


def _converter_args(converter: Path, adapter: Path, base_config: Path, gguf: Path) -> list[str]:
    """llama.cpp's ``convert_lora_to_gguf.py`` arguments (after the interpreter)."""
    return [str(converter), str(adapter), "--base", str(base_config), "--outfile", str(gguf), "--outtype", "f16"]


def _gguf_command(converter: Path, adapter: Path, base_config: Path, gguf: Path) -> str:
    return shlex.join(["python", *_converter_args(converter, adapter, base_config, gguf)])


def _write_base_config(base_model: str, folder: Path) -> None:
    """The base model's ``config.json`` alone: all the converter reads from ``--base``."""
    from transformers import AutoConfig

    from bot.local_llm.modeling import model_location

    location, kwargs = model_location(base_model)
    config = AutoConfig.from_pretrained(location, **kwargs)
    folder.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(folder)
    data = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    data.setdefault("architectures", ["Gemma3ForCausalLM"] if config.model_type.startswith("gemma3") else [])
    data.pop("quantization_config", None)
    (folder / "config.json").write_text(json.dumps(data, indent=2), encoding="utf-8")


def _convert(converter: Path, adapter: Path, base_config: Path, gguf: Path) -> None:
    root = converter.parent
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root / "gguf-py"), str(root), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, *_converter_args(converter, adapter, base_config, gguf)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not gguf.is_file():
        raise SFTError(f"GGUF conversion failed (exit {result.returncode}):\n{result.stderr[-2000:]}")


def _readme(name: str, rank: int, vllm: str, gguf_command: str, gguf: Path | None, base_model: str) -> str:
    gguf_part = (
        f"GGUF LoRA: `{gguf.name}`. Serve with llama.cpp:\n\n```\npython -m llama_cpp.server --model <base .gguf> "
        f"--lora_path {gguf}\n```\n"
        if gguf
        else "No GGUF LoRA was written: llama.cpp's converter was not available. Get it from the llama-cpp-python "
        "sdist (`pip download --no-deps --no-binary :all: llama-cpp-python`, unpack, pass `--llama-cpp "
        "<unpacked>/vendor/llama.cpp`) or run:\n\n"
        f"```\nPYTHONPATH=<llama.cpp>/gguf-py:<llama.cpp> {gguf_command}\n```\n"
    )
    return (
        f"# Serving the `{name}` adapter\n\nLoRA rank {rank}, trained on `{base_model}` with Lorebot's chat template "
        "(`bot/local_llm/chat_template.py`) and prompt (`bot/answer/prompt.py`); serve it with the same ones.\n\n"
        "## Lorebot's local endpoint\n\n`LOCAL_LLM_ADAPTER_PATH=<this folder>/adapter lorebot local-llm`\n\n"
        f"## vLLM\n\n```\n{vllm}\n```\n\nThen set `LLM_MODEL={name}`. The base model has no chat template of its own, "
        "so the command passes Lorebot's (`chat_template.jinja`).\n\n"
        f"## llama.cpp\n\n{gguf_part}"
    )
