"""Building the bolt :class:`AsyncApp` from settings and the core service: middleware, listeners, error handler."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.errors import ConfigError
from bot.failures import describe_failure
from bot.inflight import InFlight
from bot.settings import Settings
from connectors.slack import commands, desk, feedback, home, listeners
from connectors.slack.admins import AdminDirectory
from connectors.slack.client import web_client
from connectors.slack.deps import Deps
from connectors.slack.middleware import skip_noise
from connectors.slack.settings import SlackSettings

if TYPE_CHECKING:
    from bot.service import Lorebot

log = logging.getLogger(__name__)


def build_app(settings: Settings, slack: SlackSettings, service: Lorebot, inflight: InFlight) -> tuple[AsyncApp, Deps]:
    """The bolt app (Socket Mode or HTTP) and the dependencies its listeners share; their slow work is tracked by
    ``inflight``."""
    if slack.bot_token is None:
        raise ConfigError("SLACK_BOT_TOKEN is required for the Slack bot")
    if slack.mode == "http" and slack.signing_secret is None:
        raise ConfigError("SLACK_SIGNING_SECRET is required when SLACK_MODE=http")
    client = web_client(slack.bot_token.get_secret_value(), slack.api_url)
    signing_secret = slack.signing_secret.get_secret_value() if slack.signing_secret else ""
    app = AsyncApp(
        client=client,
        signing_secret=signing_secret,
        request_verification_enabled=slack.mode == "http",
        logger=logging.getLogger("connectors.slack.bolt"),
        name="lorebot",
    )
    admins = AdminDirectory(client, slack)
    deps = Deps(settings=settings, slack=slack, service=service, admins=admins, inflight=inflight)
    app.use(skip_noise(slack))
    listeners.register(app, deps)
    commands.register(app, deps)
    feedback.register(app, deps)
    desk.register(app, deps)
    home.register(app, deps)
    app.error(_error_handler)
    return app, deps


async def _error_handler(error: Exception, body: dict[str, Any], client: AsyncWebClient) -> BoltResponse | None:
    """The last resort for failures outside a listener's own try/except: an apology where the request came from."""
    failure = describe_failure(error)
    event = body.get("event") or {}
    channel = event.get("channel") or (body.get("channel") or {}).get("id") or body.get("channel_id")
    try:
        if body.get("response_url"):
            await AsyncWebhookClient(body["response_url"]).send(text=failure.user_message, response_type="ephemeral")
        elif channel:
            thread = event.get("thread_ts") or event.get("ts")
            await client.chat_postMessage(channel=channel, thread_ts=thread, text=failure.user_message)
    except Exception:  # the apology itself failed (Slack down?); the error id is already logged
        log.exception("could not tell the user about error %s", failure.error_id)
    return None
