"""Prefix caching for the local model, as vLLM's automatic prefix caching does it on a GPU.

Every answer prompt starts with the same tokens: the chat template's header and the system prompt, about 100 of a
1,000-token RAG prompt. Their attention cache is computed once and a copy of it starts each generation, so only
the rest of the prompt is prefilled. The shared start is found rather than configured: the longest common start
of two consecutive prompts, once it is at least :data:`MIN_PREFIX_TOKENS` long. A cache holds one set of weights'
keys and values: the model clears it whenever the weights generations run on change.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import Any

import torch
from transformers import DynamicCache

log = logging.getLogger(__name__)

MIN_PREFIX_TOKENS = 32
"""Shorter shared starts (a chat template's header alone) are not worth a cache."""


class PrefixCache:
    """The cache of one shared prompt start; use it with the model's generation lock held."""

    def __init__(self) -> None:
        self._ids: list[int] = []
        self._cache: DynamicCache | None = None
        self._previous: Sequence[int] = ()

    def clear(self) -> None:
        """Forget the cache (the weights changed); the next two prompts find the shared start again."""
        self._ids, self._cache, self._previous = [], None, ()

    def take(self, runner: Any, prompt_ids: Sequence[int]) -> tuple[DynamicCache | None, int]:
        """A copy of the cache of ``prompt_ids``' start for ``runner`` to continue from, and how many tokens it
        holds; ``(None, 0)`` when the prompt shares no long enough start with the one before."""
        if not self._covers(prompt_ids):
            shared = min(_common_start(self._previous, prompt_ids), len(prompt_ids) - 1)
            if shared >= MIN_PREFIX_TOKENS:
                self._ids, self._cache = list(prompt_ids[:shared]), _prefill(runner, prompt_ids[:shared])
                log.info("prefix cache: %d shared prompt tokens", shared)
        self._previous = prompt_ids
        if self._cache is None or not self._covers(prompt_ids):
            return None, 0
        return copy.deepcopy(self._cache), len(self._ids)

    def _covers(self, prompt_ids: Sequence[int]) -> bool:
        """The cached start is a proper prefix of ``prompt_ids`` (one token at least is left to prefill)."""
        held = len(self._ids)
        return self._cache is not None and len(prompt_ids) > held and list(prompt_ids[:held]) == self._ids


def _common_start(a: Sequence[int], b: Sequence[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def _prefill(runner: Any, ids: Sequence[int]) -> DynamicCache:
    device = next(runner.parameters()).device
    cache = DynamicCache(config=runner.config)
    with torch.inference_mode():
        runner(input_ids=torch.tensor([list(ids)], device=device), cache=cache, use_cache=True)
    return cache
