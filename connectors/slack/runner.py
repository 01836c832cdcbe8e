"""Running the Slack bot: Socket Mode (app token, no public URL) or HTTP Events API (signed requests).

:func:`start_slack` returns a handle for tests and embedding; :func:`run_slack` runs until cancelled.
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
from bot.settings import Settings
from connectors.slack.app import build_app
from connectors.slack.deps import Deps

if TYPE_CHECKING:
    from bot.service import Lorebot

log = logging.getLogger(__name__)


class SlackRunner:
    """A started Slack bot; :meth:`stop` disconnects and waits (up to the grace period) for answers in flight."""

    def __init__(self, app: AsyncApp, deps: Deps) -> None:
        self.app = app
        self.deps = deps
        self.port: int | None = None
        self._socket: AsyncSocketModeHandler | None = None
        self._http: web.AppRunner | None = None

    async def start(self) -> None:
        settings = self.deps.settings
        if settings.slack_mode == "socket":
            if settings.slack_app_token is None:
                raise ConfigError("SLACK_APP_TOKEN is required when SLACK_MODE=socket")
            self._socket = AsyncSocketModeHandler(self.app, settings.slack_app_token.get_secret_value())
            await self._socket.connect_async()
            log.info("slack bot connected in socket mode")
        else:
            self._http = web.AppRunner(self._http_app(settings.slack_http_path))
            await self._http.setup()
            site = web.TCPSite(self._http, settings.slack_http_host, settings.slack_http_port)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            log.info("slack bot listening on port %d at %s", self.port, settings.slack_http_path)

    def _http_app(self, path: str) -> web.Application:
        async def events(request: web.Request) -> web.Response:
            return await to_aiohttp_response(await self.app.async_dispatch(await to_bolt_request(request)))

        http_app = web.Application()
        http_app.router.add_post(path, events)
        return http_app

    async def stop(self) -> None:
        if self._socket is not None:
            await self._socket.close_async()
        if self._http is not None:
            await self._http.cleanup()
        await self.deps.tasks.drain(self.deps.settings.shutdown_grace_s)
        log.info("slack bot stopped")


async def start_slack(settings: Settings, service: Lorebot) -> SlackRunner:
    app, deps = build_app(settings, service)
    runner = SlackRunner(app, deps)
    await runner.start()
    return runner


async def run_slack(settings: Settings, service: Lorebot) -> None:
    """Serve Slack until cancelled (SIGTERM in the entry point), then finish answers in flight."""
    runner = await start_slack(settings, service)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.stop()
