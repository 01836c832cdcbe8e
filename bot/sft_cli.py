"""``lorebot sft dataset|train|eval|export|cycle|status|promote|rollback``: arguments → config file → one core
call each.

Imports nothing heavy at module level: the `lorebot` command (:mod:`lorebot.cli`) mounts this app on every start.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from bot.cli import load_settings
from bot.errors import LorebotError
from bot.local_llm.launcher import SHIPPED_ADAPTER
from bot.settings import Settings
from bot.sft.errors import SFTError

sft_app = typer.Typer(no_args_is_help=True, help="Build SFT datasets, train, evaluate and export LoRA adapters.")

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="SFT config file (TOML)", exists=True)]
T = TypeVar("T")


def _fail(error: LorebotError) -> typer.Exit:
    typer.secho(f"error: {error}", fg="red", err=True)
    return typer.Exit(1)


@sft_app.command()
def dataset(
    config: ConfigOption = None,
    output_dir: Annotated[Path | None, typer.Option(help="Overrides the config's dataset.output_dir")] = None,
    feedback: Annotated[bool | None, typer.Option(help="Include 👍-rated answers from the database")] = None,
) -> None:
    """Build train/eval JSONL (OpenAI messages), the held-out RAG questions and the dataset card.

    With ``rag_passages = "retrieved"`` (the default) the QA paragraphs are ingested into a throwaway embedded
    knowledge base and every example shows the passages Lorebot's retriever returns, as serving does.
    """
    from bot.local_llm.modeling import load_tokenizer
    from bot.sft.config import load_config
    from bot.sft.dataset import build_dataset, split_articles
    from bot.sft.feedback import load_feedback_examples

    settings = load_settings()
    try:
        cfg = load_config(config).dataset
        cfg = dataclasses.replace(
            cfg, output_dir=output_dir or cfg.output_dir, feedback=cfg.feedback if feedback is None else feedback
        )
        extra = asyncio.run(load_feedback_examples(settings, limit=cfg.feedback_limit)) if cfg.feedback else []
        rag = None
        if cfg.rag_passages == "retrieved":
            from bot.sft.realloop import loop_service, retrieved_rag, throwaway_settings

            async def build_rag(loop_settings: Settings) -> dict:
                async with loop_service(loop_settings) as service:
                    return await retrieved_rag(cfg, service, split_articles(cfg))

            with throwaway_settings(settings) as loop_settings:
                rag = asyncio.run(build_rag(loop_settings))
        tokenizer = load_tokenizer(cfg.tokenizer) if cfg.tokenizer else None
        result = build_dataset(cfg, rag=rag, extra=extra, tokenizer=tokenizer)
    except LorebotError as e:
        raise _fail(e) from e
    typer.echo(f"{len(result.train)} train / {len(result.eval)} eval examples in {result.output_dir}")


@sft_app.command()
def train(
    config: ConfigOption = None,
    resume: Annotated[bool, typer.Option(help="Continue from the latest checkpoint in output_dir")] = True,
) -> None:
    """LoRA fine-tuning with TRL on the built dataset; loss on assistant tokens only."""
    from bot.sft.config import load_config
    from bot.sft.train import train as run_training

    load_settings()
    try:
        adapter = run_training(load_config(config).train, resume=resume)
    except LorebotError as e:
        raise _fail(e) from e
    typer.echo(f"adapter: {adapter}")


@sft_app.command("eval")
def evaluate(
    config: ConfigOption = None,
    target: Annotated[
        list[str] | None, typer.Option(help="MODEL=BASE_URL of an OpenAI-compatible endpoint; repeat to compare")
    ] = None,
    local: Annotated[bool, typer.Option(help="Start the local model twice: base and base + --adapter")] = False,
    stored: Annotated[
        bool, typer.Option(help="Answer over the passages stored in eval_qa.jsonl (fast; NOT the real RAG loop)")
    ] = False,
    in_process: Annotated[
        bool, typer.Option(help="Stored passages, base vs --adapter with batched generate in this process (no HTTP)")
    ] = False,
    adapter: Annotated[Path, typer.Option(help="Adapter for --local / --in-process")] = SHIPPED_ADAPTER,
    model_path: Annotated[Path | None, typer.Option(help="Base model for --local (default Gemma 3 270M)")] = None,
    batch_size: Annotated[int, typer.Option(help="Batch size for --in-process")] = 8,
    output_dir: Annotated[Path | None, typer.Option(help="Write eval.md, eval.json and the answers here")] = None,
    limit: Annotated[int | None, typer.Option(help="Questions to ask (overrides the config's eval.limit)")] = None,
    follow_up: Annotated[
        bool | None, typer.Option(help="Ask each question after another one in its conversation (eval.follow_up)")
    ] = None,
    refer_back: Annotated[
        bool | None,
        typer.Option(help="Follow-ups refer back: 'it' for a name the earlier question used (eval.refer_back)"),
    ] = None,
) -> None:
    """Answer held-out questions with each model and print the side-by-side table, per language.

    By default this is the real RAG loop: held-out paragraphs are ingested into a throwaway embedded knowledge
    base and every question goes through Lorebot's service (retrieval, relevance gate, prompt, citations).
    """
    from bot.sft.config import GEMMA3_270M, load_config
    from bot.sft.evaluate import evaluate as run_stored
    from bot.sft.evaluate import evaluate_in_process, evaluate_loop, local_targets, table
    from bot.sft.realloop import throwaway_settings

    settings = load_settings()
    try:
        loaded = load_config(config)
        cfg = dataclasses.replace(
            loaded.eval,
            limit=loaded.eval.limit if limit is None else limit,
            follow_up=loaded.eval.follow_up if follow_up is None else follow_up,
            refer_back=loaded.eval.refer_back if refer_back is None else refer_back,
        )
        if in_process:
            base = str(model_path) if model_path else GEMMA3_270M
            results = evaluate_in_process(base, adapter, cfg, batch_size=batch_size, output_dir=output_dir)
            typer.echo(table(results))
            return
        stored = stored or cfg.mode == "stored"
        with contextlib.ExitStack() as stack:
            targets = [_target(spec) for spec in target or []]
            if local:
                targets += stack.enter_context(local_targets(settings, model_path=model_path, adapter_path=adapter))
            if not targets:
                raise typer.BadParameter("give --target MODEL=BASE_URL (repeatable) and/or --local")
            if stored:
                results = asyncio.run(run_stored(settings, targets, cfg, output_dir=output_dir))
            else:
                loop_settings = stack.enter_context(throwaway_settings(settings))
                results = asyncio.run(evaluate_loop(loop_settings, targets, cfg, loaded.dataset, output_dir=output_dir))
    except LorebotError as e:
        raise _fail(e) from e
    typer.echo(table(results))


def _target(spec: str) -> object:
    from bot.sft.evaluate import Target

    model, sep, url = spec.partition("=")
    if not sep or not model or not url.startswith(("http://", "https://")):
        raise typer.BadParameter(f"--target must look like MODEL=http://host:port/v1, got {spec!r}")
    return Target(model, url, model)


@sft_app.command()
def export(
    adapter: Annotated[Path, typer.Argument(help="PEFT adapter folder", exists=True, file_okay=False)],
    output_dir: Annotated[Path, typer.Option(help="Where to write the serving files")] = Path("runs/sft-export"),
    name: Annotated[str, typer.Option(help="LoRA module name clients request as the model")] = "lorebot",
    base_model: Annotated[str, typer.Option(help="Base model the adapter was trained on")] = "gemma3-270m",
    llama_cpp: Annotated[Path | None, typer.Option(help="llama.cpp source folder with convert_lora_to_gguf.py")] = None,
    half: Annotated[bool, typer.Option(help="Store the adapter weights as float16 (half the size)")] = False,
) -> None:
    """Copy the adapter and write the vLLM command line; convert to a GGUF LoRA when llama.cpp is given."""
    from bot.sft.export import export as run_export

    load_settings()
    try:
        result = run_export(adapter, output_dir, name=name, base_model=base_model, llama_cpp_dir=llama_cpp, half=half)
    except LorebotError as e:
        raise _fail(e) from e
    typer.echo(result.vllm_command)
    typer.echo(f"GGUF LoRA: {result.gguf_lora or 'not written (no llama.cpp converter); see serving.md'}")


# --- the closed loop: registry, promotion, cycle ------------------------------------------------------------


def _actor() -> str:
    """Who runs the command, for the registry's audit trail."""
    import getpass

    return f"cli:{getpass.getuser()}"


def _notify(settings: Settings) -> Any:
    """The admin-notice hook from ``ADMIN_WEBHOOKS`` (None when unset)."""
    from bot.notices import webhook_notifier

    return webhook_notifier(settings.admin_webhooks)


async def _with_pool(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    from bot.storage.pool import open_pool, resolve_database_url

    pool = await open_pool(resolve_database_url(settings), settings)
    try:
        return await work(pool)
    finally:
        await pool.close()


@sft_app.command()
def status(json_output: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False) -> None:
    """The adapter registry: every adapter, its status, data, scores, and who promoted it when."""
    from bot.storage import adapters as store

    settings = load_settings()
    try:
        rows = asyncio.run(_with_pool(settings, store.adapters))
    except LorebotError as e:
        raise _fail(e) from e
    if json_output:
        typer.echo(json.dumps([_adapter_json(row) for row in rows], indent=2, ensure_ascii=False))
        return
    _print_registry(rows)


def _adapter_json(row: Any) -> dict[str, Any]:
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in dataclasses.asdict(row).items()}


def _print_registry(rows: list[Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    from bot.sft.gate import PRIMARY_SUITE

    table = Table(title="SFT adapters")
    for column in ("name", "status", "base model", "parent", "examples", "dataset", "F1 current → candidate",
                   "created", "promoted"):  # fmt: skip
        table.add_column(column)
    colours = {"serving": "green", "rejected": "red", "retired": "dim", "candidate": "yellow"}
    for row in rows:
        f1 = [row.metrics.get(who, {}).get(PRIMARY_SUITE, {}).get("all", {}).get("token_f1") for who in
              ("current", "candidate")]  # fmt: skip
        scores = f"{f1[0]:.1f} → {f1[1]:.1f}" if None not in f1 else ""
        promoted = f"{row.promoted_by} {row.promoted_at:%Y-%m-%d %H:%M}" if row.promoted_at else ""
        table.add_row(
            row.name, f"[{colours.get(row.status, 'white')}]{row.status}", row.base_model, row.parent or "",
            str(row.dataset_size), row.dataset_hash[:12], scores, f"{row.created_at:%Y-%m-%d %H:%M}", promoted,
        )  # fmt: skip
    Console().print(table if rows else "no adapters registered yet: run `lorebot sft cycle`")


@sft_app.command()
def register(
    adapter: Annotated[Path, typer.Argument(help="PEFT adapter folder", exists=True, file_okay=False)],
    name: Annotated[str, typer.Option(help="Registry name (letters, digits, '.', '_', '-')")],
    base_model: Annotated[str, typer.Option(help="The base model it was trained on")],
) -> None:
    """Add an adapter trained outside a cycle (e.g. the first one) to the registry as a candidate."""
    from bot.storage import adapters as store

    settings = load_settings()
    try:
        if not (adapter / "adapter_config.json").is_file():
            raise SFTError(f"{adapter} is not a PEFT adapter folder (no adapter_config.json)")
        added = asyncio.run(
            _with_pool(
                settings,
                lambda pool: store.register(
                    pool, name=name, base_model=base_model, path=str(adapter.resolve()), parent=None,
                    dataset_hash="", dataset_size=0, train_config={}, actor=_actor(),
                ),
            )
        )  # fmt: skip
    except LorebotError as e:
        raise _fail(e) from e
    typer.echo(f"registered {name}" if added else f"{name} is already registered (nothing changed)")


@sft_app.command()
def promote(
    name: Annotated[
        str | None, typer.Argument(help="Adapter name from `lorebot sft status`; none: the serving one")
    ] = None,
) -> None:
    """Serve adapter NAME from the next question on: the running model server loads it, then the registry records
    who promoted it and when. Bypasses the gate (to override a decision). Without NAME, loads the serving adapter
    again (a restarted vLLM forgets runtime adapters)."""
    from bot.sft.registry import promote as run_promote
    from bot.sft.registry import serving_target
    from bot.storage import adapters as store

    settings = load_settings()

    async def work(pool: Any) -> Any:
        chosen = name
        if chosen is None:
            serving = await store.serving(pool)
            if serving is None:
                return None
            chosen = serving.name
        return await run_promote(pool, chosen, _actor(), serving_target(settings), notify=_notify(settings))

    try:
        change = asyncio.run(_with_pool(settings, work))
    except LorebotError as e:
        raise _fail(e) from e
    if change is None:
        typer.echo("no adapter is serving yet: nothing to load (`lorebot sft register` + `lorebot sft promote NAME`)")
        return
    before = change.previous.name if change.previous else "the base model"
    typer.echo(f"{change.current.name} serves (before: {before})")


@sft_app.command()
def rollback() -> None:
    """Serve the previously promoted adapter again; the current one is marked rejected."""
    from bot.sft.registry import rollback as run_rollback
    from bot.sft.registry import serving_target

    settings = load_settings()
    try:
        change = asyncio.run(
            _with_pool(
                settings, lambda pool: run_rollback(pool, _actor(), serving_target(settings), notify=_notify(settings))
            )
        )
    except LorebotError as e:
        raise _fail(e) from e
    typer.echo(f"rolled back from {change.previous.name} to {change.current.name}")


@sft_app.command()
def cycle(
    config: ConfigOption = None,
    candidate: Annotated[
        Path | None,
        typer.Option(
            help="Gate this adapter (trained elsewhere) instead of training one", exists=True, file_okay=False
        ),
    ] = None,
    start_server: Annotated[
        bool, typer.Option(help="Evaluate on a fresh embedded local server instead of the serving one")
    ] = False,
) -> None:
    """One turn of the loop: new 👍 answers → dataset → training → evaluation against the serving adapter (real
    RAG loop + past 👍 questions) → promotion only through the gate. Resumes an interrupted cycle; does nothing
    when there is nothing new."""
    from bot.sft.config import load_config
    from bot.sft.cycle import CycleRun, run_cycle
    from bot.sft.realloop import throwaway_settings
    from bot.sft.registry import serving_target

    settings = load_settings()
    try:
        loaded = load_config(config)
        serve = serving_target(settings)

        async def work(pool: Any) -> Any:
            with contextlib.ExitStack() as stack:
                evaluate_on = await _evaluation_server(stack, settings, loaded, pool) if start_server else serve
                loop_settings = stack.enter_context(throwaway_settings(settings))
                run = CycleRun(
                    settings, pool, loaded, loop_settings, evaluate_on, serve, _actor(), notify=_notify(settings)
                )
                return await run_cycle(run, offered=candidate)

        outcome = asyncio.run(_with_pool(settings, work))
    except LorebotError as e:
        raise _fail(e) from e
    if outcome.decision is not None:
        from bot.sft.gate import table as decision_table

        typer.echo(decision_table(outcome.decision))
    if outcome.timings:
        typer.echo("seconds per stage: " + ", ".join(f"{k} {v:g}" for k, v in outcome.timings.items()))
    typer.echo(f"{outcome.state}: {outcome.message}")


async def _evaluation_server(stack: contextlib.ExitStack, settings: Settings, loaded: Any, pool: Any) -> Any:
    """The embedded server on a free port with the config's base model and the serving adapter."""
    from bot.local_llm.launcher import start_local_llm
    from bot.sft.config import GEMMA3_270M
    from bot.sft.lora_runtime import LoraRuntime
    from bot.sft.registry import ServingTarget
    from bot.storage import adapters as store

    serving = await store.serving(pool)
    base = loaded.train.base_model
    local = stack.enter_context(
        await asyncio.to_thread(
            start_local_llm,
            settings.model_copy(update={"local_llm_use_adapter": serving is not None}),
            model_path=None if base == GEMMA3_270M else Path(base),
            adapter_path=Path(serving.path) if serving else None,
            port=0,
        )
    )
    return ServingTarget(LoraRuntime(local.base_url), local.model_name)
