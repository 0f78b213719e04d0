"""Strict-format checks over files: a single chain, or every assistant message of a SIF-50K JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path

from sif.chain import Problem, validate_chain


def _assistant_text(record) -> str | None:
    if not isinstance(record, dict):
        return None
    for message in reversed(record.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "assistant":
            return str(message.get("content", ""))
    return None


def validate_file(path: str | os.PathLike) -> list[tuple[str, list[Problem]]]:
    """(record name, problems) for every chain in `path`; an empty problem list means valid.

    A `.json` file is read as a list of SIF-50K records (named by their `id`, else their index);
    any other file is one chain.
    """
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    if p.suffix.lower() != ".json":
        return [(p.name, validate_chain(text))]
    try:
        records = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{p}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(records, list):
        raise ValueError(f"{p}: expected a JSON list of SIF-50K records")
    results = []
    for i, record in enumerate(records):
        name = str(record.get("id", f"record {i}")) if isinstance(record, dict) else f"record {i}"
        chain = _assistant_text(record)
        if chain is None:
            results.append((name, [Problem(1, "messages", "has no assistant message")]))
        else:
            results.append((name, validate_chain(chain)))
    return results
