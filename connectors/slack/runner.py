"""Running the Slack bot: Socket Mode (app token, no public URL) or HTTP Events API (signed requests).

:func:`serve` is the connector ``lorebot serve slack`` runs; :func:`start_slack` returns a handle for tests.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp

from bot.errors import ConfigError
from bot.inflight import InFlight
from bot.settings import Settings
from connectors.slack.app import build_app
from connectors.slack.deps import Deps
from connectors.slack.settings import SlackSettings

if TYPE_CHECKING:
    from bot.service import Lorebot

log = logging.getLogger(__name__)


class SlackRunner:
    """A started Slack bot: :meth:`disconnect` stops receiving, :meth:`stop` also waits for answers in flight."""

    def __init__(self, app: AsyncApp, deps: Deps) -> None:
        self.app = app
        self.deps = deps
        self.port: int | None = None
        self._socket: AsyncSocketModeHandler | None = None
        self._http: web.AppRunner | None = None

    async def start(self) -> None:
        slack = self.deps.slack
        if slack.mode == "socket":
            if slack.app_token is None:
                raise ConfigError("SLACK_APP_TOKEN is required when SLACK_MODE=socket")
            self._socket = AsyncSocketModeHandler(self.app, slack.app_token.get_secret_value())
            await self._socket.connect_async()
            log.info("slack bot connected in socket mode")
        else:
            self._http = web.AppRunner(self._http_app(slack.http_path))
            await self._http.setup()
            site = web.TCPSite(self._http, slack.http_host, slack.http_port)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            log.info("slack bot listening on port %d at %s", self.port, slack.http_path)

    def _http_app(self, path: str) -> web.Application:
        async def events(request: web.Request) -> web.Response:
            return await to_aiohttp_response(await self.app.async_dispatch(await to_bolt_request(request)))

        http_app = web.Application()
        http_app.router.add_post(path, events)
        return http_app

    async def disconnect(self) -> None:
        """Stop receiving events: Slack delivers them to another replica (or again after the restart)."""
        socket, http = self._socket, self._http
        self._socket = self._http = None
        if socket is not None:
            await socket.close_async()
        if http is not None:
            await http.cleanup()
        if socket or http:
            log.info("slack bot disconnected")

    async def stop(self) -> None:
        """Disconnect and wait (up to the grace period) for the answers in flight."""
        await self.disconnect()
        await self.deps.inflight.drain(self.deps.settings.shutdown_grace_s)
        log.info("slack bot stopped")


async def start_slack(settings: Settings, slack: SlackSettings, service: Lorebot, inflight: InFlight) -> SlackRunner:
    app, deps = build_app(settings, slack, service, inflight)
    runner = SlackRunner(app, deps)
    await runner.start()
    return runner


async def serve(service: Lorebot, inflight: InFlight, slack: SlackSettings) -> None:
    """Serve Slack until cancelled; once shutdown begins, stop receiving while the answers in flight finish."""
    runner = await start_slack(service.settings, slack, service, inflight)
    try:
        await inflight.wait_stopping()
        await runner.disconnect()
        await asyncio.Event().wait()  # the entry point drains ``inflight``, then cancels us
    finally:
        await runner.disconnect()
