"""Batched in-process generation for evaluation when an HTTP endpoint is too slow (a shared CPU): the same
messages, the same chat template as the local server, greedy decoding, left padding, stop at end of turn.

One forward pass serves a whole batch, so the 262k-row output projection is read once per step for all
sequences instead of once per sequence: on CPU this is many times faster than one request at a time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from bot.local_llm.chat_template import STOP_STRINGS

log = logging.getLogger(__name__)


def generate_batched(
    model: Any, tokenizer: Any, conversations: Sequence[list[dict[str, str]]], *, max_tokens: int, batch_size: int
) -> list[tuple[str, float]]:
    """(reply, milliseconds of its batch divided by the batch size) for each conversation, in order."""
    import torch

    tokenizer.padding_side = "left"
    stop_ids = [tokenizer.convert_tokens_to_ids(s) for s in STOP_STRINGS] + [tokenizer.eos_token_id]
    results: list[tuple[str, float]] = []
    for start in range(0, len(conversations), batch_size):
        batch = conversations[start : start + batch_size]
        prompts = [tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in batch]
        encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        started = time.perf_counter()
        with torch.inference_mode():
            output = model.generate(
                **encoded.to(model.device),
                max_new_tokens=max_tokens,
                do_sample=False,
                eos_token_id=stop_ids,
                pad_token_id=tokenizer.pad_token_id,
            )
        per_item = (time.perf_counter() - started) * 1000 / len(batch)
        for row in output[:, encoded["input_ids"].shape[1] :]:
            results.append((_cut(tokenizer.decode(row, skip_special_tokens=False), tokenizer), per_item))
        log.info("generated %d/%d (%.0f ms per item)", len(results), len(conversations), per_item)
    return results


def _cut(text: str, tokenizer: Any) -> str:
    """The reply up to the first stop string, without padding."""
    for stop in (*STOP_STRINGS, tokenizer.eos_token, tokenizer.pad_token):
        if stop and stop in text:
            text = text[: text.index(stop)]
    return text.strip()
