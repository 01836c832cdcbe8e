"""The embedded local model server: a tiny random model built here, served over real HTTP to the openai client.

One slow test runs the real packaged Gemma 3 270M end to end through the Answerer.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from bot.errors import ConfigError
from bot.local_llm.adapter_format import FORMAT_FILE, AdapterFormat
from bot.local_llm.chat_template import CHAT_TEMPLATE
from bot.local_llm.launcher import start_local_llm
from bot.local_llm.model import LocalModel, SamplingParams, StopFilter, load_local_model
from bot.local_llm.modeling import dequantized_cache, model_location
from bot.local_llm.prefix import MIN_PREFIX_TOKENS
from bot.settings import Settings
from tests.fixtures.net import running_app


@pytest.fixture(scope="module")
def tiny_model(tiny_model_dir: Path) -> LocalModel:
    return load_local_model(tiny_model_dir, name="tiny")


@pytest.fixture(scope="module")
def server_url(tiny_model: LocalModel) -> Iterator[str]:
    """The real server app on uvicorn in a thread (real HTTP)."""
    from bot.local_llm.server import create_app

    with running_app(create_app(tiny_model)) as url:
        yield url


@pytest.fixture
def client(server_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server_url}/v1", api_key="unused", max_retries=0, timeout=60)


MESSAGES = [
    {"role": "system", "content": "Answer from the sources."},
    {"role": "user", "content": "When is the support office open?"},
]
SYSTEM = "Answer from the numbered sources only, cite every fact, and say so when the sources lack the answer. " * 2
QUESTIONS = ("When is the support office open?", "How do I reset my password?", "Where is the clinic?")


def asked(question: str) -> list[dict[str, str]]:
    """A prompt as the chain sends it: the same long system prompt, then the question."""
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]


def common_start(a: list[int], b: list[int]) -> int:
    return next(i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y)


def test_health_and_models_name_the_served_model(server_url: str) -> None:
    assert httpx.get(f"{server_url}/health").json() == {"status": "ok", "model": "tiny"}
    assert [m["id"] for m in httpx.get(f"{server_url}/v1/models").json()["data"]] == ["tiny"]


def test_chat_template_is_applied_to_a_model_without_one(tiny_model: LocalModel) -> None:
    rendered = tiny_model.tokenizer.decode(tiny_model.prompt_ids(MESSAGES))
    assert rendered == (
        "<bos><start_of_turn>user\nAnswer from the sources.\n\nWhen is the support office open?<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_non_streaming_completion_reports_text_usage_and_finish_reason(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=8, temperature=0)

    choice = response.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason == "length"
    assert response.usage.completion_tokens == 8
    assert response.usage.prompt_tokens > 10
    assert response.usage.total_tokens == response.usage.prompt_tokens + 8


def test_streaming_gives_the_same_text_as_non_streaming(client: openai.OpenAI) -> None:
    complete = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=8, temperature=0)
    stream = client.chat.completions.create(
        model="tiny", messages=MESSAGES, max_tokens=8, temperature=0, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == complete.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage.completion_tokens == 8


def test_generation_stops_before_a_requested_stop_string(client: openai.OpenAI) -> None:
    full = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=12, temperature=0)
    text = full.choices[0].message.content
    stop = text[3:5]

    cut = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=12, temperature=0, stop=[stop])

    assert cut.choices[0].message.content == text[: text.find(stop)]
    assert cut.choices[0].finish_reason == "stop"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "role"),
        ({"messages": [{"role": "user", "content": {"x": 1}}]}, "content"),
        ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, "max_tokens"),
        ({"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}, "sampling"),
        ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5000}, "exceeds"),
    ],
)
def test_malformed_requests_get_a_400_with_a_reason(server_url: str, body: dict, message: str) -> None:
    response = httpx.post(f"{server_url}/v1/chat/completions", json=body)
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]


def test_non_json_body_gets_a_400(server_url: str) -> None:
    response = httpx.post(f"{server_url}/v1/chat/completions", content=b"\xff\x00not json")
    assert response.status_code == 400


def test_stop_filter_cuts_a_stop_string_split_across_pieces() -> None:
    stop_filter = StopFilter(["<end_of_turn>"])
    out = [stop_filter.feed(p) for p in ["Hello <end", "_of_", "turn> ignored"]]
    assert "".join(out) == "Hello "
    assert stop_filter.stopped


def test_stop_filter_releases_a_held_back_prefix_that_was_no_stop() -> None:
    stop_filter = StopFilter(["<end_of_turn>"])
    out = stop_filter.feed("a <en") + stop_filter.feed("try") + stop_filter.flush()
    assert out == "a <entry"
    assert not stop_filter.stopped


def _logits(model, ids):
    import torch

    with torch.inference_mode():
        return model(ids).logits[0, -1]


def test_lora_adapter_is_loaded_and_changes_the_model(tiny_model_dir: Path, tiny_lora_dir: Path) -> None:
    import torch

    plain = load_local_model(tiny_model_dir, name="base")
    adapted = load_local_model(tiny_model_dir, tiny_lora_dir, name="adapted")
    ids = torch.tensor([plain.prompt_ids(MESSAGES)])
    with torch.inference_mode():
        assert not torch.allclose(plain.model(ids).logits, adapted.model(ids).logits)


def test_bfloat16_generation_runs_on_a_copy_that_carries_the_merged_adapter(
    tiny_model_dir: Path, tiny_lora_dir: Path
) -> None:
    import torch

    base = load_local_model(tiny_model_dir, name="base", precision="float32")
    adapted = load_local_model(tiny_model_dir, tiny_lora_dir, name="adapted", precision="bfloat16")
    ids = torch.tensor([base.prompt_ids(MESSAGES)])
    with adapted.lock:
        runner = adapted.runner()
    assert runner is not adapted.model
    assert {p.dtype for p in runner.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in adapted.model.parameters()} == {torch.float32}  # adapters still merge in fp32
    assert not any("lora" in name for name, _ in runner.named_modules())
    exact, bf16, plain = _logits(adapted.model, ids), _logits(runner, ids).float(), _logits(base.model, ids)
    assert torch.nn.functional.cosine_similarity(exact, bf16, dim=0) > 0.99
    assert (bf16 - exact).norm() < (plain - exact).norm() / 4  # the adapter's effect survives the copy
    reply = adapted.generate(adapted.prompt_ids(MESSAGES), SamplingParams(max_tokens=4)).run()
    assert reply


def test_the_bfloat16_output_layer_never_copies_its_weight(tiny_model_dir: Path, tiny_lora_dir: Path) -> None:
    """torch multiplies the last position's bfloat16 view by a frozen weight through bmm, after copying the whole
    transposed weight (0.7 s per prompt for Gemma's 262k-word output layer); the copy must take the matrix path."""
    import torch

    local = load_local_model(tiny_model_dir, tiny_lora_dir, name="adapted", precision="bfloat16")
    with local.lock:
        runner = local.runner()
    weight = runner.get_output_embeddings().weight
    assert not weight.requires_grad  # frozen, as PEFT leaves the base weights: the case that went through bmm
    ids = torch.tensor([local.prompt_ids(MESSAGES)])
    with torch.inference_mode(), torch.profiler.profile(record_shapes=True) as profile:
        runner(input_ids=ids, logits_to_keep=1)
    transposed = [1, weight.shape[1], weight.shape[0]]
    assert not [e for e in profile.events() if e.name == "aten::bmm" and transposed in e.input_shapes]


def test_float32_generation_runs_on_the_model_itself(tiny_model_dir: Path) -> None:
    local = load_local_model(tiny_model_dir, name="exact", precision="float32")
    with local.lock:
        assert local.runner() is local.model


def test_the_bfloat16_copy_is_remade_only_when_another_adapter_is_merged(
    tiny_model_dir: Path, tiny_lora_dir: Path
) -> None:
    import torch

    local = load_local_model(tiny_model_dir, name="served", precision="bfloat16")
    local.load_adapter("tuned", tiny_lora_dir)
    ids = torch.tensor([local.prompt_ids(MESSAGES)])
    with local.lock:
        local.activate(None)
        bare = local.runner()
        assert local.runner() is bare
        local.activate("tuned")
        tuned = local.runner()
        tuned_exact = _logits(local.model, ids)
    assert tuned is not bare
    tuned_logits = _logits(tuned, ids).float()
    assert torch.nn.functional.cosine_similarity(tuned_logits, tuned_exact, dim=0) > 0.99
    assert not torch.allclose(tuned_logits, _logits(bare, ids).float())


def test_prompts_sharing_a_start_continue_from_its_cache_with_the_same_answers(
    tiny_model_dir: Path, tiny_lora_dir: Path
) -> None:
    params = SamplingParams(max_tokens=12)
    local = load_local_model(tiny_model_dir, tiny_lora_dir, name="served", precision="float32")
    prompts = [local.prompt_ids(asked(question)) for question in QUESTIONS]
    generations = [local.generate(prompt, params) for prompt in prompts]
    texts = [generation.run() for generation in generations]

    shared = common_start(prompts[0], prompts[1])
    assert shared >= MIN_PREFIX_TOKENS
    assert [g.cached_tokens for g in generations] == [0, shared, shared]  # found by the second prompt
    for prompt, text in zip(prompts, texts, strict=True):
        uncached = load_local_model(tiny_model_dir, tiny_lora_dir, name="served", precision="float32")
        assert uncached.generate(prompt, params).run() == text


def test_the_prefix_cache_is_dropped_when_another_adapter_is_merged(tiny_model_dir: Path, tiny_lora_dir: Path) -> None:
    params = SamplingParams(max_tokens=12)
    local = load_local_model(tiny_model_dir, name="served", precision="float32")
    local.load_adapter("tuned", tiny_lora_dir)
    first, second = (local.prompt_ids(asked(question)) for question in QUESTIONS[:2])
    local.generate(first, params).run()
    assert local.generate(second, params).cached_tokens == 0  # counted when generation starts
    cached = local.generate(second, params)
    cached.run()
    assert cached.cached_tokens > 0  # the base model's cache

    tuned = local.generate(second, params, "tuned")
    text = tuned.run()

    assert tuned.cached_tokens == 0
    alone = load_local_model(tiny_model_dir, tiny_lora_dir, name="tuned", precision="float32")
    assert alone.generate(second, params).run() == text


def test_usage_reports_the_prompt_tokens_served_from_the_cache(client: openai.OpenAI, tiny_model: LocalModel) -> None:
    replies = [
        client.chat.completions.create(model="tiny", messages=asked(question), max_tokens=4, temperature=0)
        for question in QUESTIONS[:2]
    ]
    shared = common_start(*(tiny_model.prompt_ids(asked(question)) for question in QUESTIONS[:2]))
    assert [r.usage.prompt_tokens_details.cached_tokens for r in replies] == [0, shared]


def test_missing_model_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="model not found"):
        load_local_model(tmp_path / "nope", name="x")


def test_a_gguf_with_a_dequantized_copy_beside_it_is_loaded_from_the_copy(tiny_model_dir: Path, tmp_path: Path) -> None:
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF not really: only the copy can be loaded")
    assert model_location(str(gguf)) == (str(tmp_path), {"gguf_file": "tiny.gguf"})
    shutil.copytree(tiny_model_dir, dequantized_cache(gguf))
    assert model_location(str(gguf)) == (str(dequantized_cache(gguf)), {})
    local = load_local_model(gguf, name="tiny")
    assert local.tokenizer.chat_template == CHAT_TEMPLATE


def test_the_command_line_reports_a_missing_model_and_exits_1(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bot.cli import app

    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["local-llm", "--model", str(tmp_path / "nope"), "--no-adapter"])
    assert result.exit_code == 1
    assert "error: model not found" in result.output


def test_launcher_starts_a_server_subprocess_and_stops_it(settings, tiny_model_dir: Path) -> None:
    settings = settings.model_copy(
        update={"llm_model": "tiny-served", "local_llm_use_adapter": False, "local_llm_precision": "float32"}
    )
    with start_local_llm(settings, model_path=tiny_model_dir, port=0) as local:
        assert local.base_url.startswith("http://127.0.0.1:")
        client = openai.OpenAI(base_url=local.base_url, api_key="unused", max_retries=0, timeout=60)
        reply = client.chat.completions.create(model=local.model_name, messages=MESSAGES, max_tokens=4)
        assert reply.model == "tiny-served"
        assert reply.usage.completion_tokens >= 1
    assert local.process.poll() is not None
    assert "bfloat16 copy" not in local.log_path.read_text()  # the settings' precision reached the server


def test_the_launcher_serves_an_adapter_the_way_it_declares_unless_a_setting_is_explicit(
    settings, tiny_model_dir: Path, tiny_lora_dir: Path, tmp_path: Path
) -> None:
    adapter = shutil.copytree(tiny_lora_dir, tmp_path / "adapter")
    AdapterFormat(context_sentences=6, answer_history=False).write(adapter)
    settings = settings.model_copy(update={"local_llm_precision": "float32"})
    with start_local_llm(settings, model_path=tiny_model_dir, adapter_path=adapter, port=0) as local:
        served = local.settings_for(settings)
        chosen = local.settings_for(Settings(_env_file=None, context_sentences=0))
    assert local.prompt_format == AdapterFormat(context_sentences=6, answer_history=False)
    assert (served.llm_base_url, served.llm_model) == (local.base_url, "lorebot-local")
    assert (served.context_sentences, served.answer_history) == (6, False)
    assert (chosen.context_sentences, chosen.answer_history) == (0, False)  # CONTEXT_SENTENCES set explicitly wins


@pytest.mark.parametrize(
    ("content", "problem"),
    [("{", "not an adapter format file"), ('{"k": 1}', "unknown k"), ("[]", "not an object"),
     ('{"context_sentences": -2}', "whole number"), ('{"context_sentences": true}', "whole number"),
     ('{"answer_history": "no"}', "true or false")],
)  # fmt: skip
def test_a_malformed_adapter_format_is_a_clear_error(tmp_path: Path, content: str, problem: str) -> None:
    (tmp_path / FORMAT_FILE).write_text(content)
    with pytest.raises(ConfigError, match=problem):
        AdapterFormat.read(tmp_path)
    assert AdapterFormat.read(tmp_path / "missing") == AdapterFormat.read(None) == AdapterFormat()
    (tmp_path / FORMAT_FILE).write_text('{"answer_history": false}')
    assert AdapterFormat.read(tmp_path) == AdapterFormat(context_sentences=0, answer_history=False)


def test_launcher_reports_a_server_that_cannot_start_with_its_log(settings, tmp_path: Path) -> None:
    settings = settings.model_copy(update={"local_llm_use_adapter": False})
    with pytest.raises(ConfigError, match=r"exited with code [^0](.|\n)*model not found"):
        start_local_llm(settings, model_path=tmp_path / "missing-model", port=0)


def test_launcher_rejects_an_adapter_path_that_is_no_adapter(settings, tmp_path: Path) -> None:
    settings = settings.model_copy(update={"local_llm_adapter_path": tmp_path})
    with pytest.raises(ConfigError, match="not a PEFT adapter"):
        start_local_llm(settings, model_path=tmp_path, port=0)


@pytest.mark.slow
async def test_real_gemma_answers_through_the_chain(settings, pool, pytestconfig) -> None:
    """The packaged Gemma 3 270M with the shipped adapter answers a RAG question end to end, citing its source."""
    from bot.answer.chain import Answerer
    from bot.domain import Answer
    from bot.embeddings import load_embedder
    from bot.retrieval import Retriever
    from tests.fixtures.embeddings import CorpusDocument, index_corpus

    data_dir = pytestconfig.cache.mkdir("lorebot-data")  # the GGUF and its de-quantized copy, kept across runs
    settings = settings.model_copy(
        update={
            "data_dir": data_dir,
            "llm_max_tokens": 32,
            "llm_timeout_s": 300.0,
            "llm_model": "gemma",
            "llm_temperature": 0.0,
        }
    )
    embedder = load_embedder(settings)
    await index_corpus(
        pool, embedder, [CorpusDocument("Office hours", ["The support office is open from 10am to 2pm on Saturdays."])]
    )
    with start_local_llm(settings, port=0) as local:
        served = local.settings_for(settings)
        answerer = Answerer(served, Retriever(pool, embedder, served))
        events = [e async for e in answerer.stream("When is the support office open on Saturdays?", ["default"], [])]
    final = events[-1]
    assert isinstance(final, Answer)
    assert final.found and "10" in final.text, final.text
    assert [c.title for c in final.citations] == ["Office hours"]


def test_two_processes_assembling_the_packaged_model_at_once_both_get_the_whole_file(tmp_path: Path) -> None:
    """Two servers started together on a fresh data directory (e.g. an evaluation's base and adapter) used to
    write the same partial file, and the second rename failed."""
    script = (
        "import sys; from pathlib import Path; from bot.settings import Settings; "
        "from bot.local_llm.launcher import default_model_path; "
        "print(default_model_path(Settings(_env_file=None, data_dir=Path(sys.argv[1]))).stat().st_size)"
    )
    starts = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outcomes = [(process.wait(timeout=300), *process.communicate()) for process in starts]

    assert [code for code, _, _ in outcomes] == [0, 0], [err.decode()[-2000:] for _, _, err in outcomes]
    (model,) = (tmp_path / "models").iterdir()  # no partial copy left behind
    assert {int(out) for _, out, _ in outcomes} == {model.stat().st_size}
