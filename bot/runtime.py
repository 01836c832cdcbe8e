"""Starting and stopping everything a process needs: the LLM endpoint (embedded if none is configured) and the
:class:`~bot.service.Lorebot` service. Entry points (CLI, bots) use :func:`running_service`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from bot.settings import Settings

log = logging.getLogger(__name__)


@asynccontextmanager
async def llm_endpoint(settings: Settings) -> AsyncIterator[Settings]:
    """Yield settings whose ``llm_base_url`` points at a live endpoint, starting the local model if unset."""
    if settings.llm_base_url:
        yield settings
        return
    from bot.local_llm.launcher import start_local_llm

    log.info("LLM_BASE_URL is not set: starting the embedded local model")
    local = await asyncio.to_thread(start_local_llm, settings)
    try:
        yield local.settings_for(settings)
    finally:
        await asyncio.to_thread(local.stop)


@asynccontextmanager
async def running_service(settings: Settings, *, with_llm: bool = True, embeds: bool = True) -> AsyncIterator:
    """The started service (and local LLM when needed); everything is closed on exit. With ``embeds=False``
    the embedding model is only loaded if something embeds after all."""
    from bot.service import Lorebot

    async with AsyncExitStack() as stack:
        if with_llm:
            settings = await stack.enter_async_context(llm_endpoint(settings))
        service = await Lorebot.start(settings, load_model=embeds)
        stack.push_async_callback(service.close)
        yield service
