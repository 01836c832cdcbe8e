"""Which connectors ``lorebot serve`` can run. Each imports its platform SDK only when chosen.

Every connector package exposes the same ``serve(service, inflight, ...)`` (see :mod:`bot.ops.lifecycle`), given
its own settings (``SLACK_*``, ``DISCORD_*``) read here, at the entry point.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # types only: every `lorebot` command imports this module, and most never serve
    from bot.inflight import InFlight
    from bot.ops.lifecycle import Connector
    from bot.service import Lorebot


async def _slack(service: Lorebot, inflight: InFlight) -> None:
    from connectors.slack.runner import serve
    from connectors.slack.settings import SlackSettings

    await serve(service, inflight, SlackSettings())


async def _discord(service: Lorebot, inflight: InFlight) -> None:
    from connectors.discord.runner import serve
    from connectors.discord.settings import DiscordSettings

    await serve(service, inflight, DiscordSettings())


async def _local(service: Lorebot, inflight: InFlight) -> None:
    from connectors.local.api import serve

    await serve(service, inflight)


CONNECTORS: dict[str, Connector] = {"slack": _slack, "discord": _discord, "local": _local}
