"""Swap LoRA adapters in a running model server: vLLM's runtime endpoints, which the embedded local server
speaks too (``POST /v1/load_lora_adapter``, ``POST /v1/unload_lora_adapter``).

vLLM exposes them only with ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``. Replacing the adapter behind a name the
bots already request uses ``load_inplace`` (vLLM since PR #31326); a server that refuses it because the name is
taken gets unload + load instead, with a warning: requests in between fail and are retried by the bots.
"""

from __future__ import annotations

import logging
from pathlib import Path

import httpx

from bot.sft.errors import SFTError

log = logging.getLogger(__name__)

ALREADY_LOADED = "has already been loaded"


class ServingError(SFTError):
    """The model server refused or could not be reached to change adapters."""

    reason = "model server refused the adapter"


class LoraRuntime:
    """Client of one server's runtime LoRA endpoints; ``base_url`` is its OpenAI ``/v1`` URL."""

    def __init__(self, base_url: str, *, api_key: str = "", timeout_s: float = 300.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = httpx.Timeout(timeout_s, connect=5.0)

    async def load(self, name: str, path: Path) -> None:
        """Load ``path`` as a new adapter ``name``; loading a name that is already there is not an error."""
        response = await self._post("load_lora_adapter", {"lora_name": name, "lora_path": str(path)})
        if response.status_code == 400 and ALREADY_LOADED in response.text:
            log.info("adapter %s was already loaded at %s", name, self.base_url)
            return
        self._check(response, f"load {name} from {path}")

    async def replace(self, name: str, path: Path) -> None:
        """Serve ``path`` under ``name`` from the next request on (loaded fresh when the name is unknown)."""
        body = {"lora_name": name, "lora_path": str(path), "load_inplace": True}
        response = await self._post("load_lora_adapter", body)
        if response.status_code == 400 and ALREADY_LOADED in response.text:
            log.warning("%s cannot replace adapter %s in place: unloading and loading it again", self.base_url, name)
            await self.unload(name)
            response = await self._post("load_lora_adapter", {"lora_name": name, "lora_path": str(path)})
        self._check(response, f"replace {name} with {path}")
        log.info("%s now serves %s from %s", self.base_url, name, path)

    async def unload(self, name: str) -> None:
        """Remove adapter ``name``; one the server does not have is already gone."""
        response = await self._post("unload_lora_adapter", {"lora_name": name})
        if response.status_code == 404 and "lora" in response.text.lower():
            return
        self._check(response, f"unload {name}")

    async def _post(self, endpoint: str, body: dict) -> httpx.Response:
        url = f"{self.base_url}/{endpoint}"
        try:
            async with httpx.AsyncClient(timeout=self._timeout, headers=self._headers) as client:
                return await client.post(url, json=body)
        except httpx.HTTPError as e:
            raise ServingError(f"cannot reach the model server at {url}: {e}") from e

    def _check(self, response: httpx.Response, what: str) -> None:
        if response.is_success:
            return
        if response.status_code in (404, 405) and "lora" not in response.text.lower():
            raise ServingError(
                f"{response.url} has no runtime LoRA endpoint (HTTP {response.status_code}): start vLLM with "
                "--enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True"
            )
        raise ServingError(f"the model server could not {what}: HTTP {response.status_code} {_message(response)}")


def _message(response: httpx.Response) -> str:
    """vLLM's error message (``{"error": {"message"}}`` or ``{"message"}``), else the body's start."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])[:300]
        if "message" in body:
            return str(body["message"])[:300]
    return response.text[:300]
