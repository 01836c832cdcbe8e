"""Which adapter serves: promotion and rollback change the registry and the running model server together.

The bots request one model name (``LLM_MODEL``, e.g. ``lorebot``); promotion replaces the adapter behind that
name in the running server (vLLM or the embedded one) and answers change from the next question, without a
restart. A symlink (``<data_dir>/adapters/serving``) follows the serving adapter so a restarted server that is
pointed at it (``LOCAL_LLM_ADAPTER_PATH``, vLLM ``--lora-modules``) comes back with the same one.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg_pool import AsyncConnectionPool

from bot.notices import Notify
from bot.settings import Settings
from bot.sft.lora_runtime import LoraRuntime
from bot.sft.notice import serving_notice
from bot.storage import adapters as store
from bot.storage.adapters import AdapterRow

log = logging.getLogger(__name__)

SERVING_LINK = Path("adapters") / "serving"


@dataclass(frozen=True, slots=True)
class ServingTarget:
    """The running model server and the model name the bots request from it."""

    runtime: LoraRuntime
    name: str
    link: Path | None = None  # symlink kept pointing at the serving adapter's folder


@dataclass(frozen=True, slots=True)
class Change:
    """A change of the serving adapter: ``action`` is ``promoted`` or ``rolled_back``."""

    action: str
    previous: AdapterRow | None
    current: AdapterRow


def serving_target(settings: Settings) -> ServingTarget:
    """``LLM_BASE_URL`` (vLLM) when set, else the embedded local server on ``LOCAL_LLM_HOST:LOCAL_LLM_PORT``."""
    url = settings.llm_base_url or f"http://{settings.local_llm_host}:{settings.local_llm_port}/v1"
    runtime = LoraRuntime(url, api_key=settings.llm_api_key.get_secret_value())
    return ServingTarget(runtime, settings.llm_model, settings.data_dir / SERVING_LINK)


async def promote(
    pool: AsyncConnectionPool,
    name: str,
    actor: str,
    target: ServingTarget,
    *,
    detail: dict[str, Any] | None = None,
    notify: Notify | None = None,
) -> Change:
    """Serve adapter ``name``: loaded into the server first, recorded only if the server took it."""
    previous, current = await store.promote(pool, name, actor, _applier(target), detail or {})
    return await _changed(Change("promoted", previous, current), notify)


async def rollback(
    pool: AsyncConnectionPool, actor: str, target: ServingTarget, *, notify: Notify | None = None
) -> Change:
    """Serve the previously promoted adapter again (the same server call as a promotion)."""
    rolled_back, current = await store.rollback(pool, actor, _applier(target))
    return await _changed(Change("rolled_back", rolled_back, current), notify)


def _applier(target: ServingTarget) -> store.Apply:
    async def apply(adapter: AdapterRow) -> None:
        await target.runtime.replace(target.name, Path(adapter.path))
        if target.link is not None:
            _point(target.link, Path(adapter.path))

    return apply


def _point(link: Path, folder: Path) -> None:
    """Atomically re-point ``link`` at ``folder`` (a new symlink renamed over the old one)."""
    link.parent.mkdir(parents=True, exist_ok=True)
    fresh = link.with_name(link.name + ".new")
    fresh.unlink(missing_ok=True)
    fresh.symlink_to(folder.resolve(), target_is_directory=True)
    os.replace(fresh, link)


async def _changed(change: Change, notify: Notify | None) -> Change:
    log.info(
        "%s now serves (%s; before: %s)",
        change.current.name, change.action, change.previous.name if change.previous else "none",
    )  # fmt: skip
    if notify is not None and (change.previous is None or change.previous.name != change.current.name):
        await notify(serving_notice(change.action, change.previous, change.current))
    return change
