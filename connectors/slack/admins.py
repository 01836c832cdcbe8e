"""Who is a knowledge-base admin on Slack: listed user ids, members of listed user groups, optionally workspace
admins. The core enforces the check (and audits it); this only fills in :attr:`Actor.is_admin`.
"""

from __future__ import annotations

import logging
import time

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain import Actor, Platform
from bot.settings import Settings

log = logging.getLogger(__name__)

MEMBERSHIP_TTL_S = 300.0
"""How long user-group members and workspace-admin flags are cached (Slack rate-limits both lookups)."""


class AdminDirectory:
    def __init__(self, client: AsyncWebClient, settings: Settings) -> None:
        self._client = client
        self._settings = settings
        self._group_members: tuple[float, frozenset[str]] | None = None
        self._workspace_admin: dict[str, tuple[float, bool]] = {}

    def actor(self, user_id: str, display_name: str = "") -> Actor:
        """An actor for asking questions (no admin lookup needed)."""
        return Actor(platform=Platform.SLACK.value, user_id=user_id, display_name=display_name)

    async def admin_aware_actor(self, user_id: str, display_name: str = "") -> Actor:
        """An actor whose ``is_admin`` reflects settings, user groups and (optionally) workspace admin status."""
        return Actor(
            platform=Platform.SLACK.value,
            user_id=user_id,
            display_name=display_name,
            is_admin=await self.is_admin(user_id),
        )

    async def is_admin(self, user_id: str) -> bool:
        if user_id in self._settings.slack_admin_user_ids:
            return True
        if self._settings.slack_admin_usergroup_ids and user_id in await self._usergroup_members():
            return True
        return self._settings.slack_workspace_admins_are_admins and await self._is_workspace_admin(user_id)

    async def _usergroup_members(self) -> frozenset[str]:
        now = time.monotonic()
        if self._group_members and now - self._group_members[0] < MEMBERSHIP_TTL_S:
            return self._group_members[1]
        members: set[str] = set()
        for group in self._settings.slack_admin_usergroup_ids:
            try:
                response = await self._client.usergroups_users_list(usergroup=group)
            except SlackApiError as e:
                log.warning("cannot list admin user group %s: %s", group, e.response.get("error"))
                continue
            members.update(response.get("users") or [])
        self._group_members = (now, frozenset(members))
        return self._group_members[1]

    async def _is_workspace_admin(self, user_id: str) -> bool:
        now = time.monotonic()
        cached = self._workspace_admin.get(user_id)
        if cached and now - cached[0] < MEMBERSHIP_TTL_S:
            return cached[1]
        try:
            response = await self._client.users_info(user=user_id)
        except SlackApiError as e:
            log.warning("cannot look up user %s: %s", user_id, e.response.get("error"))
            return False
        user = response.get("user") or {}
        admin = bool(user.get("is_admin") or user.get("is_owner"))
        self._workspace_admin[user_id] = (now, admin)
        return admin
