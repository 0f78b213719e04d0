"""The one reader of annotation files: a JSON list or JSON Lines, record by record.

Import files, exports and benchmark files are untrusted: a record that cannot be read comes back
as a `RecordError` at its position and the caller carries on with the next one, so one broken
line never costs the rest of the file. Positions read `path[3]` (a list) or `path:12` (a line).
A byte-order mark is skipped; bytes that are not UTF-8, and `\\ud800`-style escapes that encode
no character, make their record's error (naming the field), not the file's.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "r.jsonl"
>>> _ = path.write_text('{"a": 1}\\n[2]\\n{"a": \\n')
>>> [(where.split("/")[-1], str(r)) for where, r in read_records(path)]
[('r.jsonl:1', "{'a': 1}"), ('r.jsonl:2', 'record: expected a JSON object, got list'), ('r.jsonl:3', 'json: line 3 is not JSON (Expecting value, column 7)')]
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

from sif.chain import surrogate_field
from sif.errors import RecordError


def _number(digits: str) -> int | float:
    """JSON integers longer than any real count or size read as floats (inf beyond ~308 digits),
    so a hostile number becomes a field's problem instead of an error that stops the file."""
    return int(digits) if len(digits) <= 30 else float(digits)


_DECODER = json.JSONDecoder(parse_int=_number)
_WHITESPACE = " \t\n\r"


def read_records(path: str | os.PathLike) -> Iterator[tuple[str, dict | RecordError]]:
    """(position, record) for every record of `path`; unreadable records are `RecordError`s."""
    p = Path(path)
    # A byte-order mark is not part of the data; bytes that are not UTF-8 are kept as surrogates
    # (surrogateescape), which `_object` reports against the record that holds them.
    text = p.read_bytes().decode("utf-8-sig", errors="surrogateescape")
    start = _skip(text, 0)
    if text.startswith("[", start):
        yield from _list_records(str(p), text, start + 1)
    else:
        yield from _line_records(str(p), text)


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WHITESPACE:
        i += 1
    return i


def _why(exc: Exception) -> str:
    return "nested too deeply" if isinstance(exc, RecursionError) else str(exc).split(";")[0]


def _object(value) -> dict | RecordError:
    if not isinstance(value, dict):
        return RecordError(f"expected a JSON object, got {type(value).__name__}", field="record")
    where = surrogate_field(value)
    if where is not None:
        return RecordError(
            "holds bytes that are not UTF-8 text, or a \\ud800-style escape of no character", field=where
        )
    return value


def _decode(text: str, i: int):
    """(value, end) of the JSON value at `i`, or a RecordError saying why not."""
    try:
        return _DECODER.raw_decode(text, i)
    except json.JSONDecodeError as exc:
        return RecordError(f"not JSON ({exc.msg}, line {exc.lineno} column {exc.colno})", field="json"), None
    except (ValueError, RecursionError) as exc:  # a number too long to convert; nesting too deep
        return RecordError(f"cannot be read ({_why(exc)})", field="json"), None


def _list_records(name: str, text: str, i: int) -> Iterator[tuple[str, dict | RecordError]]:
    """The elements of a JSON list, one at a time; a broken element ends the list (nothing after it
    can be found reliably), after the ones before it."""
    k = 0
    i = _skip(text, i)
    if text.startswith("]", i):
        return
    while True:
        value, end = _decode(text, i)
        if end is None:
            yield f"{name}[{k}]", value
            return
        yield f"{name}[{k}]", _object(value)
        k += 1
        i = _skip(text, end)
        if text.startswith("]", i):
            if _skip(text, i + 1) != len(text):
                yield f"{name}[{k}]", RecordError("text after the end of the list", field="json")
            return
        if not text.startswith(",", i):
            yield (
                f"{name}[{k}]",
                RecordError("expected ',' or ']' after the previous record (truncated?)", field="json"),
            )
            return
        i = _skip(text, i + 1)


def _line_records(name: str, text: str) -> Iterator[tuple[str, dict | RecordError]]:
    for n, line in enumerate(text.split("\n"), 1):  # not splitlines(): U+2028 may sit inside a string
        if not line.strip():
            continue
        try:
            value = _DECODER.decode(line)
        except json.JSONDecodeError as exc:
            yield (
                f"{name}:{n}",
                RecordError(f"line {n} is not JSON ({exc.msg}, column {exc.colno})", field="json"),
            )
            continue
        except (ValueError, RecursionError) as exc:
            yield f"{name}:{n}", RecordError(f"line {n} cannot be read ({_why(exc)})", field="json")
            continue
        yield f"{name}:{n}", _object(value)
