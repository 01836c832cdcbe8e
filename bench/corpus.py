"""A realistic retrieval corpus from the shared QA and instruction texts, at any size, with real questions.

Every SQuAD v1.1 (English) and CMRC 2018 (Chinese) paragraph is one chunk (the *gold* chunks); the rest are made
from the same texts: sentences of one article recombined in shuffled order (topical distractors sharing the gold
paragraph's vocabulary), and shuffled Alpaca answers in English or Chinese (off-topic text). Chunks start with
their title like the chunker's ("title\\n\\nbody"), in shuffled order. Queries are the data sets' real questions.
A question counts as answered by any chunk holding one of its reference answers (its own paragraph, or a
recombination that kept the answering sentence): the top-k accuracy of open-domain QA.

Embedding 100k-1M texts on a 2-core CPU is out of reach, so vectors are synthetic (and reported as such):
each article has a random centre, each paragraph a vector around it, a recombined chunk the mean of its source
paragraphs' vectors plus noise, an Alpaca chunk a vector around one of a few hundred topic centres, and a
question a noisy copy of its paragraph's vector.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SQUAD = DATA / "qa" / "squad-v1.1-dev-part-a.json"
CMRC = (DATA / "qa" / "cmrc2018-dev-part-a.json", DATA / "qa" / "cmrc2018-trial.json")
ALPACA = sorted((DATA / "instructions").glob("alpaca-bilingual-part-*.json"))
DIM = 384
MAX_SOURCES = 7
INSTRUCTION_TOPICS = 300
_SENTENCE = {"en": re.compile(r"(?<=[.!?])\s+"), "zh": re.compile(r"(?<=[。！？])")}


@dataclass(slots=True)
class Article:
    title: str
    language: str
    paragraphs: list[str]
    questions: list[tuple[str, int, tuple[str, ...]]] = field(default_factory=list)  # (question, paragraph, answers)


@dataclass(frozen=True, slots=True)
class Query:
    text: str
    language: str
    gold: int  # ordinal of its paragraph's chunk
    answers: tuple[str, ...]  # a chunk holding one of them answers the question


@dataclass(frozen=True, slots=True)
class Corpus:
    texts: list[str]
    vectors: np.ndarray  # (len(texts), DIM) unit rows
    queries: list[Query]
    query_vectors: np.ndarray
    make_up: dict[str, int]


def _articles() -> list[Article]:
    articles = []
    sources = [(SQUAD, "en"), *((path, "zh") for path in CMRC)]
    for path, language in sources:
        for entry in json.loads(path.read_text(encoding="utf-8"))["data"]:
            paragraphs = [p["context"].strip() for p in entry["paragraphs"]]
            title = (entry.get("title") or paragraphs[0][:20]).replace("_", " ")
            article = Article(title, language, paragraphs)
            article.questions = [
                (qa["question"], i, tuple({a["text"].strip() for a in qa["answers"] if a["text"].strip()}))
                for i, p in enumerate(entry["paragraphs"])
                for qa in p["qas"]
            ]
            articles.append(article)
    return articles


def _instructions() -> dict[str, list[tuple[str, str]]]:
    """(instruction, answer) pairs per language."""
    pairs: dict[str, list[tuple[str, str]]] = {"en": [], "zh": []}
    for path in ALPACA:
        for item in json.loads(path.read_text(encoding="utf-8")):
            for language in pairs:
                if item[f"{language}_output"].strip():
                    pairs[language].append(
                        (item[f"{language}_instruction"].strip(), item[f"{language}_output"].strip())
                    )
    return pairs


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def _noise(rng: np.random.Generator, rows: int, norm: float) -> np.ndarray:
    return rng.normal(scale=norm / np.sqrt(DIM), size=(rows, DIM)).astype(np.float32)


def build_corpus(chunks: int, queries_en: int, queries_zh: int, seed: int, english_share: float = 0.7) -> Corpus:
    """``chunks`` chunk texts with synthetic vectors, and the sampled questions with theirs."""
    rng = np.random.default_rng(seed)
    articles = _articles()
    instructions = _instructions()
    # anchors: one vector per paragraph, then one per instruction topic
    paragraph_ids = [[0] * len(a.paragraphs) for a in articles]
    centres = _unit(rng.normal(size=(len(articles), DIM)))
    anchors_list, next_id = [], 0
    for a, article in enumerate(articles):
        anchors_list.append(_unit(centres[a] + _noise(rng, len(article.paragraphs), 0.8)))
        paragraph_ids[a] = list(range(next_id, next_id + len(article.paragraphs)))
        next_id += len(article.paragraphs)
    topic_base = next_id
    anchors = np.concatenate([*anchors_list, _unit(rng.normal(size=(INSTRUCTION_TOPICS, DIM)))])

    texts: list[str] = []
    sources = np.full((chunks, MAX_SOURCES), -1, dtype=np.int64)
    gold: dict[tuple[int, int], int] = {}
    for a, article in enumerate(articles):
        for p, paragraph in enumerate(article.paragraphs):
            if len(texts) < chunks:
                gold[(a, p)] = len(texts)
                sources[len(texts), 0] = paragraph_ids[a][p]
                texts.append(f"{article.title}\n\n{paragraph}")
    sentences = [
        [
            (s, p)
            for p, paragraph in enumerate(article.paragraphs)
            for s in _SENTENCE[article.language].split(paragraph)
            if s.strip()
        ]
        for article in articles
    ]
    by_language = {lang: [a for a, art in enumerate(articles) if art.language == lang] for lang in ("en", "zh")}
    weights = {
        lang: np.array([len(articles[a].paragraphs) for a in ids], dtype=float)
        / sum(len(articles[a].paragraphs) for a in ids)
        for lang, ids in by_language.items()
    }
    made = {"recombined_en": 0, "recombined_zh": 0, "instructions_en": 0, "instructions_zh": 0}
    while len(texts) < chunks:
        language = "en" if rng.random() < english_share else "zh"
        row = len(texts)
        if rng.random() < 0.6:
            a = int(rng.choice(by_language[language], p=weights[language]))
            pool = sentences[a]
            picked = rng.choice(len(pool), size=min(len(pool), int(rng.integers(3, MAX_SOURCES + 1))), replace=False)
            joiner = " " if language == "en" else ""
            texts.append(f"{articles[a].title}\n\n" + joiner.join(pool[i][0] for i in picked))
            used = sorted({paragraph_ids[a][pool[i][1]] for i in picked})
            sources[row, : len(used)] = used
            made[f"recombined_{language}"] += 1
        else:
            pairs = instructions[language]
            picked = rng.choice(len(pairs), size=int(rng.integers(2, 5)), replace=False)
            texts.append(pairs[picked[0]][0] + "\n\n" + "\n\n".join(pairs[i][1] for i in picked))
            sources[row, 0] = topic_base + int(picked[0]) % INSTRUCTION_TOPICS
            made[f"instructions_{language}"] += 1
    vectors = np.empty((chunks, DIM), dtype=np.float32)
    for start in range(0, chunks, 50_000):
        block = sources[start : start + 50_000]
        mask = (block >= 0)[..., None]
        mean = (anchors[np.maximum(block, 0)] * mask).sum(axis=1) / mask.sum(axis=1)
        vectors[start : start + 50_000] = _unit(mean + _noise(rng, len(block), 0.5))

    # shuffled, so that the gold paragraphs are not the first rows on disk
    permutation = rng.permutation(chunks)
    texts = [texts[i] for i in permutation]
    vectors = vectors[permutation]
    order = np.argsort(permutation)  # old ordinal -> new ordinal
    asked = []
    for language, wanted in (("en", queries_en), ("zh", queries_zh)):
        candidates = [
            Query(question, language, int(order[gold[(a, p)]]), answers)
            for a in by_language[language]
            for question, p, answers in articles[a].questions
            if (a, p) in gold and answers
        ]
        asked += [candidates[i] for i in rng.choice(len(candidates), size=min(wanted, len(candidates)), replace=False)]
    query_vectors = _unit(vectors[[q.gold for q in asked]] + _noise(rng, len(asked), 1.0))
    make_up = {"gold_paragraphs": len(gold), **made}
    return Corpus(texts, vectors, asked, query_vectors, make_up)
