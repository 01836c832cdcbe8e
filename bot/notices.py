"""Admin notices: a platform-neutral :class:`Notice` (a new adapter serves, a scheduled source sync changed the
knowledge base) and its delivery to Slack and Discord incoming webhooks.

``ADMIN_WEBHOOKS`` lists ``slack=URL`` and ``discord=URL`` entries; each platform gets the notice in its own
webhook format (Slack ``text`` with a bold title, Discord ``content`` within its 2000-character limit). A webhook
that fails is logged and skipped: what the notice reports already happened, and a lost notice must not undo it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpx

from bot.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Notice:
    title: str
    lines: tuple[str, ...]

    def text(self) -> str:
        return "\n".join([self.title, *self.lines])


Notify = Callable[[Notice], Awaitable[None]]
"""Where notices go: a :class:`WebhookNotifier`, or any coroutine function taking a notice."""

log = logging.getLogger(__name__)

DISCORD_MAX_CHARS = 2000
TIMEOUT_S = 10.0


def slack_payload(notice: Notice) -> dict[str, str]:
    return {"text": "\n".join([f"*{notice.title}*", *notice.lines])}


def discord_payload(notice: Notice) -> dict[str, object]:
    text = "\n".join([f"**{notice.title}**", *notice.lines])
    cut = text if len(text) <= DISCORD_MAX_CHARS else text[: DISCORD_MAX_CHARS - 1] + "…"
    return {"content": cut, "allowed_mentions": {"parse": []}}


RENDERERS = {"slack": slack_payload, "discord": discord_payload}


class WebhookNotifier:
    """Posts each notice to every configured webhook; build it with :func:`webhook_notifier`."""

    def __init__(self, hooks: Sequence[tuple[str, str]]) -> None:
        self.hooks = list(hooks)

    async def __call__(self, notice: Notice) -> None:
        async with httpx.AsyncClient(timeout=TIMEOUT_S) as client:
            for platform, url in self.hooks:
                try:
                    response = await client.post(url, json=RENDERERS[platform](notice))
                    response.raise_for_status()
                except httpx.HTTPError as e:
                    log.warning("admin notice to the %s webhook failed: %s", platform, type(e).__name__)


def webhook_notifier(entries: Sequence[str]) -> WebhookNotifier | None:
    """The notifier for ``ADMIN_WEBHOOKS`` entries, None when there are none; :class:`ConfigError` on a bad one."""
    hooks = []
    for entry in entries:
        platform, sep, url = entry.partition("=")
        if not sep or platform not in RENDERERS or not url.startswith(("https://", "http://")):
            raise ConfigError(f"ADMIN_WEBHOOKS entries look like slack=https://… or discord=https://…, not {entry!r}")
        hooks.append((platform, url))
    return WebhookNotifier(hooks) if hooks else None
