"""Which knowledge scopes a place may answer from.

``SCOPE_MAP`` keys are ``platform``, ``platform:workspace`` or ``platform:workspace:channel``; the most specific
key wins, so a channel can narrow its workspace's scopes. Places with no entry use ``DEFAULT_SCOPE``. A guild
or workspace never falls back to another one's entry.
"""

from __future__ import annotations

from bot.domain import Place
from bot.settings import Settings


def resolve_scopes(settings: Settings, place: Place) -> tuple[str, ...]:
    platform, workspace = place.platform, place.workspace
    candidates = [f"{platform}:{workspace}:{place.channel}", f"{platform}:{workspace}", platform]
    for key in candidates:
        scopes = settings.scope_map.get(key)
        if scopes:
            return tuple(scopes)
    return (settings.default_scope,)
