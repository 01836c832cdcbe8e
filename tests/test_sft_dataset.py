"""Dataset building: every source format, malformed input, SQuAD → RAG examples, split, dedupe, card."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from bot.answer.prompt import NOT_FOUND_ANSWER, SYSTEM_PROMPT, build_messages
from bot.domain import Passage
from bot.local_llm.adapter_format import AdapterFormat
from bot.sft.config import DatasetConfig
from bot.sft.dataset import build_dataset, eval_groups
from bot.sft.errors import DatasetFormatError, SFTError
from bot.sft.example import Example
from bot.sft.formats import read_examples
from tests.fixtures.sft import write_jsonl

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is Lorebot?"},
    {"role": "assistant", "content": "A knowledge bot."},
]


def _config(tmp_path: Path, **changes: object) -> DatasetConfig:
    defaults = dict(output_dir=tmp_path / "out", tokenizer="", eval_fraction=0.34, max_tokens=100_000, seed=7)
    return replace(DatasetConfig(), **{**defaults, **changes})


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_reads_openai_messages_jsonl(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "chat.jsonl", [{"messages": MESSAGES}])
    [example] = read_examples(path, source="curated")
    assert list(example.messages) == MESSAGES
    assert example.lang == "en"


def test_reads_alpaca_json_array_and_jsonl(tmp_path: Path) -> None:
    record = {"instruction": "Translate to French", "input": "cheese", "output": "fromage"}
    array = tmp_path / "alpaca.json"
    array.write_text(json.dumps([record, {**record, "input": ""}]), encoding="utf-8")
    lines = write_jsonl(tmp_path / "alpaca.jsonl", [record])
    first, second = read_examples(array, source="curated")
    assert first.messages == (
        {"role": "user", "content": "Translate to French\n\ncheese"},
        {"role": "assistant", "content": "fromage"},
    )
    assert second.messages[0]["content"] == "Translate to French"
    assert read_examples(lines, source="curated")[0].messages == first.messages


def test_reads_sharegpt_conversations(tmp_path: Path) -> None:
    turns = [{"from": "system", "value": "S"}, {"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]
    path = write_jsonl(tmp_path / "sharegpt.jsonl", [{"conversations": turns}])
    [example] = read_examples(path, source="curated")
    assert [m["role"] for m in example.messages] == ["system", "user", "assistant"]
    assert example.messages[-1]["content"] == "Hello"


def test_bilingual_alpaca_gives_one_example_per_language(tmp_path: Path) -> None:
    record = {
        "en_instruction": "Name a colour",
        "en_input": "",
        "en_output": "Red",
        "zh_instruction": "说出一种颜色",
        "zh_input": "",
        "zh_output": "红色",
    }
    path = tmp_path / "bilingual.json"
    path.write_text(json.dumps([record], ensure_ascii=False), encoding="utf-8")
    english, chinese = read_examples(path, source="instructions")
    assert (english.lang, chinese.lang) == ("en", "zh")
    assert chinese.messages[-1]["content"] == "红色"
    assert english.group != chinese.group


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "invalid JSON"),
        ('{"messages": [{"role": "user", "content": "q"}]}', "must end with an assistant message"),
        ('{"messages": [{"role": "wizard", "content": "q"}, {"role": "assistant", "content": "a"}]}', "role"),
        ('{"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "a"}]}', "string"),
        ('{"conversations": [{"from": "robot", "value": "x"}]}', "ShareGPT"),
        ('{"instruction": "x"}', "'output' must be a string"),
        ('["a list"]', "expected a JSON object"),
        ('{"question": "unknown format"}', "unknown record format"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"messages": MESSAGES}) + "\n\n" + line + "\n", encoding="utf-8")
    with pytest.raises(DatasetFormatError) as caught:
        read_examples(path, source="curated")
    assert caught.value.line == 3
    assert str(caught.value).startswith(f"{path}: line 3: ")
    assert problem in str(caught.value)


def test_empty_file_and_bad_json_array_are_rejected(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("  \n", encoding="utf-8")
    with pytest.raises(DatasetFormatError, match="file is empty"):
        read_examples(empty, source="curated")
    broken = tmp_path / "broken.json"
    broken.write_text('[\n{"instruction": "a", "output": "b"},\n{oops}\n]', encoding="utf-8")
    with pytest.raises(DatasetFormatError) as caught:
        read_examples(broken, source="curated")
    assert caught.value.line == 3


def test_malformed_curated_file_writes_nothing_and_keeps_previous_output(tmp_path: Path) -> None:
    good = write_jsonl(tmp_path / "good.jsonl", [{"messages": MESSAGES}])
    config = _config(tmp_path, curated_files=(good,), eval_fraction=0.0)
    build_dataset(config)
    before = {p.name: p.read_bytes() for p in config.output_dir.iterdir()}
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": MESSAGES}) + "\n{broken\n", encoding="utf-8")
    with pytest.raises(DatasetFormatError, match=r"bad\.jsonl: line 2"):
        build_dataset(replace(config, curated_files=(good, bad)))
    assert {p.name: p.read_bytes() for p in config.output_dir.iterdir()} == before


def test_squad_examples_use_the_serving_prompt_and_cite_the_gold_source(tmp_path: Path, tiny_squad_file: Path) -> None:
    config = _config(tmp_path, qa_files=(tiny_squad_file,), unanswerable_ratio=0.0, distractors=2)
    result = build_dataset(config)
    examples = result.train + result.eval
    assert len(examples) == 18
    for example in examples:
        system, user, assistant = example.messages
        assert system == {"role": "system", "content": SYSTEM_PROMPT}
        qa = example.qa
        passages = [
            Passage(chunk_id=i, document_id=i, title=p["title"], source_uri=p["source_uri"], text=p["text"], score=0)
            for i, p in enumerate(qa["passages"], start=1)
        ]
        assert [system, user] == build_messages(qa["question"], passages)
        assert len(passages) == 3
        answer = qa["answers"][0]
        assert assistant["content"] == f"{answer} [{qa['gold']}]"
        assert answer in passages[qa["gold"] - 1].text
        assert sum(answer in p.text for p in passages) == 1


def test_unanswerable_examples_refuse_over_distractors_only(tmp_path: Path, tiny_squad_file: Path) -> None:
    result = build_dataset(_config(tmp_path, qa_files=(tiny_squad_file,), unanswerable_ratio=1.0))
    assert result.train
    for example in result.train + result.eval:
        assert example.messages[-1]["content"] == NOT_FOUND_ANSWER
        assert example.qa["gold"] is None
        assert not any(f"Zorb{example.qa['id'][1:]}" in p["text"] for p in example.qa["passages"])


def test_split_keeps_each_article_and_its_distractors_on_one_side(tmp_path: Path, tiny_squad_file: Path) -> None:
    result = build_dataset(_config(tmp_path, qa_files=(tiny_squad_file,)))
    train_groups = {e.group for e in result.train}
    eval_groups_ = {e.group for e in result.eval}
    assert train_groups and eval_groups_ and not train_groups & eval_groups_
    for example in result.eval:
        assert {p["source_uri"] for p in example.qa["passages"]} <= eval_groups_
    written = _lines(result.output_dir / "eval_qa.jsonl")
    assert {r["id"] for r in written} == {e.qa["id"] for e in result.eval}


def test_build_is_deterministic(tmp_path: Path, tiny_squad_file: Path) -> None:
    first = build_dataset(_config(tmp_path / "a", qa_files=(tiny_squad_file,)))
    second = build_dataset(_config(tmp_path / "b", qa_files=(tiny_squad_file,)))
    for name in ("train.jsonl", "eval.jsonl", "eval_qa.jsonl"):
        assert (first.output_dir / name).read_bytes() == (second.output_dir / name).read_bytes()


def test_eval_groups_is_a_seeded_stable_fraction() -> None:
    groups = [f"doc{i}" for i in range(100)]
    held = eval_groups(groups, 0.1, seed=1)
    assert len(held) == 10
    assert held == eval_groups(reversed(groups), 0.1, seed=1)
    assert held != eval_groups(groups, 0.1, seed=2)
    assert eval_groups(["only"], 0.5, seed=1) == set()


def _rag_example(number: int, lang: str, *, refused: bool) -> Example:
    reply = NOT_FOUND_ANSWER if refused else f"answer {number} [1]"
    messages = ({"role": "user", "content": f"question {number}"}, {"role": "assistant", "content": reply})
    return Example(messages=messages, source="qa:test", group=f"article {number}", lang=lang)


def test_refusals_are_capped_per_language_and_answers_are_all_kept(tmp_path: Path) -> None:
    # English: 6 answered, 4 refused; Chinese: 3 answered, 7 refused
    shapes = [("en", i >= 6) for i in range(10)] + [("zh", i >= 3) for i in range(10)]
    examples = [_rag_example(i, lang, refused=refused) for i, (lang, refused) in enumerate(shapes)]
    config = _config(tmp_path, eval_fraction=0.0, max_refusal_share=0.25)

    train = build_dataset(config, rag={"train": examples, "eval": []}).train

    def count(lang: str, refused: bool) -> int:
        return sum(e.lang == lang and (e.messages[-1]["content"] == NOT_FOUND_ANSWER) == refused for e in train)

    assert (count("en", False), count("en", True)) == (6, 2)  # 2 of 8 = 25 %
    assert (count("zh", False), count("zh", True)) == (3, 1)  # 1 of 4 = 25 %
    uncapped = build_dataset(_config(tmp_path, eval_fraction=0.0), rag={"train": examples, "eval": []}).train
    assert len(uncapped) == 20


@pytest.mark.parametrize("share", [-0.1, 1.5])
def test_a_refusal_share_outside_0_to_1_is_rejected(share: float) -> None:
    with pytest.raises(SFTError, match="max_refusal_share"):
        DatasetConfig(max_refusal_share=share)


def test_duplicates_empty_and_overlong_examples_are_dropped(tmp_path: Path) -> None:
    long_answer = "word " * 500
    records = [
        {"messages": MESSAGES},
        {"messages": [dict(m, content=m["content"].upper()) if m["role"] == "user" else m for m in MESSAGES]},
        {"messages": [*MESSAGES[:2], {"role": "assistant", "content": "   "}]},
        {"messages": [*MESSAGES[:2], {"role": "assistant", "content": long_answer}]},
        {"messages": [*MESSAGES[:2], {"role": "assistant", "content": "Another answer."}]},
    ]
    path = write_jsonl(tmp_path / "mixed.jsonl", records)
    result = build_dataset(_config(tmp_path, curated_files=(path,), eval_fraction=0.0, max_tokens=100))
    assert [e.messages[-1]["content"] for e in result.train] in (
        ["A knowledge bot.", "Another answer."],
        ["Another answer.", "A knowledge bot."],
    )
    assert result.dropped == {"duplicate": 1, "empty message": 1, "longer than 400": 1}  # 4 chars per token


def test_instructions_are_mixed_in_at_the_configured_ratio(tmp_path: Path, tiny_squad_file: Path) -> None:
    records = [{"instruction": f"Say {i}", "output": f"{i}"} for i in range(200)]
    path = tmp_path / "instructions.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    config = _config(tmp_path, qa_files=(tiny_squad_file,), instruction_files=(path,), instruction_ratio=0.25)
    result = build_dataset(config)
    rag = sum(e.source != "instructions" for e in result.train)
    instructions = sum(e.source == "instructions" for e in result.train)
    assert instructions == round(rag * 0.25 / 0.75)


def test_dataset_card_counts_sources_languages_and_lengths(tmp_path: Path, tiny_squad_file: Path) -> None:
    result = build_dataset(_config(tmp_path, qa_files=(tiny_squad_file,)))
    card = json.loads((result.output_dir / "dataset_card.json").read_text(encoding="utf-8"))
    train = card["splits"]["train"]
    assert train["examples"] == len(result.train) == len(_lines(result.output_dir / "train.jsonl"))
    assert train["by_source"] == {"qa:tiny-squad": len(result.train)}
    assert train["by_language"] == {"en": len(result.train)}
    assert train["length"]["max"] >= train["length"]["p50"] >= train["length"]["min"] > 0
    assert card["length_unit"] == "characters"
    markdown = (result.output_dir / "dataset_card.md").read_text(encoding="utf-8")
    assert f"## train: {len(result.train)} examples" in markdown


def test_the_dataset_declares_how_its_passages_and_follow_ups_were_shown(tmp_path: Path, tiny_squad_file: Path) -> None:
    stored = build_dataset(_config(tmp_path, qa_files=(tiny_squad_file,), rag_passages="stored"))
    assert AdapterFormat.read(stored.output_dir) == AdapterFormat(context_sentences=0)
    cut = _config(tmp_path, output_dir=tmp_path / "cut", rag_passages="retrieved", context_sentences=8)
    chats = read_examples(write_jsonl(tmp_path / "chat.jsonl", [{"messages": MESSAGES}]), source="curated")
    built = build_dataset(cut, rag={"train": chats, "eval": []})
    assert AdapterFormat.read(built.output_dir) == AdapterFormat(context_sentences=8)
    alone = _config(tmp_path, output_dir=tmp_path / "alone", rag_passages="retrieved", answer_history=False)
    built = build_dataset(alone, rag={"train": chats, "eval": []})
    assert AdapterFormat.read(built.output_dir) == AdapterFormat(context_sentences=0, answer_history=False)


@pytest.mark.parametrize("changes", [{"context_sentences": -1}, {"context_sentences": 4, "rag_passages": "stored"}])
def test_context_sentences_must_be_positive_and_cut_retrieved_passages(changes: dict) -> None:
    with pytest.raises(SFTError, match="context_sentences"):
        replace(DatasetConfig(), **changes)


def test_real_squad_and_cmrc_build_with_token_lengths(tmp_path: Path, shared_dir: Path, tiny_model_dir: Path) -> None:
    from bot.local_llm.modeling import load_tokenizer

    qa = shared_dir / "data" / "qa"
    config = _config(
        tmp_path,
        qa_files=(qa / "cmrc2018-trial.json",),
        tokenizer=str(tiny_model_dir),
        max_tokens=2000,
        eval_fraction=0.1,
    )
    result = build_dataset(config, tokenizer=load_tokenizer(str(tiny_model_dir)))
    card = result.stats["splits"]
    assert card["train"]["by_language"].get("zh", 0) > 0.9 * card["train"]["examples"]
    assert result.stats["length_unit"] == "tokens"
    assert not {e.group for e in result.train} & {e.group for e in result.eval}
    refusals = [e for e in result.train if e.messages[-1]["content"] == NOT_FOUND_ANSWER]
    assert 0.1 < len(refusals) / len(result.train) < 0.45
