"""The real RAG loop for SFT: training examples over what the real retriever returns, and the evaluation that asks
every question through the service (real embedded Postgres, real embeddings, the fake LLM server over HTTP)."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from bot.answer.chain import AnswerRequest, condense_messages
from bot.answer.focus import focus_passages
from bot.answer.prompt import CONDENSE_PROMPT, NOT_FOUND_ANSWER, build_messages
from bot.domain import Passage, Turn
from bot.embeddings import Embedder
from bot.local_llm.adapter_format import AdapterFormat
from bot.settings import Settings
from bot.sft.config import DatasetConfig, EvalConfig
from bot.sft.dataset import split_articles
from bot.sft.evaluate import Target, evaluate_loop, table
from bot.sft.realloop import (
    LoopQuestion,
    build_corpus,
    follow_up,
    loop_service,
    reply_for,
    retrieved_rag,
)
from bot.sft.squad import Paragraph, load_articles
from tests.fixtures.llm import FakeLLM

ANIMALS = ["otter", "badger", "heron", "lynx", "marten", "ibis"]
PLACES = ["Northern", "Lakeside", "Hilltop", "Orchard"]


def _squad() -> dict:
    """Six articles of four paragraphs; every paragraph names one keeper and has two questions about it."""
    return {
        "data": [
            {
                "title": f"Zoo_{animal}",
                "paragraphs": [
                    {
                        "context": f"The {animal} house of the {place} enclosure was built with brick walls. "
                        f"Its keeper is named Keeper{animal.title()}{n} and feeds the {animal}s at {7 + n}:{i}5.",
                        "qas": [
                            {
                                "id": f"{animal}{n}a",
                                "question": f"Who is the keeper of the {animal} house of the {place} enclosure?",
                                "answers": [{"text": f"Keeper{animal.title()}{n}", "answer_start": 0}],
                            },
                            {
                                "id": f"{animal}{n}b",
                                "question": f"At what time are the {animal}s of the {place} enclosure fed?",
                                "answers": [{"text": f"{7 + n}:{i}5", "answer_start": 0}],
                            },
                        ],
                    }
                    for n, place in enumerate(PLACES)
                ],
            }
            for i, animal in enumerate(ANIMALS)
        ]
    }


@pytest.fixture
def squad_file(tmp_path: Path) -> Path:
    path = tmp_path / "zoo.json"
    path.write_text(json.dumps(_squad()), encoding="utf-8")
    return path


def _articles(path: Path) -> dict[str, list[Paragraph]]:
    return load_articles(path, source="qa:zoo")


def _passage(number: int, text: str, uri: str) -> Passage:
    return Passage(chunk_id=number, document_id=number, title="Zoo", source_uri=uri, text=text, score=1.0)


def test_withheld_paragraphs_are_not_ingested_and_their_questions_must_be_refused(squad_file: Path) -> None:
    corpus = build_corpus(_articles(squad_file), rng=random.Random(3), withheld_fraction=0.5, questions=slice(None))

    ingested = {d.source_uri for d in corpus.documents}
    asked = {q.gold_uri for q in corpus.questions}
    assert 0 < len(ingested) < 24 and len(asked) == 24
    assert len({d.source_uri for d in corpus.documents}) == len(corpus.documents)
    for question in corpus.questions:
        assert bool(question.answers) == (question.gold_uri in ingested)
    assert {d.title for d in corpus.documents} <= {f"Zoo {a}" for a in ANIMALS}


def test_a_withheld_question_whose_answer_is_in_the_index_is_left_out(squad_file: Path) -> None:
    data = _squad()
    data["data"][0]["paragraphs"][1]["context"] += " KeeperOtter0 also helps here."  # answer of otter0a
    squad_file.write_text(json.dumps(data), encoding="utf-8")
    articles = _articles(squad_file)

    for seed in range(40):  # find a draw that withholds otter paragraph 0 and ingests paragraph 1
        corpus = build_corpus(articles, rng=random.Random(seed), withheld_fraction=0.5, questions=slice(None))
        ingested = {d.source_uri for d in corpus.documents}
        if "qa:zoo:Zoo_otter#1" in ingested and "qa:zoo:Zoo_otter#0" not in ingested:
            break
    else:
        pytest.fail("no seed withholds paragraph 0 and keeps paragraph 1")
    ids = {q.id for q in corpus.questions}
    assert "otter0a" not in ids and "otter0b" in ids


def test_question_slice_picks_which_questions_are_asked(squad_file: Path) -> None:
    articles = _articles(squad_file)
    first = build_corpus(articles, rng=random.Random(1), withheld_fraction=0.0, questions=slice(1))
    later = build_corpus(articles, rng=random.Random(1), withheld_fraction=0.0, questions=slice(1, None))

    assert {q.id[-1] for q in first.questions} == {"a"} and {q.id[-1] for q in later.questions} == {"b"}
    assert len(first.questions) == len(later.questions) == 24


def test_the_reply_cites_the_questions_own_paragraph_first_else_refuses() -> None:
    question = LoopQuestion("q", "Who keeps the otters?", ("Anna Berg",), "zoo#2", "Zoo", "zoo", "en")
    passages = [
        _passage(1, "Anna Berg also visits the herons.", "zoo#5"),
        _passage(2, "The weather was fine.", "zoo#7"),
        _passage(3, "The otters are kept by anna berg.", "zoo#2"),
    ]

    assert reply_for(question, passages) == "Anna Berg [3]"
    assert reply_for(question, passages[:2]) == "Anna Berg [1]"
    assert reply_for(question, passages[1:2]) == NOT_FOUND_ANSWER
    unanswerable = LoopQuestion("u", "Who keeps the otters?", (), "zoo#9", "Zoo", "zoo", "en")
    assert reply_for(unanswerable, passages) == NOT_FOUND_ANSWER


@pytest.mark.parametrize(
    ("question", "earlier", "lang", "expected"),
    [
        ("When did Super Bowl 50 take place?", "Who won Super Bowl 50?", "en", "When did it take place?"),
        (
            "What did Luther think of Purgatory?",
            "Who did Luther view as the Antichrist?",
            "en",
            "What did it think of Purgatory?",
        ),
        (
            "Where has the Scottish Parliament met since 2004?",
            "Who elects the Scottish Parliament?",
            "en",
            "Where has it met since 2004?",
        ),
        ("When did the game take place?", "Who won Super Bowl 50?", "en", "When did the game take place?"),
        ("In what year did ABC start?", "What year was it founded?", "en", "In what year did ABC start?"),
        ("广茂铁路全长多少公里？", "广茂铁路由哪家公司管理运营？", "zh", "它全长多少公里？"),
        ("莱昂德罗·内托的职业是什么？", "莱昂德罗·内托的国籍是哪个国家？", "zh", "它的职业是什么？"),
        ("这一模式是由谁改编的？", "《战国无双3》是由哪两个公司合作开发的？", "zh", "这一模式是由谁改编的？"),
        ("广三铁路在哪年建成？", "广茂铁路全长多少公里？", "zh", "广三铁路在哪年建成？"),
    ],
)
def test_follow_ups_refer_to_a_name_the_earlier_question_used(
    question: str, earlier: str, lang: str, expected: str
) -> None:
    """The pronoun's referent is always in the conversation (the earlier question), never only in the article."""
    assert follow_up(LoopQuestion("q", question, ("x",), "u", "Title", "a", lang), earlier) == expected


@pytest.mark.parametrize("sentences", [0, 4])
async def test_training_examples_show_exactly_what_the_retriever_returns(
    settings: Settings, embedder: Embedder, squad_file: Path, sentences: int
) -> None:
    """...cut to the sentences the chain would show (``context_sentences``; 0 = whole passages)."""
    config = DatasetConfig(
        qa_files=(squad_file,),
        eval_fraction=0.3,
        withheld_fraction=0.25,
        multi_turn_ratio=0.0,
        retrieval_k=3,
        context_sentences=sentences,
    )
    async with loop_service(settings, embedder=embedder) as service:
        rag = await retrieved_rag(config, service, split_articles(config))

        examples = rag["train"] + rag["eval"]
        assert len(rag["train"]) > len(rag["eval"]) > 0
        refusals = [e for e in examples if e.messages[-1]["content"] == NOT_FOUND_ANSWER]
        assert 0 < len(refusals) < len(examples)
        for example in examples:
            system, user, reply = example.messages
            question = user["content"].rsplit("Question: ", 1)[1]
            scope = "sft-train-0" if example in rag["train"] else "sft-eval-0"
            passages = focus_passages(question, await service.retriever.search(question, [scope], 3), sentences)
            assert [system, user] == build_messages(question, passages)
            assert not sentences or sum(p.text.count(". ") + 1 for p in passages) <= sentences
            if reply["content"] != NOT_FOUND_ANSWER:
                answer, number = re.fullmatch(r"(.+) \[(\d)\]", reply["content"]).groups()
                assert answer in passages[int(number) - 1].text
    train_articles = {e.group for e in rag["train"]}
    assert train_articles.isdisjoint({e.group for e in rag["eval"]})


async def test_follow_up_examples_train_condensing_and_answering_with_history(
    settings: Settings, embedder: Embedder, squad_file: Path
) -> None:
    config = DatasetConfig(
        qa_files=(squad_file,),
        eval_fraction=0.0,
        withheld_fraction=0.0,
        multi_turn_ratio=1.0,
        questions_per_paragraph=2,
    )
    async with loop_service(settings, embedder=embedder) as service:
        examples = (await retrieved_rag(config, service, split_articles(config)))["train"]

    condensing = [
        e for e in examples if e.messages[0]["content"] == condense_messages(AnswerRequest("x", ()))[0]["content"]
    ]
    answering = [e for e in examples if len(e.messages) == 5]
    assert len(condensing) == 48 and len(answering) == 48
    referring = 0
    for example in condensing:  # "it" when the earlier question names the same enclosure, else standalone
        system, user, reply = example.messages
        earlier, asked = re.fullmatch(
            r"Conversation:\nUser: (.+)\nAssistant: .+\n\nLast question: (.+)", user["content"]
        ).groups()
        assert reply["content"].startswith(("Who is", "At what time"))
        enclosure = re.search(r"the \w+ enclosure", reply["content"])[0]
        shared = enclosure in earlier
        assert asked == (reply["content"].replace(enclosure, "it enclosure") if shared else reply["content"])
        referring += shared
    assert referring > 0
    for example in answering:
        system, asked, earlier, user, reply = example.messages
        history = (Turn(asked["content"], earlier["content"]),)
        assert earlier["content"] == NOT_FOUND_ANSWER or re.search(r" \[\d\]$", earlier["content"])
        assert system["content"] == build_messages("q", [], history)[0]["content"]
        assert user["content"].startswith('Sources:\n<source id="1"')


async def test_without_answer_history_a_follow_ups_answer_example_asks_the_standalone_question(
    settings: Settings, embedder: Embedder, squad_file: Path
) -> None:
    """As the chain serves ``ANSWER_HISTORY=false``: the condense step's rewrite, no earlier turns."""
    config = DatasetConfig(
        qa_files=(squad_file,),
        eval_fraction=0.0,
        withheld_fraction=0.0,
        multi_turn_ratio=1.0,
        questions_per_paragraph=2,
        answer_history=False,
    )
    async with loop_service(settings, embedder=embedder) as service:
        examples = (await retrieved_rag(config, service, split_articles(config)))["train"]

    condensing = [e for e in examples if e.messages[0]["content"] == CONDENSE_PROMPT]
    answering = [e for e in examples if e.messages[0]["content"] != CONDENSE_PROMPT]
    assert len(condensing) == len(answering) == 48
    rewritten = {e.messages[-1]["content"] for e in condensing}
    for example in answering:
        system, user, reply = example.messages
        assert system["content"] == build_messages("q", [])[0]["content"]
        assert user["content"].rsplit("Question: ", 1)[1] in rewritten
        assert reply["content"] == NOT_FOUND_ANSWER or re.search(r" \[\d\]$", reply["content"])


async def test_real_loop_eval_asks_every_question_through_the_service(
    settings: Settings, embedder: Embedder, squad_file: Path, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    def perfect(body: dict) -> str:
        user = body["messages"][-1]["content"]
        sources = re.findall(r'<source id="(\d+)" title="[^"]*">\n(.*?)\n</source>', user, re.S)
        question = user.rsplit("Question: ", 1)[1]
        animal, place = re.search(r"the (\w+?)s? (?:house )?of the (\w+) enclosure", question).groups()
        for number, text in sources:
            if f"{animal} house of the {place} enclosure" in text:
                answer = re.search(r"Keeper\w+" if question.startswith("Who") else r"\d+:\d5", text)[0]
                return f"{answer} [{number}]" if body["model"] == "tuned" else f"I think {answer}."
        return NOT_FOUND_ANSWER if body["model"] == "tuned" else "Probably nobody."

    fake_llm.script(perfect)
    dataset = DatasetConfig(qa_files=(squad_file,), eval_fraction=0.5, seed=7)
    config = EvalConfig(withheld_fraction=0.25, question_offset=0, limit=0, seed=7)
    targets = [Target("base", fake_llm.base_url, "base"), Target("tuned", fake_llm.base_url, "tuned")]
    report = tmp_path / "report"
    results = await evaluate_loop(settings, targets, config, dataset, output_dir=report, embedder=embedder)

    tuned, base = results["tuned"]["all"], results["base"]["all"]
    assert tuned["answerable"] + tuned["unanswerable"] == 24  # 3 held-out articles × 4 paragraphs × 2 questions
    assert tuned["answerable"] > 0 and tuned["unanswerable"] > 0
    assert tuned["token_f1"] == tuned["exact_match"] == 100.0
    assert tuned["gold_cited"] == tuned["gold_contained"] == tuned["citation_correct"] == 1.0
    assert (tuned["refusal_accuracy"], tuned["false_refusal"]) == (1.0, 0.0)
    assert base["gold_cited"] == 0.0 and base["refusal_accuracy"] == 0.0 and base["gold_contained"] == 1.0
    assert tuned["latency_p50_ms"] > 0 and tuned["first_token_p50_ms"] > 0
    assert list(results["tuned"]) == ["all", "en"]
    asked = {r["messages"][-1]["content"].rsplit("Question: ", 1)[1] for r in fake_llm.chat_requests}
    rows = [json.loads(line) for line in (report / "eval_answers.jsonl").read_text().splitlines()]
    assert {r["question"] for r in rows if r["model"] == "tuned"} >= asked
    assert "| Gold document cited (answerable) | 0.000 | 1.000 |" in table(results)


@pytest.mark.parametrize(("dataset_sentences", "adapter_sentences"), [(1, None), (0, 1)])
async def test_real_loop_eval_shows_the_model_the_sentences_it_was_trained_on(
    settings: Settings,
    embedder: Embedder,
    squad_file: Path,
    fake_llm: FakeLLM,
    dataset_sentences: int,
    adapter_sentences: int | None,
) -> None:
    """The dataset config's ``context_sentences``, unless the target's adapter declares its own."""
    fake_llm.reply(NOT_FOUND_ANSWER)
    dataset = DatasetConfig(qa_files=(squad_file,), eval_fraction=0.5, seed=7, context_sentences=dataset_sentences)
    config = EvalConfig(withheld_fraction=0.25, question_offset=0, limit=4, seed=7)
    declared = None if adapter_sentences is None else AdapterFormat(context_sentences=adapter_sentences)
    target = Target("tuned", fake_llm.base_url, "tuned", prompt_format=declared)

    await evaluate_loop(settings, [target], config, dataset, embedder=embedder)

    assert fake_llm.chat_requests
    for request in fake_llm.chat_requests:
        sources = re.findall(
            r'<source id="\d+" title="[^"]*">\n(.*?)\n</source>', request["messages"][-1]["content"], re.S
        )
        assert len(sources) == 1 and sources[0].count(". ") == 0  # one sentence of one passage, as trained


async def test_follow_up_eval_asks_every_question_after_another_paragraphs_question(
    settings: Settings, embedder: Embedder, squad_file: Path, fake_llm: FakeLLM
) -> None:
    """``follow_up``: each question is the second turn of its own conversation, as a user in a chat asks it."""
    dataset = DatasetConfig(qa_files=(squad_file,), eval_fraction=0.5, seed=7)
    config = EvalConfig(withheld_fraction=0.0, question_offset=0, limit=3, seed=7, follow_up=True)

    await evaluate_loop(settings, [Target("tuned", fake_llm.base_url, "tuned")], config, dataset, embedder=embedder)

    asked = [r for r in fake_llm.chat_requests if r["messages"][-1]["content"].startswith("Sources:")]
    firsts, seconds = asked[0::2], asked[1::2]
    assert len(seconds) == len(firsts) == 3
    for first, second in zip(firsts, seconds, strict=True):
        earlier = first["messages"][-1]["content"].rsplit("Question: ", 1)[1]
        assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "user"]
        assert second["messages"][1]["content"] == earlier and second["messages"][2]["content"].endswith("[1].")
        assert second["messages"][-1]["content"].rsplit("Question: ", 1)[1] != earlier


async def test_referring_follow_up_eval_asks_it_about_what_the_earlier_question_named(
    settings: Settings, embedder: Embedder, squad_file: Path, fake_llm: FakeLLM
) -> None:
    """``refer_back``: the conversation begins with a question naming the same enclosure, the follow-up says "it"."""
    dataset = DatasetConfig(qa_files=(squad_file,), eval_fraction=0.5, seed=7)
    config = EvalConfig(withheld_fraction=0.0, question_offset=0, limit=3, seed=7, follow_up=True, refer_back=True)

    await evaluate_loop(settings, [Target("tuned", fake_llm.base_url, "tuned")], config, dataset, embedder=embedder)

    asked = [r for r in fake_llm.chat_requests if r["messages"][-1]["content"].startswith("Sources:")]
    firsts, seconds = asked[0::2], asked[1::2]
    assert len(seconds) == len(firsts) == 3
    for first, second in zip(firsts, seconds, strict=True):
        earlier = first["messages"][-1]["content"].rsplit("Question: ", 1)[1]
        enclosure = re.search(r"the (\w+) enclosure", earlier)[1]
        follow = second["messages"][-1]["content"].rsplit("Question: ", 1)[1]
        assert enclosure not in follow and " it enclosure" in follow
