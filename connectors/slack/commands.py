"""Slash commands: ``/ask`` (private answer with a "Share to channel" button) and ``/kb`` (knowledge admin).

Each command acks at once (with a visible "looking it up" for ``/ask``) and replies later via ``response_url``.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.domain import Actor, Place, Platform, Question
from connectors.slack import render
from connectors.slack.answering import question_problem
from connectors.slack.deps import Deps
from connectors.slack.desk import kb_desk
from connectors.slack.sources import source_command
from connectors.slack.tasks import respond_privately

log = logging.getLogger(__name__)

SEARCH_HITS = 5
SLACK_LINK = re.compile(r"^<(?P<url>https?://[^|>]+)(?:\|[^>]*)?>$")
"""Slack wraps links in commands as ``<https://x|label>`` when "escape links" is on for the command."""
URL = re.compile(r"^https?://\S+$")
TITLE_CHARS = 80


def register(app: AsyncApp, deps: Deps) -> None:
    @app.command("/ask")
    async def ask(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext) -> None:
        await ack(response_type="ephemeral", text=render.THINKING_TEXT)
        deps.tasks.spawn(
            _ask(deps, command, respond, context.team_id or ""),
            name=f"/ask {command['trigger_id']}",
            tell=respond_privately(respond, replace_original=True),
        )

    @app.command("/kb")
    async def kb(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext) -> None:
        await ack()
        deps.tasks.spawn(
            _kb(deps, command, respond, context.team_id or ""),
            name=f"/kb {command['trigger_id']}",
            tell=respond_privately(respond, replace_original=False),
        )


async def _ask(deps: Deps, command: dict[str, Any], respond: AsyncRespond, team: str) -> None:
    text = command.get("text") or ""
    problem = question_problem(text)
    if problem:
        await respond(text=problem, response_type="ephemeral", replace_original=True)
        return
    question = Question(
        text=text.strip(),
        actor=deps.admins.actor(command["user_id"], command.get("user_name", "")),
        place=Place(Platform.SLACK.value, team, command["channel_id"]),
    )
    answer = await deps.service.ask(question)
    await respond(
        text=render.fallback_text(answer.text),
        blocks=render.answer_blocks(answer, shareable=True),
        response_type="ephemeral",
        replace_original=True,
    )


async def _kb(deps: Deps, command: dict[str, Any], respond: AsyncRespond, team: str) -> None:
    verb, _, rest = (command.get("text") or "").strip().partition(" ")
    rest = rest.strip()
    scopes = deps.service.scopes_at(Place(Platform.SLACK.value, team, command["channel_id"]))
    actor = await deps.admins.admin_aware_actor(command["user_id"], command.get("user_name", ""))
    if verb.lower() == "desk":
        reply = await kb_desk(deps, actor, rest, team, command["channel_id"], scopes[0])
    else:
        reply = await _run_kb(deps, actor, verb.lower(), rest, scopes)
    await respond(text=reply, response_type="ephemeral")


async def _run_kb(deps: Deps, actor: Actor, verb: str, rest: str, scopes: tuple[str, ...]) -> str:
    service = deps.service
    if verb == "add" and rest:
        url = _as_url(rest)
        if url:
            return render.ingest_text(await service.add_url(actor, url, scope=scopes[0]))
        return render.ingest_text(await service.add_text(actor, rest, title=_title(rest), scope=scopes[0]))
    if verb == "list":
        return render.document_list_text(await service.list_documents(actor, scopes), scopes)
    if verb == "remove" and rest.lstrip("#").isdigit():
        removed = await service.remove_document(actor, int(rest.lstrip("#")), scopes)
        return f"Removed document #{removed.id} *{render.escape(removed.title)}* ({removed.chunk_count} chunks)."
    if verb == "search" and rest:
        return render.search_text(rest, await service.search(actor, rest, scopes, SEARCH_HITS))
    if verb == "scope":
        return render.scope_text(scopes)
    if verb == "source":
        return await source_command(service, actor, rest, scope=scopes[0], as_url=_as_url)
    return render.KB_USAGE


def _as_url(text: str) -> str | None:
    linked = SLACK_LINK.match(text)
    if linked:
        return linked["url"]
    return text if URL.match(text) else None


def _title(text: str) -> str:
    first_line = text.strip().splitlines()[0]
    return first_line if len(first_line) <= TITLE_CHARS else first_line[: TITLE_CHARS - 1] + "…"
