"""Strict-format checks over files: a single chain, or every assistant message of a SIF-50K JSON."""

from __future__ import annotations

import os
from pathlib import Path

from sif.chain import Problem, validate_chain
from sif.errors import RecordError
from sif.records import read_records


def _assistant_text(record: dict) -> str | None:
    """The last assistant message's text; None when there is none (or it is not text)."""
    messages = record.get("messages")
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role") == "assistant":
            content = message.get("content")
            return content if isinstance(content, str) else None
    return None


def validate_file(path: str | os.PathLike) -> list[tuple[str, list[Problem]]]:
    """(record name, problems) for every chain in `path`; an empty problem list means valid.

    A `.json` file is read as a list of SIF-50K records (named by their `id`, else their index);
    any other file is one chain.
    """
    p = Path(path)
    if p.suffix.lower() != ".json":
        return [(p.name, validate_chain(p.read_bytes().decode("utf-8", errors="replace")))]
    results = []
    for i, (_, record) in enumerate(read_records(p)):
        if isinstance(record, RecordError):
            results.append((f"record {i}", [Problem(1, record.field or "record", str(record))]))
            continue
        rid = record.get("id")
        name = str(rid) if isinstance(rid, (str, int)) and not isinstance(rid, bool) else f"record {i}"
        chain = _assistant_text(record)
        if chain is None:
            results.append((name, [Problem(1, "messages", "has no assistant message with text")]))
        else:
            results.append((name, validate_chain(chain)))
    return results
