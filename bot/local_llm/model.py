"""The local generator: a transformers causal LM (optionally with a PEFT LoRA adapter) behind a streaming API.

Loads the model and tokenizer as SFT does (:mod:`bot.local_llm.modeling`), in fp32 on the CPU, and by default
generates with a bfloat16 copy of it (:mod:`bot.local_llm.precision`). CPU inference runs one generation at a time (a
lock): parallel generations would only slow each other down.

LoRA adapters are named, as in vLLM: the one named like the model serves every request that names no other
loaded adapter, and :meth:`LocalModel.load_adapter` adds or replaces one while the server runs. The adapter a
generation uses is merged into the fp32 weights under the lock (and unmerged when another is asked for), and the
bfloat16 copy is remade from them when the merged adapter changed, so serving one adapter costs what a merged model
costs. The prompt start that requests share is prefilled once (:mod:`bot.local_llm.prefix`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import (
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
    TextIteratorStreamer,
)

from bot.local_llm.chat_template import STOP_STRINGS
from bot.local_llm.modeling import load_model, load_tokenizer
from bot.local_llm.precision import bfloat16_copy
from bot.local_llm.prefix import PrefixCache
from bot.settings import LocalPrecision

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SamplingParams:
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()


class StopFilter:
    """Cut streamed text at the first stop string, holding back a tail that may be the start of one."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.buffer = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        self.buffer += piece
        hits = [i for s in self.stops if (i := self.buffer.find(s)) >= 0]
        if hits:
            out, self.buffer, self.stopped = self.buffer[: min(hits)], "", True
            return out
        keep = max((n for s in self.stops for n in range(1, len(s)) if self.buffer.endswith(s[:n])), default=0)
        out, self.buffer = self.buffer[: len(self.buffer) - keep], self.buffer[len(self.buffer) - keep :]
        return out

    def flush(self) -> str:
        out, self.buffer = self.buffer, ""
        return out


class _Cancelled(StoppingCriteria):
    """Stops ``generate`` once the reader has seen a stop string or went away."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class Generation:
    """One completion: iterate for text pieces; afterwards ``text``, token counts and ``finish_reason`` are set."""

    def __init__(self, model: LocalModel, prompt_ids: list[int], params: SamplingParams, adapter: str | None) -> None:
        self.model = model
        self.prompt_ids = prompt_ids
        self.params = params
        self.adapter = adapter
        self.text = ""
        self.prompt_tokens = len(prompt_ids)
        self.cached_tokens = 0  # prompt tokens whose attention cache came from the prefix cache
        self.completion_tokens = 0
        self.finish_reason = "stop"
        self._error: BaseException | None = None

    def __iter__(self) -> Iterator[str]:
        tokenizer = self.model.tokenizer
        stop_filter = StopFilter((*self.model.stop_strings, *self.params.stop))
        with self.model.lock:
            self.model.activate(self.adapter)
            runner = self.model.runner()
            cache, self.cached_tokens = self.model.prefix.take(runner, self.prompt_ids)
            cancel = threading.Event()
            streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=False)
            worker = threading.Thread(target=self._generate, args=(runner, cache, streamer, cancel), daemon=True)
            started = time.perf_counter()
            worker.start()
            try:
                for piece in streamer:
                    out = stop_filter.feed(piece)
                    if out:
                        self.text += out
                        yield out
                    if stop_filter.stopped:
                        break
                if not stop_filter.stopped and (tail := stop_filter.flush()):
                    self.text += tail
                    yield tail
            finally:
                cancel.set()
                worker.join()
        if self._error is not None:
            raise RuntimeError(f"generation failed: {self._error}") from self._error
        if not stop_filter.stopped and self.completion_tokens >= self.params.max_tokens:
            self.finish_reason = "length"
        log.info(
            "generated prompt_tokens=%d cached_tokens=%d completion_tokens=%d finish=%s seconds=%.2f",
            self.prompt_tokens, self.cached_tokens, self.completion_tokens, self.finish_reason,
            time.perf_counter() - started,
        )  # fmt: skip

    def run(self) -> str:
        """The complete text."""
        for _ in self:
            pass
        return self.text

    def _generate(self, runner: Any, cache: Any, streamer: TextIteratorStreamer, cancel: threading.Event) -> None:
        params = self.params
        sampling: dict[str, Any] = (
            {"do_sample": True, "temperature": params.temperature, "top_p": params.top_p}
            if params.temperature > 0
            else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        )
        try:
            input_ids = torch.tensor([self.prompt_ids], device=self.model.device)
            with torch.inference_mode():
                output = runner.generate(
                    input_ids=input_ids,
                    attention_mask=torch.ones_like(input_ids),
                    cache=cache,  # the prompt's cached start, or None
                    max_new_tokens=params.max_tokens,
                    eos_token_id=self.model.stop_token_ids or None,
                    pad_token_id=self.model.pad_token_id,
                    streamer=streamer,
                    stopping_criteria=StoppingCriteriaList([_Cancelled(cancel)]),
                    **sampling,
                )
            self.completion_tokens = int(output.shape[1]) - len(self.prompt_ids)
        except BaseException as e:  # surfaced to the reader in __iter__
            self._error = e
            streamer.end()


class LocalModel:
    """A loaded model + tokenizer and its named LoRA adapters; :meth:`generate` returns a :class:`Generation`."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        name: str,
        precision: LocalPrecision = "bfloat16",
    ) -> None:
        self.model: Any = model
        self.tokenizer = tokenizer
        self.name = name
        self.precision = precision
        self._bf16: Any = None  # the bfloat16 copy of the model with the active adapter merged (None: to be made)
        self.prefix = PrefixCache()  # of the weights generations run on
        self.lock = threading.Lock()
        self.adapters: dict[str, LoadedAdapter] = {}
        self._active: str | None = None  # internal name of the adapter merged into the weights; None = base
        self._loads = 0
        self.device = next(model.parameters()).device
        eos = tokenizer.eos_token
        self.stop_strings = tuple(s for s in (*STOP_STRINGS, eos) if s)
        self.stop_token_ids = _single_token_ids(tokenizer, self.stop_strings)
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.context_tokens = int(getattr(model.config, "max_position_embeddings", 0) or 0)

    def prompt_ids(self, messages: Sequence[dict[str, str]]) -> list[int]:
        """Render ``messages`` with the chat template (and the generation prompt) into token ids."""
        rendered = self.tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
        return self.tokenizer(rendered, add_special_tokens=False)["input_ids"]

    def generate(self, prompt_ids: list[int], params: SamplingParams, model: str = "") -> Generation:
        """A generation by the adapter ``model`` names, else by the serving one (named like the model)."""
        adapter = model if model in self.adapters else self.name
        return Generation(self, prompt_ids, params, adapter if adapter in self.adapters else None)

    def served_names(self) -> list[str]:
        """The model's name first, then every other loaded adapter (what ``/v1/models`` lists)."""
        return [self.name, *sorted(a for a in self.adapters if a != self.name)]

    def load_adapter(self, name: str, path: Path, *, replace: bool = False) -> None:
        """Load the PEFT adapter in ``path`` as ``name``; with ``replace`` an adapter of that name is swapped
        out (the next generation uses the new one). Raises :class:`AdapterError` when the name is taken (without
        ``replace``) or the folder is not an adapter for this model; a failed load leaves every adapter as it was.
        """
        if not (path / "adapter_config.json").is_file():
            raise AdapterError(f"{path} is not a PEFT adapter folder (no adapter_config.json)")
        with self.lock:
            if name in self.adapters and not replace:
                raise AdapterError(f"The lora adapter '{name}' has already been loaded.")
            self.activate(None)
            self._loads += 1
            internal = f"adapter{self._loads}"  # PEFT cannot rename: a replacement loads beside the old one
            try:
                self._peft_load(path, internal)
            except (OSError, ValueError, RuntimeError, KeyError) as e:
                if internal in getattr(self.model, "peft_config", {}):
                    self.model.delete_adapter(internal)
                raise AdapterError(f"cannot load the adapter in {path}: {e}") from e
            if name in self.adapters:
                self.model.delete_adapter(self.adapters[name].internal)
            self.adapters[name] = LoadedAdapter(path, internal)
            self.model.base_model.disable_adapter_layers()  # PEFT activates what it loads; generations choose
        log.info("adapter %s loaded from %s", name, path)

    def unload_adapter(self, name: str) -> None:
        """Remove the adapter ``name``; :class:`AdapterError` when no such adapter is loaded."""
        with self.lock:
            if name not in self.adapters:
                raise UnknownAdapter(f"The lora adapter '{name}' cannot be found.")
            self.activate(None)
            self.model.delete_adapter(self.adapters.pop(name).internal)
            self.model.base_model.disable_adapter_layers()
        log.info("adapter %s unloaded", name)

    def activate(self, adapter: str | None) -> None:
        """Merge ``adapter`` into the weights (None: the bare base model). Call with :attr:`lock` held.

        Between generations no adapter is active unmerged: the merged one or none acts on the weights.
        """
        internal = self.adapters[adapter].internal if adapter is not None else None
        if internal == self._active:
            return
        self._bf16 = None
        self.prefix.clear()
        if self._active is not None:
            self.model.base_model.unmerge_adapter()
            self.model.base_model.disable_adapter_layers()
            self._active = None
        if internal is not None:
            self.model.base_model.enable_adapter_layers()
            self.model.set_adapter(internal)
            self.model.base_model.merge_adapter([internal])
            self._active = internal

    def runner(self) -> Any:
        """The model generations run on, in :attr:`precision`, with the active adapter's weights. Call with
        :attr:`lock` held."""
        if self.precision == "float32":
            return self.model
        if self._bf16 is None:
            self._bf16 = bfloat16_copy(self.model)
        return self._bf16

    def _peft_load(self, path: Path, adapter_name: str) -> None:
        from peft import PeftModel

        if isinstance(self.model, PeftModel):
            self.model.load_adapter(str(path), adapter_name=adapter_name)
        else:
            self.model = PeftModel.from_pretrained(self.model, str(path), adapter_name=adapter_name).eval()


@dataclass(frozen=True, slots=True)
class LoadedAdapter:
    path: Path  # the folder it was loaded from
    internal: str  # its name inside the PEFT model


class AdapterError(ValueError):
    """An adapter cannot be loaded or unloaded as asked (the model keeps the adapters it had)."""


class UnknownAdapter(AdapterError):
    """No adapter of that name is loaded."""


def _single_token_ids(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> list[int]:
    """Ids of the stop strings that are one token (e.g. Gemma's ``<end_of_turn>``): generation stops on them."""
    ids = []
    for text in texts:
        encoded = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(encoded) == 1:
            ids.append(encoded[0])
    return sorted(set(ids))


def load_local_model(
    model: str | Path, adapter_path: Path | None = None, *, name: str, precision: LocalPrecision = "bfloat16"
) -> LocalModel:
    """Load a model (as :func:`~bot.local_llm.modeling.model_location` finds it) in fp32 on the CPU, plus an
    optional PEFT LoRA adapter folder served as ``name``, merged at once and computing in ``precision``."""
    started = time.perf_counter()
    loaded = load_model(str(model), device="cpu", dtype="float32", keep_dequantized=True).eval()
    local = LocalModel(loaded, load_tokenizer(str(model)), name=name, precision=precision)
    if adapter_path is not None:
        local.load_adapter(name, adapter_path)
    with local.lock:
        local.activate(name if adapter_path is not None else None)
        local.runner()  # merged and copied now: the first answer does not pay for it
    log.info("loaded local model %s from %s in %.1f s", name, model, time.perf_counter() - started)
    return local
