"""Runtime LoRA swapping against a fake vLLM on 127.0.0.1 that speaks vLLM's wire protocol: the load/unload
endpoints (plain-text success lines, ``{"error": {...}}`` failures, ``load_inplace`` or its absence in older
releases), ``/v1/models`` and chat completions (JSON or SSE) answered by the adapter the request names.

The last test runs the bots' real chain (``Lorebot.ask``) after a promotion and checks the model name it requests
and the adapter that answers.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from bot.sft.lora_runtime import LoraRuntime, ServingError
from tests.fixtures.net import running_app, unused_port


class FakeVLLM:
    """State of the fake server; ``inplace``: False behaves like vLLM before ``load_inplace`` existed."""

    def __init__(self, *, runtime_updates: bool = True, inplace: bool = True) -> None:
        self.loras: dict[str, str] = {}
        self.calls: list[tuple[str, dict]] = []
        self.chat_models: list[str] = []
        self.runtime_updates = runtime_updates
        self.inplace = inplace
        self.base_url = ""

    def app(self) -> Starlette:
        async def load(request: Request) -> Response:
            body = await request.json()
            self.calls.append(("load", body))
            name, path = body.get("lora_name"), body.get("lora_path")
            if not name or not path:
                return _vllm_error(400, "Both 'lora_name' and 'lora_path' must be provided.")
            if name in self.loras and not (self.inplace and body.get("load_inplace")):
                return _vllm_error(400, f"The lora adapter '{name}' has already been loaded.")
            if not Path(path).is_dir():
                return _vllm_error(400, f"Loading lora {name} failed: No adapter found for {path}")
            self.loras[name] = path
            return PlainTextResponse(f"Success: LoRA adapter '{name}' added successfully.")

        async def unload(request: Request) -> Response:
            body = await request.json()
            self.calls.append(("unload", body))
            if body.get("lora_name") not in self.loras:
                return _vllm_error(404, f"The lora adapter '{body.get('lora_name')}' cannot be found.", "NotFoundError")
            del self.loras[body["lora_name"]]
            return PlainTextResponse(f"Success: LoRA adapter '{body['lora_name']}' removed successfully.")

        async def models(request: Request) -> Response:
            cards = [{"id": name, "object": "model", "root": path} for name, path in self.loras.items()]
            return JSONResponse({"object": "list", "data": [{"id": "base", "object": "model"}, *cards]})

        async def chat(request: Request) -> Response:
            body = await request.json()
            self.chat_models.append(body["model"])
            if body["model"] not in self.loras:
                return _vllm_error(404, f"The model `{body['model']}` does not exist.", "NotFoundError")
            text = f"Answered by {Path(self.loras[body['model']]).name} [1]."
            if body.get("stream"):
                return StreamingResponse(_sse(body["model"], text), media_type="text/event-stream")
            return JSONResponse(
                {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                 "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                 "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
            )  # fmt: skip

        routes = [Route("/v1/models", models), Route("/v1/chat/completions", chat, methods=["POST"])]
        if self.runtime_updates:  # vLLM adds these only with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True
            routes += [
                Route("/v1/load_lora_adapter", load, methods=["POST"]),
                Route("/v1/unload_lora_adapter", unload, methods=["POST"]),
            ]
        return Starlette(routes=routes)


def _sse(model: str, text: str) -> Iterator[str]:
    for delta, finish in (({"role": "assistant", "content": text}, None), ({}, "stop")):
        chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": model,
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
        yield f"data: {json.dumps(chunk)}\n\n"
    yield "data: [DONE]\n\n"


def _vllm_error(status: int, message: str, kind: str = "BadRequestError") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": status}}, status)


@pytest.fixture
def fake_vllm(request: pytest.FixtureRequest) -> Iterator[FakeVLLM]:
    """A running fake vLLM; parametrize indirectly with the keyword arguments of :class:`FakeVLLM`."""
    with running_fake_vllm(FakeVLLM(**getattr(request, "param", {}))) as fake:
        yield fake


@contextlib.contextmanager
def running_fake_vllm(fake: FakeVLLM) -> Iterator[FakeVLLM]:
    """``with running_fake_vllm(FakeVLLM()) as fake:`` — the fake vLLM served on loopback."""
    with running_app(fake.app()) as url:
        fake.base_url = f"{url}/v1"
        yield fake


@pytest.fixture
def adapter_dirs(tmp_path: Path) -> tuple[Path, Path]:
    first, second = tmp_path / "adapter-one", tmp_path / "adapter-two"
    first.mkdir()
    second.mkdir()
    return first, second


async def test_load_then_replace_in_place_then_unload(fake_vllm: FakeVLLM, adapter_dirs: tuple[Path, Path]) -> None:
    runtime = LoraRuntime(fake_vllm.base_url)
    one, two = adapter_dirs

    await runtime.load("cand-1", one)
    await runtime.load("cand-1", one)  # already there: fine
    await runtime.replace("lorebot", one)
    await runtime.replace("lorebot", two)
    await runtime.unload("cand-1")
    await runtime.unload("cand-1")  # already gone: fine

    assert fake_vllm.loras == {"lorebot": str(two)}
    assert [c for c in fake_vllm.calls if c[0] == "load"][2:] == [
        ("load", {"lora_name": "lorebot", "lora_path": str(one), "load_inplace": True}),
        ("load", {"lora_name": "lorebot", "lora_path": str(two), "load_inplace": True}),
    ]


@pytest.mark.parametrize("fake_vllm", [{"inplace": False}], indirect=True)
async def test_a_server_without_load_inplace_gets_unload_and_load(
    fake_vllm: FakeVLLM, adapter_dirs: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    runtime = LoraRuntime(fake_vllm.base_url)
    one, two = adapter_dirs
    await runtime.replace("lorebot", one)

    await runtime.replace("lorebot", two)

    assert fake_vllm.loras == {"lorebot": str(two)}
    assert [name for name, _ in fake_vllm.calls] == ["load", "load", "unload", "load"]
    assert "cannot replace adapter lorebot in place" in caplog.text


async def test_a_refused_adapter_is_an_error_naming_the_server_message(fake_vllm: FakeVLLM, tmp_path: Path) -> None:
    with pytest.raises(ServingError, match=r"HTTP 400 Loading lora x failed: No adapter found"):
        await LoraRuntime(fake_vllm.base_url).replace("x", tmp_path / "missing")
    assert fake_vllm.loras == {}


@pytest.mark.parametrize("fake_vllm", [{"runtime_updates": False}], indirect=True)
async def test_runtime_updates_disabled_says_how_to_enable_them(fake_vllm: FakeVLLM, tmp_path: Path) -> None:
    with pytest.raises(ServingError, match="VLLM_ALLOW_RUNTIME_LORA_UPDATING=True"):
        await LoraRuntime(fake_vllm.base_url).load("x", tmp_path)


async def test_an_unreachable_server_is_a_serving_error(tmp_path: Path) -> None:
    with pytest.raises(ServingError, match="cannot reach the model server"):
        await LoraRuntime(f"http://127.0.0.1:{unused_port()}/v1", timeout_s=2).load("x", tmp_path)
