"""An OpenAI-compatible HTTP server for the local model, so the chain talks to it exactly as it talks to vLLM.

Endpoints: ``GET /health``, ``GET /v1/models``, ``POST /v1/chat/completions`` (JSON or Server-Sent Events with
``stream: true``; ``usage`` and ``finish_reason`` as OpenAI reports them). Binds 127.0.0.1 unless told otherwise.

Adapters are managed at run time with vLLM's own endpoints, so promotion speaks one protocol to both servers:
``POST /v1/load_lora_adapter`` (``lora_name``, ``lora_path``, ``load_inplace``) and ``POST /v1/unload_lora_adapter``
(``lora_name``). They answer only clients on the loopback interface, whatever address the server binds. A request
naming a loaded adapter as its ``model`` is answered by it; any other name by the adapter named like the server.

Its command line is ``lorebot local-llm`` (:mod:`bot.cli`), which the launcher runs too.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from bot.local_llm.launcher import default_adapter_path, default_model_path
from bot.local_llm.model import AdapterError, Generation, LocalModel, SamplingParams, UnknownAdapter, load_local_model
from bot.settings import LocalPrecision, Settings

log = logging.getLogger(__name__)

MAX_MESSAGES = 200
DEFAULT_MAX_TOKENS = 256
LOOPBACK = frozenset({"127.0.0.1", "::1"})
ADAPTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class BadRequest(ValueError):
    """The request body is not a chat completion request this server can serve."""


def _error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": None}}, status_code=status)


def _content(value: Any) -> str:
    """Message content as text: a string, or the text parts of an OpenAI content list."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in value):
        return "".join(str(p.get("text", "")) for p in value)
    raise BadRequest("message content must be a string or a list of text parts")


def _first_set(body: dict[str, Any], keys: tuple[str, ...], default: Any) -> Any:
    return next((body[k] for k in keys if body.get(k) is not None), default)


def parse_request(body: Any) -> tuple[list[dict[str, str]], SamplingParams, bool, bool]:
    """Validate a chat completion body → (messages, sampling, stream, include_usage_in_stream)."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise BadRequest("messages must be a non-empty list")
    if len(raw) > MAX_MESSAGES:
        raise BadRequest(f"too many messages ({len(raw)} > {MAX_MESSAGES})")
    messages = []
    for message in raw:
        if not isinstance(message, dict) or message.get("role") not in ("system", "user", "assistant"):
            raise BadRequest("each message needs a role of system, user or assistant")
        messages.append({"role": message["role"], "content": _content(message.get("content", ""))})
    stop = body.get("stop") or ()
    stop = (stop,) if isinstance(stop, str) else tuple(stop)
    try:
        params = SamplingParams(
            max_tokens=int(_first_set(body, ("max_completion_tokens", "max_tokens"), DEFAULT_MAX_TOKENS)),
            temperature=float(_first_set(body, ("temperature",), 0.0)),
            top_p=float(_first_set(body, ("top_p",), 1.0)),
            stop=tuple(str(s) for s in stop),
        )
    except (TypeError, ValueError) as e:
        raise BadRequest(f"invalid sampling parameter: {e}") from e
    if params.max_tokens < 1 or params.temperature < 0 or not 0 < params.top_p <= 1:
        raise BadRequest("max_tokens must be ≥ 1, temperature ≥ 0 and 0 < top_p ≤ 1")
    stream = bool(body.get("stream", False))
    include_usage = bool((body.get("stream_options") or {}).get("include_usage", False))
    return messages, params, stream, include_usage


def _usage(generation: Generation) -> dict[str, Any]:
    return {
        "prompt_tokens": generation.prompt_tokens,
        "completion_tokens": generation.completion_tokens,
        "total_tokens": generation.prompt_tokens + generation.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": generation.cached_tokens},  # as OpenAI and vLLM report it
    }


def _sse(generation: Generation, completion_id: str, model: str, include_usage: bool) -> Iterator[str]:
    created = int(time.time())

    def chunk(delta: dict[str, str], finish_reason: str | None = None, **extra: Any) -> str:
        payload = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            **extra,
        }
        return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    try:
        for piece in generation:
            yield chunk({"content": piece})
    except RuntimeError as e:
        log.error("generation failed mid-stream: %s", e)
        yield f"data: {json.dumps({'error': {'message': str(e), 'type': 'server_error'}})}\n\n"
        return
    yield chunk({}, generation.finish_reason)
    if include_usage:
        yield (
            "data: "
            + json.dumps({"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                          "choices": [], "usage": _usage(generation)})
            + "\n\n"
        )  # fmt: skip
    yield "data: [DONE]\n\n"


def create_app(model: LocalModel) -> Starlette:
    """The ASGI app serving ``model`` under its name (requests naming another model are served too)."""

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "model": model.name})

    async def models(request: Request) -> Response:
        cards = [{"id": name, "object": "model", "created": 0, "owned_by": "lorebot"} for name in model.served_names()]
        return JSONResponse({"object": "list", "data": cards})

    async def chat_completions(request: Request) -> Response:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "the body is not valid JSON")
        try:
            messages, params, stream, include_usage = parse_request(body)
            prompt_ids = model.prompt_ids(messages)
        except BadRequest as e:
            return _error(400, str(e))
        if model.context_tokens and len(prompt_ids) + params.max_tokens > model.context_tokens:
            return _error(400, f"prompt of {len(prompt_ids)} tokens + max_tokens exceeds {model.context_tokens}")
        generation = model.generate(prompt_ids, params, str(body.get("model") or ""))
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        if stream:
            return StreamingResponse(
                _sse(generation, completion_id, model.name, include_usage), media_type="text/event-stream"
            )
        try:
            text = await run_in_threadpool(generation.run)
        except RuntimeError as e:
            log.error("generation failed: %s", e)
            return _error(500, str(e), "server_error")
        return JSONResponse(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model.name,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": generation.finish_reason,
                    }
                ],
                "usage": _usage(generation),
            }
        )

    return Starlette(
        routes=[
            Route("/health", health),
            Route("/v1/models", models),
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/load_lora_adapter", _admin(model, _load_adapter), methods=["POST"]),
            Route("/v1/unload_lora_adapter", _admin(model, _unload_adapter), methods=["POST"]),
        ]
    )


AdminHandler = Callable[[LocalModel, dict[str, Any]], Awaitable[str]]


def _admin(model: LocalModel, handler: AdminHandler) -> Callable[[Request], Awaitable[Response]]:
    """An adapter-management endpoint: loopback clients only, a JSON object with a valid ``lora_name``,
    errors as vLLM words them (400 bad request, 404 unknown adapter), success as vLLM's plain-text line."""

    async def endpoint(request: Request) -> Response:
        if request.client is None or request.client.host not in LOOPBACK:
            return _error(403, "adapters are managed from this host only", "forbidden")
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "the body is not valid JSON")
        if not isinstance(body, dict) or not ADAPTER_NAME.match(str(body.get("lora_name") or "")):
            return _error(400, "lora_name must be 1-64 letters, digits, '.', '_' or '-'")
        try:
            return Response(await handler(model, body), media_type="text/plain")
        except UnknownAdapter as e:
            return _error(404, str(e), "NotFoundError")
        except AdapterError as e:
            return _error(400, str(e), "InvalidUserInput")

    return endpoint


async def _load_adapter(model: LocalModel, body: dict[str, Any]) -> str:
    name, path = body["lora_name"], body.get("lora_path")
    if not isinstance(path, str) or not path:
        raise AdapterError("lora_path must name an adapter folder")
    await run_in_threadpool(model.load_adapter, name, Path(path), replace=bool(body.get("load_inplace", False)))
    return f"Success: LoRA adapter '{name}' added successfully."


async def _unload_adapter(model: LocalModel, body: dict[str, Any]) -> str:
    name = body["lora_name"]
    await run_in_threadpool(model.unload_adapter, name)
    return f"Success: LoRA adapter '{name}' removed successfully."


def load_served_model(
    settings: Settings,
    *,
    model_path: Path | None = None,
    adapter_path: Path | None = None,
    use_adapter: bool = True,
    served_model_name: str | None = None,
    precision: LocalPrecision | None = None,
) -> LocalModel:
    """The model to serve; unset arguments come from settings (packaged Gemma, shipped adapter, ``LLM_MODEL``,
    ``LOCAL_LLM_PRECISION``)."""
    model = model_path or default_model_path(settings)
    adapter = (adapter_path or default_adapter_path(settings)) if use_adapter else None
    name = served_model_name or settings.llm_model
    return load_local_model(model, adapter, name=name, precision=precision or settings.local_llm_precision)


def serve(model: LocalModel, settings: Settings, *, host: str | None = None, port: int | None = None) -> None:
    """Serve ``model`` until stopped (``local_llm_host``/``local_llm_port`` unless given)."""
    import uvicorn

    uvicorn.run(
        create_app(model),
        host=host or settings.local_llm_host,
        port=port or settings.local_llm_port,
        log_level=settings.log_level.lower(),
    )
