"""API credentials of a source, named by an environment variable and read only when a sync needs them.

The one place besides :mod:`bot.settings` that reads the environment, on purpose: the variable is chosen per
source by an admin, so it cannot be a settings field, and its value is never stored, logged or shown. Only
``SOURCE_*`` names are accepted (:meth:`~bot.sources.model.SourceOptions.checked`), so no source can make Lorebot
send its own secrets to a server an admin picked.
"""

from __future__ import annotations

import base64
import os

from bot.sources.model import SourceError


def auth_headers(token_env: str) -> dict[str, str]:
    """``Authorization`` for the token in ``token_env``: ``user:token`` as Basic (Atlassian Cloud), anything else as
    Bearer (a personal access token); no header without a variable. Raises :class:`SourceError` when it is unset."""
    if not token_env:
        return {}
    token = os.environ.get(token_env, "").strip()
    if not token:
        raise SourceError(f"the environment variable {token_env} holding the source's token is not set")
    if ":" in token:
        return {"Authorization": "Basic " + base64.b64encode(token.encode()).decode("ascii")}
    return {"Authorization": f"Bearer {token}"}
