"""Readers for curated chat data: JSONL ``messages``, Alpaca ``instruction/input/output`` (JSON array or JSONL,
also the bilingual ``en_*``/``zh_*`` variant and seed tasks with ``instances``) and ShareGPT ``conversations``.

Every record is validated; the first bad one raises :class:`DatasetFormatError` with the file and line, so a
build either uses the whole file or nothing of it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from bot.sft.errors import DatasetFormatError
from bot.sft.example import ROLES, Example, detect_lang

SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}


def read_examples(path: Path, *, source: str) -> list[Example]:
    """All examples in ``path`` (format detected per record); :class:`DatasetFormatError` on the first bad one."""
    examples: list[Example] = []
    for number, unit, record in _records(path):
        try:
            conversations = list(_conversations(record))
        except ValueError as e:
            raise DatasetFormatError(path, number, str(e), unit=unit) from e
        for index, (messages, lang) in enumerate(conversations):
            group = f"{source}:{path.name}:{number}" + (f":{index}" if index else "")
            examples.append(Example(messages=tuple(messages), source=source, group=group, lang=lang))
    return examples


def _records(path: Path) -> Iterator[tuple[int, str, object]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetFormatError(path, 0, f"cannot read file: {e}") from e
    if not text.strip():
        raise DatasetFormatError(path, 1, "file is empty")
    if path.suffix == ".json" or text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as e:
            raise DatasetFormatError(path, e.lineno, f"invalid JSON: {e.msg}") from e
        if not isinstance(items, list):
            raise DatasetFormatError(path, 1, "a .json file must hold an array of records")
        for number, item in enumerate(items, start=1):
            yield number, "item", item
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, "line", json.loads(line)
        except json.JSONDecodeError as e:
            raise DatasetFormatError(path, number, f"invalid JSON: {e.msg}") from e


def _conversations(record: object) -> Iterator[tuple[list[dict[str, str]], str]]:
    """One or more (messages, lang) pairs from one record, whatever its format."""
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    if "messages" in record:
        messages = _checked(record["messages"])
    elif "conversations" in record:
        messages = _checked(_from_sharegpt(record["conversations"]))
    elif "en_instruction" in record or "zh_instruction" in record:
        for lang in ("en", "zh"):
            if f"{lang}_instruction" in record:
                yield _alpaca(record, prefix=f"{lang}_"), lang
        return
    elif "instances" in record:
        for instance in _list(record["instances"], "instances"):
            if not isinstance(instance, dict):
                raise ValueError("every item of 'instances' must be an object")
            messages = _alpaca({"instruction": record.get("instruction"), **instance})
            yield messages, detect_lang(_joined(messages))
        return
    elif "instruction" in record:
        messages = _alpaca(record)
    else:
        raise ValueError("unknown record format: expected 'messages', 'conversations' or 'instruction'/'output'")
    yield messages, detect_lang(_joined(messages))


def _alpaca(record: dict, prefix: str = "") -> list[dict[str, str]]:
    instruction = record.get(f"{prefix}instruction")
    extra = record.get(f"{prefix}input", "") or ""
    output = record.get(f"{prefix}output")
    for name, value in (("instruction", instruction), ("input", extra), ("output", output)):
        if not isinstance(value, str):
            raise ValueError(f"'{prefix}{name}' must be a string")
    prompt = f"{instruction.strip()}\n\n{extra.strip()}" if extra.strip() else instruction
    return _checked([{"role": "user", "content": prompt}, {"role": "assistant", "content": output}])


def _from_sharegpt(turns: object) -> list[dict[str, str]]:
    messages = []
    for turn in _list(turns, "conversations"):
        if not isinstance(turn, dict) or turn.get("from") not in SHAREGPT_ROLES:
            raise ValueError(f"each ShareGPT turn needs 'from' in {sorted(SHAREGPT_ROLES)}")
        messages.append({"role": SHAREGPT_ROLES[turn["from"]], "content": turn.get("value")})
    return messages


def _checked(messages: object) -> list[dict[str, str]]:
    """Messages with known roles and non-empty string content, ending with the assistant's reply."""
    cleaned = []
    for message in _list(messages, "messages"):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise ValueError(f"each message needs a 'role' in {sorted(ROLES)}")
        content = message.get("content")
        if not isinstance(content, str):
            raise ValueError(f"message content must be a string, got {type(content).__name__}")
        cleaned.append({"role": message["role"], "content": content})
    if not any(message["role"] == "user" for message in cleaned):
        raise ValueError("conversation has no user message")
    if cleaned[-1]["role"] != "assistant":
        raise ValueError("conversation must end with an assistant message")
    return cleaned


def _list(value: object, name: str) -> list:
    if not isinstance(value, list) or not value:
        raise ValueError(f"'{name}' must be a non-empty list")
    return value


def _joined(messages: list[dict[str, str]]) -> str:
    return "\n".join(message["content"] for message in messages)
