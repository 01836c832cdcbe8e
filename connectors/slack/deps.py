"""What every Slack listener needs, built once by :func:`connectors.slack.app.build_app` and passed down."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.domain import Answer
from bot.settings import Settings
from connectors.slack.admins import AdminDirectory

if TYPE_CHECKING:
    from bot.service import Lorebot

log = logging.getLogger(__name__)

SHARE_CACHE_SIZE = 500
"""Private /ask answers kept for "Share to channel" (Slack sends no message body for ephemeral clicks)."""


class Tasks:
    """The slow work started after an ack, kept so shutdown (and tests) can wait for it to finish."""

    def __init__(self) -> None:
        self._running: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(work, name=name)
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return task

    async def drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for running work, then cancel what is left."""
        if not self._running:
            return
        _, pending = await asyncio.wait(set(self._running), timeout=timeout)
        for task in pending:
            log.warning("cancelling unfinished %s after %.0f s", task.get_name(), timeout)
            task.cancel()


class AnswerCache:
    """A bounded map message id → private answer, for the "Share to channel" button."""

    def __init__(self, size: int = SHARE_CACHE_SIZE) -> None:
        self._size = size
        self._answers: OrderedDict[int, Answer] = OrderedDict()

    def put(self, answer: Answer) -> None:
        if answer.message_id is None:
            return
        self._answers[answer.message_id] = answer
        self._answers.move_to_end(answer.message_id)
        while len(self._answers) > self._size:
            self._answers.popitem(last=False)

    def get(self, message_id: int) -> Answer | None:
        return self._answers.get(message_id)


@dataclass
class Deps:
    settings: Settings
    service: Lorebot
    admins: AdminDirectory
    tasks: Tasks = field(default_factory=Tasks)
    private_answers: AnswerCache = field(default_factory=AnswerCache)
