"""What every Slack listener needs, built once by :func:`connectors.slack.app.build_app` and passed down."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.inflight import InFlight
from bot.settings import Settings
from connectors.slack.admins import AdminDirectory
from connectors.slack.settings import SlackSettings
from connectors.slack.tasks import Tasks

if TYPE_CHECKING:
    from bot.service import Lorebot


@dataclass
class Deps:
    settings: Settings
    slack: SlackSettings
    service: Lorebot
    admins: AdminDirectory
    inflight: InFlight
    tasks: Tasks = field(init=False)

    def __post_init__(self) -> None:
        self.tasks = Tasks(self.inflight)
