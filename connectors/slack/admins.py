"""Who is a knowledge-base admin on Slack: listed user ids, members of listed user groups, optionally workspace
admins. The core enforces the check (and audits it); this only fills in :attr:`Actor.is_admin`.
"""

from __future__ import annotations

import logging

from cachetools import TTLCache
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain import Actor, Platform
from connectors.slack.settings import SlackSettings

log = logging.getLogger(__name__)

MEMBERSHIP_TTL_S = 300.0
"""How long user-group members and workspace-admin flags are cached (Slack rate-limits both lookups)."""
WORKSPACE_ADMIN_CACHE_SIZE = 10_000
GROUP_MEMBERS = "members"


class AdminDirectory:
    def __init__(self, client: AsyncWebClient, settings: SlackSettings) -> None:
        self._client = client
        self._settings = settings
        self._group_members: TTLCache[str, frozenset[str]] = TTLCache(maxsize=1, ttl=MEMBERSHIP_TTL_S)
        self._workspace_admin: TTLCache[str, bool] = TTLCache(maxsize=WORKSPACE_ADMIN_CACHE_SIZE, ttl=MEMBERSHIP_TTL_S)

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
        if user_id in self._settings.admin_user_ids:
            return True
        if self._settings.admin_usergroup_ids and user_id in await self._usergroup_members():
            return True
        return self._settings.workspace_admins_are_admins and await self._is_workspace_admin(user_id)

    async def _usergroup_members(self) -> frozenset[str]:
        cached = self._group_members.get(GROUP_MEMBERS)
        if cached is not None:
            return cached
        members: set[str] = set()
        for group in self._settings.admin_usergroup_ids:
            try:
                response = await self._client.usergroups_users_list(usergroup=group)
            except SlackApiError as e:
                log.warning("cannot list admin user group %s: %s", group, e.response.get("error"))
                continue
            members.update(response.get("users") or [])
        self._group_members[GROUP_MEMBERS] = frozenset(members)
        return self._group_members[GROUP_MEMBERS]

    async def _is_workspace_admin(self, user_id: str) -> bool:
        cached = self._workspace_admin.get(user_id)
        if cached is not None:
            return cached
        try:
            response = await self._client.users_info(user=user_id)
        except SlackApiError as e:
            log.warning("cannot look up user %s: %s", user_id, e.response.get("error"))
            return False
        user = response.get("user") or {}
        admin = bool(user.get("is_admin") or user.get("is_owner"))
        self._workspace_admin[user_id] = admin
        return admin
