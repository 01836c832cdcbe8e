"""The deployment files, checked without Docker: compose services, start order, healthchecks, variables
against the settings model, Dockerfile rules, pinned dependencies, and the entry point script (run for real
with a fake ``lorebot`` on PATH)."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

from bot.ops.lifecycle import CONNECTOR_CLOSE_TIMEOUT_S
from bot.settings import Settings
from connectors.discord.settings import DiscordSettings
from connectors.slack.settings import SlackSettings

ROOT = Path(__file__).resolve().parents[1]
BOTS = ("slack", "discord")
ALWAYS_ON = {"postgres", "migrate", "slack", "discord"}
COMPOSE_ONLY_MARKER = "compose-only variables"
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")
ENV_LINE = re.compile(r"^#?\s?([A-Z][A-Z0-9_]*)=(.*)$")
SETTINGS_CLASSES = (Settings, SlackSettings, DiscordSettings)
SETTING_NAMES = {
    f"{cls.model_config.get('env_prefix', '')}{name}".upper() for cls in SETTINGS_CLASSES for name in cls.model_fields
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def env_example_sections() -> tuple[dict[str, str], dict[str, str]]:
    """(settings, compose-only variables) of .env.example as name → example value (commented or not)."""
    settings: dict[str, str] = {}
    compose_only: dict[str, str] = {}
    current = settings
    for line in (ROOT / ".env.example").read_text().splitlines():
        if COMPOSE_ONLY_MARKER in line:
            current = compose_only
        elif match := ENV_LINE.match(line):
            current[match.group(1)] = match.group(2)
    return settings, compose_only


def default_of(value: str) -> str:
    """``${X:-default}`` → ``default`` (what compose uses when the variable is unset)."""
    return re.sub(r"\$\{[A-Za-z0-9_]+:-([^}]*)\}", r"\1", value)


def depends_on(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return service.get("depends_on", {})


# --- compose ------------------------------------------------------------------------------------------------


def test_compose_defines_the_database_llm_migration_bots_and_optional_embeddings(services) -> None:
    assert {"postgres", "vllm", "migrate", "slack", "discord", "embeddings"} <= set(services)
    assert services["postgres"]["image"].startswith("pgvector/pgvector:") and "pg17" in services["postgres"]["image"]
    assert default_of(services["vllm"]["image"]).startswith("vllm/vllm-openai:v")
    assert any(v.endswith(":/var/lib/postgresql/data") for v in services["postgres"]["volumes"])
    assert services["migrate"]["command"] == ["migrate"]
    for bot in BOTS:
        assert services[bot]["command"] == ["serve", bot]
        assert services[bot]["restart"] == "unless-stopped"


def test_every_long_running_service_has_a_healthcheck_on_its_own_health_endpoint(services) -> None:
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "/v1/models" in " ".join(services["vllm"]["healthcheck"]["test"])
    assert "/health" in " ".join(services["embeddings"]["healthcheck"]["test"])
    for bot in (*BOTS, "local"):
        assert "/healthz" in " ".join(services[bot]["healthcheck"]["test"])
        assert services[bot]["environment"]["HEALTH_PORT"] == "8080"
    assert services["migrate"]["healthcheck"] == {"disable": True}


def test_start_order_is_postgres_then_migrate_then_bots_with_vllm_first_in_the_gpu_profile(services) -> None:
    assert depends_on(services["migrate"]) == {"postgres": {"condition": "service_healthy"}}
    for bot in BOTS:
        needs = depends_on(services[bot])
        assert needs["migrate"] == {"condition": "service_completed_successfully"}
        assert needs["vllm"]["condition"] == "service_healthy"
    order = list(TopologicalSorter({name: set(depends_on(s)) for name, s in services.items()}).static_order())
    for bot in BOTS:
        assert order.index("postgres") < order.index("migrate") < order.index(bot)
        assert order.index("vllm") < order.index(bot)


def test_a_cpu_only_host_runs_without_any_profiled_service(services) -> None:
    always_on = {name for name, s in services.items() if not s.get("profiles")}
    assert always_on == ALWAYS_ON
    assert services["vllm"]["profiles"] == ["gpu"]
    for name in always_on:
        for dependency, condition in depends_on(services[name]).items():
            assert dependency in always_on or condition.get("required") is False, (name, dependency)


def test_vllm_serves_the_promoted_sft_adapter_on_a_gpu(services) -> None:
    vllm = services["vllm"]
    command = vllm["command"]
    assert "--enable-lora" in command and "--lora-modules" not in command  # loaded at run time (issue 15)
    assert vllm["environment"]["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    assert any(re.fullmatch(r"--max-lora-rank=\$\{LORA_RANK:-\d+\}", arg) for arg in command)
    assert "--model=${VLLM_BASE_MODEL:-Qwen/Qwen3-4B-Instruct-2507}" in command
    assert "lorebot-data:/data:ro" in vllm["volumes"]
    assert services["lora-sync"]["command"] == ["sft", "promote"]
    assert default_of(services["slack"]["environment"]["LLM_MODEL"]) == "lorebot"
    assert default_of(services["slack"]["environment"]["LLM_BASE_URL"]) == "http://vllm:8000/v1"
    (device,) = vllm["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]


def test_adapter_rank_fits_the_rank_vllm_allows(services) -> None:
    config = ROOT / "bot/adapters/lorebot-gemma3-270m/adapter_config.json"
    if not config.is_file():
        pytest.skip("the SFT adapter is not in the tree yet")
    rank = yaml.safe_load(config.read_text())["r"]
    [allowed] = [int(m.group(1)) for a in services["vllm"]["command"] if (m := re.search(r"LORA_RANK:-(\d+)", a))]
    env_example = re.search(r"^# LORA_RANK=(\d+)$", (ROOT / ".env.example").read_text(), re.MULTILINE)
    assert rank <= allowed == int(env_example.group(1)), "raise the LORA_RANK default in compose and .env.example"


def test_every_image_is_pinned_to_a_version(services) -> None:
    for name, service in services.items():
        image = default_of(service["image"])
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest", (name, image)


def test_every_compose_variable_is_a_setting_or_a_documented_compose_variable(compose) -> None:
    _, compose_only = env_example_sections()
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(VARIABLE.findall(text))
    for service in compose["services"].values():
        used |= set(service.get("environment", {}))
    unknown = sorted(v for v in used if v not in SETTING_NAMES and v not in compose_only)
    assert not unknown, f"not a setting and not documented as compose-only in .env.example: {unknown}"
    assert not set(compose_only) & SETTING_NAMES


def test_env_example_documents_every_setting_with_a_valid_example(tmp_path: Path) -> None:
    documented, _ = env_example_sections()
    missing = sorted(SETTING_NAMES - set(documented))
    assert not missing, f"add these settings to .env.example: {missing}"
    assert not set(documented) - SETTING_NAMES, "stale names in the settings part of .env.example"
    every_example = tmp_path / "all.env"
    every_example.write_text("".join(f"{name}={value}\n" for name, value in documented.items()))
    for cls in SETTINGS_CLASSES:
        cls(_env_file=every_example)  # raises if any documented example does not parse


def test_env_example_as_copied_gives_valid_settings_with_secrets_unset() -> None:
    settings = Settings(_env_file=ROOT / ".env.example")
    slack = SlackSettings(_env_file=ROOT / ".env.example")
    discord = DiscordSettings(_env_file=ROOT / ".env.example")
    assert settings.database_url is None and slack.bot_token is None and discord.token is None


def test_bots_get_time_to_drain_before_docker_kills_them(services) -> None:
    for bot in BOTS:
        grace = float(default_of(services[bot]["environment"]["SHUTDOWN_GRACE_S"]))
        assert grace == Settings(_env_file=None).shutdown_grace_s
        assert float(services[bot]["stop_grace_period"].removesuffix("s")) > grace + CONNECTOR_CLOSE_TIMEOUT_S
        assert services[bot]["init"] is True


# --- Dockerfile and dependencies --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) pairs with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_dockerfile_uses_a_pinned_slim_python_base(dockerfile) -> None:
    args = dict(a.split("=", 1) for i, a in dockerfile if i == "ARG" and "=" in a)
    bases = [args.get(a.split()[0].strip("${}"), a.split()[0]) for i, a in dockerfile if i == "FROM"]
    assert bases and all(re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base) for base in bases), bases


def test_dockerfile_runs_as_a_non_root_user_with_healthcheck_and_exec_form_entrypoint(dockerfile) -> None:
    final_stage = dockerfile[max(i for i, (ins, _) in enumerate(dockerfile) if ins == "FROM") :]
    users = [a for i, a in final_stage if i == "USER"]
    assert users and users[-1] not in {"root", "0", "0:0"}
    assert any(i == "HEALTHCHECK" and "/healthz" in a for i, a in final_stage)
    (entrypoint,) = [a for i, a in final_stage if i == "ENTRYPOINT"]
    assert entrypoint.startswith("[")  # exec form: the script is PID 1's child, signals reach it
    assert any(i == "COPY" and "docker/entrypoint.sh" in a and entrypoint.strip('[]"') in a for i, a in final_stage)
    env = " ".join(a for i, a in final_stage if i == "ENV")
    assert "HF_HUB_OFFLINE=1" in env


def test_dockerfile_installs_pinned_dependencies_with_cpu_torch(dockerfile) -> None:
    installs = [a for i, a in dockerfile if i == "RUN" and "pip install" in a]
    assert any("--constraint constraints.txt" in a and "TORCH_INDEX_URL" in a for a in installs)
    assert any(i == "ARG" and a == "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" for i, a in dockerfile)


def test_constraints_pin_every_dependency_within_its_declared_range() -> None:
    pins = {}
    for line in (ROOT / "docker/constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.lower().replace("_", "-")] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for spec in project["dependencies"]:
        requirement = Requirement(spec)
        version = pins.get(requirement.name.lower().replace("_", "-"))
        assert version, f"{requirement.name} is not pinned in docker/constraints.txt"
        assert requirement.specifier.contains(version, prereleases=True), (spec, version)
    assert pins["torch"].endswith("+cpu")


def test_dockerignore_keeps_secrets_and_the_virtualenv_out_of_the_image() -> None:
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert {".env", ".venv", ".git"} <= set(ignored)
    assert not {"lorebot", "bot", "connectors", "migrations", "docker", "pyproject.toml"} & set(ignored)


# --- the entry point, run for real ------------------------------------------------------------------------

FAKE_LOREBOT = """#!/bin/sh
echo "pid=$$"
for arg in "$@"; do printf 'arg=%s\\n' "$arg"; done
if [ "${FAKE_WAIT:-}" = 1 ]; then
    trap 'echo got-TERM; exit 0' TERM
    echo ready
    sleep 30 &
    wait $!
    exit 3
fi
"""


@pytest.fixture
def entrypoint_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """An environment whose PATH starts with a fake ``lorebot`` that reports its pid and arguments."""
    fake = tmp_path / "bin" / "lorebot"
    fake.parent.mkdir()
    fake.write_text(FAKE_LOREBOT)
    fake.chmod(0o755)
    path = os.pathsep.join([str(fake.parent), str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    yield {"PATH": path, "HOME": str(tmp_path)}


def run_entrypoint(env: dict[str, str], *args: str, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(ROOT / "docker/entrypoint.sh"), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def stdout_lines(process: subprocess.Popen[str]) -> queue.Queue[str]:
    """The process's stdout lines, read by a thread so the test can wait for each with a timeout."""
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout
    threading.Thread(target=lambda: [lines.put(line.rstrip("\n")) for line in stdout], daemon=True).start()
    return lines


def test_entrypoint_is_valid_posix_shell() -> None:
    subprocess.run(["sh", "-n", str(ROOT / "docker/entrypoint.sh")], check=True)


def test_entrypoint_passes_arguments_to_lorebot_verbatim(entrypoint_env) -> None:
    args = ["serve", "slack", "two words", "$HOME", "*", "--flag=a;b", ""]
    process = run_entrypoint(entrypoint_env, *args)
    out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert [line.removeprefix("arg=") for line in out.splitlines()[1:]] == args


def test_entrypoint_execs_lorebot_so_sigterm_reaches_it(entrypoint_env) -> None:
    process = run_entrypoint({**entrypoint_env, "FAKE_WAIT": "1"}, "serve", "discord")
    lines = stdout_lines(process)
    assert lines.get(timeout=10) == f"pid={process.pid}"  # the same process: the shell was replaced
    while lines.get(timeout=10) != "ready":
        pass
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    assert lines.get(timeout=10) == "got-TERM"


def test_entrypoint_waits_for_the_database_then_starts(entrypoint_env, database_url: str) -> None:
    env = {**entrypoint_env, "DATABASE_URL": database_url, "LOREBOT_WAIT_FOR_DB_S": "10"}
    process = run_entrypoint(env, "migrate")
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "arg=migrate" in out


def test_entrypoint_gives_up_on_an_unreachable_database_without_starting_lorebot(entrypoint_env) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql://lorebot:secret-password@127.0.0.1:{port}/lorebot"
    env = {**entrypoint_env, "DATABASE_URL": url, "LOREBOT_WAIT_FOR_DB_S": "1"}
    process = run_entrypoint(env, "serve", "slack")
    out, err = process.communicate(timeout=30)
    assert process.returncode != 0
    assert "database is not reachable after 1 s" in err
    assert "secret-password" not in err
    assert out == ""
