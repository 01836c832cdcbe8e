"""The embedded local server's runtime adapter endpoints (vLLM's wire protocol): loopback only, bad input refused
with vLLM's errors and nothing changed, requests routed by model name, in-place replacement for the next request.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from starlette.testclient import TestClient

from bot.answer.prompt import build_messages
from bot.domain import Passage
from bot.local_llm.model import LocalModel, SamplingParams, load_local_model
from bot.local_llm.server import create_app

CONTEXT = "Article 1 paragraph 2. The keeper of vault 12 is named Zorb12. It opened in year 1912."
MESSAGES = build_messages("Who keeps vault 12?", [Passage(1, 1, "Article_1", "kb://a1", CONTEXT, 1.0)])


@pytest.fixture
def model(tiny_model_dir: Path) -> LocalModel:
    return load_local_model(tiny_model_dir, name="lorebot")


@pytest.fixture
def client(model: LocalModel) -> Iterator[TestClient]:
    with TestClient(create_app(model), client=("127.0.0.1", 50000)) as client:
        yield client


def _reply(client: TestClient, name: str) -> str:
    body = {"model": name, "messages": MESSAGES, "max_tokens": 4, "temperature": 0}
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["message"]["content"]


def _logits(model: LocalModel, name: str) -> torch.Tensor:
    """The next-token logits the server computes for a request naming ``name`` (the tiny model's greedy reply
    barely moves with an untrained LoRA, its logits do)."""
    generation = model.generate(model.prompt_ids(MESSAGES), SamplingParams(max_tokens=1), name)
    with model.lock, torch.inference_mode():
        model.activate(generation.adapter)
        return model.model(torch.tensor([generation.prompt_ids])).logits[0, -1]


def test_adapters_load_route_by_name_replace_in_place_and_unload(
    client: TestClient, model: LocalModel, tiny_lora_dir: Path
) -> None:
    base = _logits(model, "lorebot")

    loaded = client.post("/v1/load_lora_adapter", json={"lora_name": "cand-1", "lora_path": str(tiny_lora_dir)})
    assert (loaded.status_code, loaded.text) == (200, "Success: LoRA adapter 'cand-1' added successfully.")
    assert [m["id"] for m in client.get("/v1/models").json()["data"]] == ["lorebot", "cand-1"]
    assert _reply(client, "cand-1") and _reply(client, "lorebot")
    candidate = _logits(model, "cand-1")
    assert not torch.allclose(candidate, base, atol=1e-3)
    assert torch.allclose(_logits(model, "lorebot"), base, atol=1e-4)
    assert torch.allclose(_logits(model, "unknown"), base, atol=1e-4)

    again = client.post("/v1/load_lora_adapter", json={"lora_name": "cand-1", "lora_path": str(tiny_lora_dir)})
    assert again.status_code == 400 and "has already been loaded" in again.json()["error"]["message"]
    serving = {"lora_name": "lorebot", "lora_path": str(tiny_lora_dir), "load_inplace": True}
    assert client.post("/v1/load_lora_adapter", json=serving).status_code == 200
    assert torch.allclose(_logits(model, "lorebot"), candidate, atol=1e-4)  # the next request, same server

    assert client.post("/v1/unload_lora_adapter", json={"lora_name": "lorebot"}).status_code == 200
    assert torch.allclose(_logits(model, "lorebot"), base, atol=1e-4)
    gone = client.post("/v1/unload_lora_adapter", json={"lora_name": "lorebot"})
    assert gone.status_code == 404 and gone.json()["error"]["message"] == "The lora adapter 'lorebot' cannot be found."


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"lora_name": "x", "lora_path": "/nonexistent"}, "is not a PEFT adapter folder"),
        ({"lora_name": "x"}, "lora_path must name an adapter folder"),
        ({"lora_name": "../x", "lora_path": "/tmp"}, "lora_name must be"),
        ({"lora_name": "x" * 65, "lora_path": "/tmp"}, "lora_name must be"),
        (["not", "an", "object"], "lora_name must be"),
    ],
)
def test_bad_load_requests_are_refused_and_change_nothing(
    client: TestClient, model: LocalModel, body: object, message: str
) -> None:
    response = client.post("/v1/load_lora_adapter", json=body)
    assert response.status_code == 400 and message in response.json()["error"]["message"]
    assert model.adapters == {}


def test_an_adapter_for_another_model_is_refused_and_the_served_one_kept(
    client: TestClient, model: LocalModel, tiny_lora_dir: Path, tmp_path: Path
) -> None:
    import json
    import shutil

    client.post("/v1/load_lora_adapter", json={"lora_name": "lorebot", "lora_path": str(tiny_lora_dir)})
    served = _logits(model, "lorebot")
    foreign = tmp_path / "foreign"
    shutil.copytree(tiny_lora_dir, foreign)
    config = json.loads((foreign / "adapter_config.json").read_text())
    (foreign / "adapter_config.json").write_text(json.dumps({**config, "r": 64}))  # weights no longer fit

    response = client.post(
        "/v1/load_lora_adapter", json={"lora_name": "lorebot", "lora_path": str(foreign), "load_inplace": True}
    )

    assert response.status_code == 400 and "cannot load the adapter" in response.json()["error"]["message"]
    assert list(model.adapters) == ["lorebot"] and torch.allclose(_logits(model, "lorebot"), served, atol=1e-4)


def test_only_loopback_clients_may_change_adapters(model: LocalModel, tiny_lora_dir: Path) -> None:
    with TestClient(create_app(model), client=("203.0.113.7", 50000)) as remote:
        body = {"lora_name": "lorebot", "lora_path": str(tiny_lora_dir)}
        assert remote.post("/v1/load_lora_adapter", json=body).status_code == 403
        assert remote.post("/v1/unload_lora_adapter", json={"lora_name": "lorebot"}).status_code == 403
        assert remote.get("/health").status_code == 200
    assert model.adapters == {}
