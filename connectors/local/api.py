"""``lorebot serve local``: ``POST /ask {"question", "user", "conversation"?, "request_id"?}`` → answer with
citations (JSON).

Translation only: JSON → :class:`~bot.domain.Question` asked at a :class:`~bot.domain.Place` → :meth:`Lorebot.ask`
→ JSON. The core resolves the place's scopes, validates the text and ids (:mod:`bot.validation`) and answers a
``request_id`` once (a repeat gets 409); this module only checks the JSON's shape. Errors use the core's one
description (:func:`~bot.failures.describe_failure`) and an HTTP status that tells a client whether retrying helps:
400 for what the client sent, 409 for a request already received, 503 for an outage, 500 only for a bug.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web

from bot.domain import Actor, ConversationKey, Place, Platform, Question, answer_payload
from bot.errors import RateLimited, Redelivered
from bot.failures import Kind, describe_failure
from bot.inflight import InFlight
from bot.service import Lorebot

log = logging.getLogger(__name__)

WORKSPACE = "api"
MAX_NAME_CHARS = 200
"""User and conversation ids are labels, not text: anything longer is a client bug."""
HTTP_STATUS: dict[Kind, int] = {
    "rate_limited": 429,
    "refused": 403,
    "not_found": 404,
    "invalid": 400,
    "restarting": 503,
    "outage": 503,
    "bug": 500,
}


class BadRequest(ValueError):
    """The request body is not what ``/ask`` expects."""


def build_app(service: Lorebot, inflight: InFlight) -> web.Application:
    async def ask(request: web.Request) -> web.Response:
        try:
            question = _question(await _json_body(request))
        except BadRequest as e:
            return web.json_response({"error": str(e), "reason": "bad request"}, status=400)
        try:
            async with inflight.track():
                answer = await service.ask(question)
        except Exception as e:  # one place turns every failure into a reply with an error id
            return _failure_response(e)
        return web.json_response(answer_payload(answer))

    app = web.Application()
    app.router.add_post("/ask", ask)
    return app


async def serve(service: Lorebot, inflight: InFlight) -> None:
    """Serve the API on ``local_api_host:local_api_port`` until cancelled."""
    settings = service.settings
    runner = web.AppRunner(build_app(service, inflight), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.local_api_host, settings.local_api_port).start()
        host, port = runner.addresses[0][:2]
        log.info("local API on http://%s:%d/ask", host, port)
        await asyncio.Event().wait()  # serve until the lifecycle cancels us
    finally:
        await runner.cleanup()


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadRequest(f"body is not JSON: {e}") from e
    except RecursionError as e:  # the decoder recurses once per nested array or object
        raise BadRequest("body is not JSON this API reads: nested too deeply") from e
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


def _question(body: dict[str, Any]) -> Question:
    text = body.get("question")
    if not isinstance(text, str):
        raise BadRequest('"question" must be a string')
    user = _label(body, "user", default="anonymous")
    conversation = _label(body, "conversation", default="")
    key = ConversationKey(Platform.LOCAL, WORKSPACE, conversation) if conversation else None
    place = Place(Platform.LOCAL, WORKSPACE, conversation, event_id=_label(body, "request_id", default=""))
    return Question(text, Actor(Platform.LOCAL, user, user), conversation=key, place=place)


def _label(body: dict[str, Any], name: str, *, default: str) -> str:
    value = body.get(name, default)
    if not isinstance(value, str) or len(value) > MAX_NAME_CHARS:
        raise BadRequest(f'"{name}" must be a string of at most {MAX_NAME_CHARS} characters')
    return value.strip() or default


def _failure_response(error: Exception) -> web.Response:
    if isinstance(error, Redelivered):  # the first request with this id is answered; nothing failed
        return web.json_response({"error": str(error), "reason": error.reason}, status=409)
    failure = describe_failure(error)
    headers = {"Retry-After": str(max(1, round(error.retry_after)))} if isinstance(error, RateLimited) else None
    body = {"error": failure.user_message, "reason": failure.reason, "error_id": failure.error_id}
    return web.json_response(body, status=HTTP_STATUS[failure.kind], headers=headers)
