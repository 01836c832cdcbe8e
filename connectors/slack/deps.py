"""What every Slack listener needs, built once by :func:`connectors.slack.app.build_app` and passed down."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.domain import Answer
from bot.settings import Settings
from connectors.slack.admins import AdminDirectory
from connectors.slack.tasks import Tasks

if TYPE_CHECKING:
    from bot.service import Lorebot

SHARE_CACHE_SIZE = 500
"""Private /ask answers kept for "Share to channel" (Slack sends no message body for ephemeral clicks)."""


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
