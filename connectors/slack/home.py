"""The App Home tab: the knowledge base's status for everyone; for admins also the last week's report (question
text is shown to admins only, see :meth:`bot.desk.service.Desk.report`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from connectors.slack import desk_render
from connectors.slack.deps import Deps

REPORT_SPAN = timedelta(days=7)


def register(app: AsyncApp, deps: Deps) -> None:
    @app.event("app_home_opened")
    async def home_opened(event: dict[str, Any], client: AsyncWebClient) -> None:
        if event.get("tab", "home") != "home":
            return
        user = event["user"]
        deps.tasks.spawn(publish_home(deps, client, user), name=f"home {user}", tell=_log_only)


async def publish_home(deps: Deps, client: AsyncWebClient, user: str) -> None:
    actor = await deps.admins.admin_aware_actor(user)
    report = await deps.service.desk.report(actor, since=REPORT_SPAN) if actor.is_admin else None
    status = await deps.service.desk.kb_status()
    await client.views_publish(user_id=user, view=desk_render.home_view(report, status))


async def _log_only(text: str) -> None:
    """The Home tab has no conversation to apologise in; the failure is already logged with its id."""
