"""The requests a process is answering, so a restart lets them finish instead of dropping them.

Every connector registers its work here: a block with ``async with inflight.track():`` or a background task with
:meth:`InFlight.run`. The process's entry point stops accepting on SIGTERM, waits (:meth:`InFlight.drain`) and only
then stops the connector. Nothing here knows about platforms or the service, so every layer may use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

from bot.errors import ShuttingDown

log = logging.getLogger(__name__)

T = TypeVar("T")
RESTARTING = "the bot is restarting, please ask again in a moment"


class InFlight:
    """Counts requests being answered, refuses new ones once shutdown begins, and waits for the rest."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def count(self) -> int:
        return self._count

    @property
    def accepting(self) -> bool:
        return not self._stopping.is_set()

    def stop_accepting(self) -> None:
        self._stopping.set()

    async def wait_stopping(self) -> None:
        """Return once shutdown begins: connectors holding a subscription (Slack Socket Mode) drop it here, so
        new requests go to another replica while this one finishes its own."""
        await self._stopping.wait()

    @contextlib.asynccontextmanager
    async def track(self) -> AsyncIterator[None]:
        """Hold the process open while the block runs; raises :class:`ShuttingDown` once draining started."""
        self._enter()
        try:
            yield
        finally:
            self._leave()

    def run(self, work: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
        """Run ``work`` as a task counted from this call until it ends (a drain that starts meanwhile waits for
        it); raises :class:`ShuttingDown`, without starting ``work``, once draining started."""
        try:
            self._enter()
        except ShuttingDown:
            work.close()
            raise
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._done)
        return task

    async def wait_idle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s until nothing is in flight; False if something still is."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def drain(self, timeout: float) -> bool:
        """Stop accepting and wait up to ``timeout`` s for the requests in flight; False if some remain."""
        self.stop_accepting()
        return await self.wait_idle(timeout)

    def _enter(self) -> None:
        if not self.accepting:
            raise ShuttingDown(RESTARTING)
        self._count += 1
        self._idle.clear()

    def _leave(self) -> None:
        self._count -= 1
        if self._count == 0:
            self._idle.set()

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._leave()
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", task.get_name(), exc_info=task.exception())
