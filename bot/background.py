"""Periodic jobs of a long-lived process (``lorebot serve``): run now and every N seconds beside the serving."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from bot.errors import LorebotError

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def repeating(job: Callable[[], Awaitable[object]], *, every_s: float, name: str) -> AsyncIterator[None]:
    """Run ``job`` now and every ``every_s`` seconds while the block runs; cancelled and awaited on exit.

    A :class:`~bot.errors.LorebotError` is logged and the next run tries again: the database may be back by then,
    and serving goes on meanwhile.
    """

    async def loop() -> None:
        while True:
            try:
                await job()
            except LorebotError as e:
                log.warning("%s failed: %s", name, e)
            await asyncio.sleep(every_s)

    task = asyncio.create_task(loop(), name=name)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
