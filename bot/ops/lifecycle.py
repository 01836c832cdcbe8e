"""Running one connector as a service process, and stopping it without dropping answers.

:func:`run_service` starts the service, the health server and the connector, then waits for SIGTERM/SIGINT.
Shutdown goes: stop taking new requests (``/healthz`` turns 503, :meth:`InFlight.track` refuses) → wait up to
``shutdown_grace_s`` for the answers in flight → cancel the connector (it closes its clients in ``finally``) →
close the health server, the pool and the embedded LLM. Keep ``shutdown_grace_s`` + ``CONNECTOR_CLOSE_TIMEOUT_S``
below the orchestrator's kill timeout (compose ``stop_grace_period``).

While serving, event claims older than a week are pruned every ``EVENT_PRUNE_INTERVAL_S``: without that,
``processed_events`` grows by a row per answered message, forever.

A connector is ``async def serve(service, inflight) -> None`` that runs until cancelled. It registers each request
with :class:`~bot.inflight.InFlight` (so the drain above waits for it), or finishes its own work when cancelled —
it then gets what is left of the grace period. Which connectors exist is the application's business
(:mod:`lorebot.connectors`): the core never imports them.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from datetime import timedelta

from psycopg_pool import AsyncConnectionPool

from bot.background import repeating
from bot.inflight import InFlight
from bot.notices import webhook_notifier
from bot.ops.health import HealthServer
from bot.ops.metrics import Metrics
from bot.runtime import llm_endpoint
from bot.service import Lorebot
from bot.settings import Settings
from bot.sources.scheduler import scheduling_sources
from bot.storage import events

log = logging.getLogger(__name__)

Connector = Callable[[Lorebot, InFlight], Awaitable[None]]
CONNECTOR_CLOSE_TIMEOUT_S = 5.0
"""How long a cancelled connector may take, past the grace period, to close its clients before the process exits."""
EVENT_PRUNE_INTERVAL_S = 3600.0


async def run_service(settings: Settings, connector: Connector) -> None:
    """Serve ``connector`` until SIGTERM/SIGINT, then shut down gracefully. Re-raises the connector's crash."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _on_signal, signum, stop)
    try:
        async with AsyncExitStack() as stack:
            settings = await stack.enter_async_context(llm_endpoint(settings))
            metrics = Metrics()
            service = await Lorebot.start(settings, observer=metrics)
            stack.push_async_callback(service.close)
            await stack.enter_async_context(pruning_events(service.pool))
            await stack.enter_async_context(
                scheduling_sources(service.sources, notify=webhook_notifier(settings.admin_webhooks))
            )
            inflight = InFlight()
            if settings.health_port:
                health = HealthServer(settings, service.pool, metrics, draining=lambda: not inflight.accepting)
                await health.start()
                stack.push_async_callback(health.stop)
            await _serve_until_stopped(settings, connector(service, inflight), inflight, stop)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    log.info("stopped")


def pruning_events(
    pool: AsyncConnectionPool, *, every_s: float = EVENT_PRUNE_INTERVAL_S, max_age: timedelta = events.CLAIM_RETENTION
) -> AbstractAsyncContextManager[None]:
    """Forget event claims older than ``max_age`` now and every ``every_s`` s while the block runs."""

    async def prune() -> None:
        forgotten = await events.forget_older_than(pool, max_age)
        log.info("forgot %d event claims older than %s", forgotten, max_age)

    return repeating(prune, every_s=every_s, name="pruning processed events")


def _on_signal(signum: int, stop: asyncio.Event) -> None:
    if stop.is_set():
        log.info("%s again: still draining", signal.Signals(signum).name)
        return
    log.info("%s received: shutting down", signal.Signals(signum).name)
    stop.set()


async def _serve_until_stopped(
    settings: Settings, serving: Awaitable[None], inflight: InFlight, stop: asyncio.Event
) -> None:
    task = asyncio.ensure_future(serving)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if task.done():
        task.result()  # a crashed connector ends the process with its error (the restart policy restarts it)
        log.warning("connector stopped by itself")
        return
    deadline = asyncio.get_running_loop().time() + settings.shutdown_grace_s
    log.info("draining %d request(s) in flight for up to %.1f s", inflight.count, settings.shutdown_grace_s)
    if await inflight.drain(settings.shutdown_grace_s):
        log.info("all answers delivered")
    else:
        log.warning("grace period over: abandoning %d request(s) in flight", inflight.count)
    task.cancel()  # connectors that drain their own work when cancelled get the rest of the grace period
    remaining = max(0.0, deadline - asyncio.get_running_loop().time()) + CONNECTOR_CLOSE_TIMEOUT_S
    await asyncio.wait({task}, timeout=remaining)
    if not task.done():
        log.warning("connector did not close within the grace period")
    elif not task.cancelled() and task.exception() is not None:
        log.error("connector failed while closing", exc_info=task.exception())
