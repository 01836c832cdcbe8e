"""The weights the embedded model computes with on the CPU: fp32 as loaded, or a bfloat16 copy.

On this project's 2-core machine (AVX-512 BF16) the fp32 Gemma 3 270M spends ~2.0 s on a 1,000-token RAG prompt
before its first token and ~130 ms on each token after it: decoding reads every weight once per token, and the
tied 262k-word output layer alone is 670 MB in fp32. Gemma 3 was trained in bfloat16; a bfloat16 copy needs ~1.3 s
and ~70 ms, with the same real-loop answer quality. Dynamic int8 quantization was faster still (0.8 s, 31 ms) but
lost the answers: its per-tensor activation scales cannot hold Gemma's activation outliers (real-loop F1 42 → 19).
Figures: ``bench/local_llm_bench.py``; real-loop quality: the adapter's EVAL.md.

A LoRA adapter is merged into the fp32 weights, which stay the ones adapters are loaded into, merged and unmerged,
as before; the bfloat16 copy is made from them with the active adapter already merged.
"""

from __future__ import annotations

import copy
import logging
import time
from typing import Any

import torch

log = logging.getLogger(__name__)


def bfloat16_copy(model: Any) -> Any:
    """A plain (adapter-free) bfloat16 copy of ``model`` holding its current weights, any merged LoRA included."""
    started = time.perf_counter()
    plain = copy.deepcopy(model)
    if hasattr(plain, "unload"):  # a PeftModel: keep the base layers, whose weights carry the merged adapter
        plain = plain.unload()
    plain = plain.to(torch.bfloat16).eval()
    plain.get_output_embeddings().register_forward_pre_hook(_fresh_rows)
    log.info("bfloat16 copy of the model made in %.1f s", time.perf_counter() - started)
    return plain


def _fresh_rows(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """The output layer's input as a fresh tensor. Generation feeds it a view of the prompt's last position (batch
    stride = the whole prompt), and torch 2.13 multiplies such a bfloat16 ``[1, 1, d]`` view by a weight that needs
    no gradient (PEFT freezes the base weights) through ``bmm``, first copying the transposed 262k × 640 matrix:
    0.7 s per prompt instead of 30 ms. A copy with plain strides takes the matrix path."""
    return (args[0].clone(memory_format=torch.contiguous_format), *args[1:])
