"""Asking the language model endpoint which models it serves (``GET {LLM_BASE_URL}/models``).

The one probe that ``lorebot doctor`` and ``/healthz`` share: it never raises, it says what went wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from bot.settings import Settings


@dataclass(frozen=True, slots=True)
class LLMProbe:
    url: str
    models: tuple[str, ...] = ()
    problem: str = ""
    """Empty when the endpoint listed its models; else a short class: timeout, unreachable, http 503, malformed."""
    detail: str = ""
    """What failed, for logs and the doctor's hint."""


async def probe_llm(settings: Settings, *, timeout: float) -> LLMProbe:
    """The models the endpoint lists, or why it could not say within ``timeout`` s."""
    url = settings.llm_base_url.rstrip("/") + "/models"
    headers = {"Authorization": f"Bearer {settings.llm_api_key.get_secret_value()}"}
    limits = httpx.Timeout(timeout, connect=min(timeout, settings.llm_connect_timeout_s))
    try:
        async with httpx.AsyncClient(timeout=limits) as client:
            response = await client.get(url, headers=headers)
    except httpx.TimeoutException as e:
        return LLMProbe(url, problem="timeout", detail=f"{type(e).__name__} {e}")
    except httpx.HTTPError as e:
        return LLMProbe(url, problem="unreachable", detail=f"{type(e).__name__} {e}")
    if response.status_code != 200:
        return LLMProbe(url, problem=f"http {response.status_code}", detail=f"HTTP {response.status_code}")
    try:
        models = tuple(str(model["id"]) for model in response.json()["data"])
    except (ValueError, KeyError, TypeError) as e:
        return LLMProbe(url, problem="malformed", detail=f"not a model list ({type(e).__name__}: {e})")
    return LLMProbe(url, models)
