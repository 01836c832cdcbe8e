"""The regression set: answers users rated 👍 that earlier cycles trained on, replayed to a model.

Each example is asked exactly as the chain asked it when the user rated it (system prompt, history, the
recorded numbered context), so a candidate that forgot what users liked shows here even when the held-out
real-loop questions look fine. Scores per language: token F1 against the approved answer and the share of
approved answers the model now refuses.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Sequence
from typing import Any

import openai

from bot.sft import metrics
from bot.sft.config import EvalConfig
from bot.sft.errors import SFTError
from bot.sft.gate import Scores

log = logging.getLogger(__name__)


async def replay(
    base_url: str, model: str, examples: Sequence[dict[str, Any]], config: EvalConfig, *, api_key: str = "unused"
) -> Scores:
    """Ask ``model`` every example (``{"example": {"messages": [...]}, "lang": ...}``); scores by language."""
    client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key, timeout=config.timeout_s, max_retries=1)
    rows: list[tuple[str, float, float]] = []
    try:
        for item in examples:
            messages = item["example"]["messages"]
            approved = messages[-1]["content"]
            try:
                response = await client.chat.completions.create(
                    model=model, messages=messages[:-1], max_tokens=config.max_tokens, temperature=config.temperature
                )
            except openai.OpenAIError as e:
                raise SFTError(f"regression set: {model} at {base_url} failed: {e}") from e
            text = response.choices[0].message.content or ""
            rows.append((item["lang"], metrics.token_f1(text, [approved]) * 100, float(metrics.is_refusal(text))))
    finally:
        await client.close()
    log.info("regression set: %s answered %d approved questions", model, len(rows))
    return _by_language(rows)


def _by_language(rows: list[tuple[str, float, float]]) -> Scores:
    def summary(chosen: list[tuple[str, float, float]]) -> dict[str, float]:
        return {
            "questions": len(chosen),
            "token_f1": round(statistics.fmean(r[1] for r in chosen), 4),
            "wrong_refusal": round(statistics.fmean(r[2] for r in chosen), 4),
        }

    if not rows:
        return {}
    languages = sorted({r[0] for r in rows})
    return {"all": summary(rows)} | {lang: summary([r for r in rows if r[0] == lang]) for lang in languages}
