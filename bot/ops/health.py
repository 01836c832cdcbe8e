"""``GET /healthz`` (database and LLM reachable?) and ``GET /metrics`` (Prometheus) for a long-running process.

Load balancers and ``docker compose`` probe ``/healthz``; it turns 503 while the process drains on shutdown, so
traffic moves to other replicas before the process exits. Use it for readiness, not liveness: an LLM outage
makes every replica unready, and restarting them would not help.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from psycopg_pool import AsyncConnectionPool

from bot.llm_probe import probe_llm
from bot.ops.metrics import Metrics
from bot.settings import Settings

log = logging.getLogger(__name__)

OK = "ok"


class HealthServer:
    """Serves ``/healthz`` and ``/metrics`` on ``settings.health_host:health_port`` (port 0 picks a free one)."""

    def __init__(
        self,
        settings: Settings,
        pool: AsyncConnectionPool,
        metrics: Metrics,
        *,
        draining: Callable[[], bool] = lambda: False,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.metrics = metrics
        self.draining = draining
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.settings.health_host, self.settings.health_port).start()
        self.port = self._runner.addresses[0][1]
        log.info("health and metrics on http://%s:%d/healthz", self.settings.health_host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def check(self) -> dict[str, str]:
        """``{"db": ..., "llm": ...}``: each "ok" or a short failure class; checked concurrently."""
        db, llm = await asyncio.gather(self._guard(self._check_database()), self._guard(self._check_llm()))
        return {"db": db, "llm": llm}

    async def _guard(self, check: Awaitable[str]) -> str:
        """A check that hangs is a failed check: the probe must answer within its own timeout."""
        try:
            async with asyncio.timeout(self.settings.health_check_timeout_s):
                return await check
        except TimeoutError:
            return "timeout"

    async def _check_database(self) -> str:
        try:
            async with self.pool.connection(timeout=self.settings.health_check_timeout_s) as conn:
                await self.pool.check_connection(conn)
        except Exception as e:  # any failure means unhealthy; the class name says which kind
            log.warning("health: database check failed: %s", e)
            return f"error: {type(e).__name__}"
        return OK

    async def _check_llm(self) -> str:
        if not self.settings.llm_base_url:
            return "not configured"
        probe = await probe_llm(self.settings, timeout=self.settings.health_check_timeout_s)
        if probe.problem:
            log.warning("health: LLM %s: %s", probe.url, probe.detail)
            return probe.problem
        return OK

    async def _healthz(self, request: web.Request) -> web.Response:
        report: dict[str, str] = await self.check()
        healthy = all(value == OK for value in report.values())
        if self.draining():
            report["status"] = "draining"
            healthy = False
        return web.json_response(report, status=200 if healthy else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})
