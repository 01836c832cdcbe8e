"""The ``lorebot`` command: the core's commands (:mod:`bot.cli`) and the two that run a connector.

``serve`` runs a bot process (:func:`bot.ops.lifecycle.run_service` with a connector from
:data:`lorebot.connectors.CONNECTORS`); ``chat`` runs the terminal conversation of the local connector.
"""

from __future__ import annotations

from enum import StrEnum

from bot.cli import ScopeOption, app, console, load_settings, operator, run_core, scopes_or_default
from bot.report_cli import report
from bot.sft_cli import sft_app
from bot.sources_cli import sources_app
from lorebot.connectors import CONNECTORS

ConnectorName = StrEnum("ConnectorName", {name: name for name in CONNECTORS})

__all__ = ["app"]

app.add_typer(sources_app, name="sources")
app.add_typer(sft_app, name="sft")
app.command("report")(report)


@app.command()
def serve(connector: ConnectorName) -> None:  # type: ignore[valid-type]
    """Run a bot until SIGTERM: slack, discord, or local (a small HTTP JSON API)."""
    from bot.ops.lifecycle import run_service

    settings = load_settings()
    run_core(run_service(settings, CONNECTORS[connector.value]))


@app.command()
def chat(scope: ScopeOption = None) -> None:
    """Talk to the knowledge base in the terminal (starts everything it needs on embedded defaults)."""
    from bot.runtime import running_service
    from bot.sample_kb import ensure_sample_knowledge
    from connectors.local.chat import run_chat

    settings = load_settings(interactive=True)

    async def run() -> None:
        async with running_service(settings) as service:
            added = await ensure_sample_knowledge(service, operator())
            if added:
                console.print(f"empty knowledge base: added {added} sample documents", style="dim")
            await run_chat(service, operator(), scopes_or_default(settings, scope), console)

    run_core(run())
