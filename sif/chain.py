"""The interleaved reasoning chain (FORMATS §1): data types, strict validation, lenient parsing
and canonical rendering.

Strict validation is what the format reward checks; the lenient parser is for everything that
has to live with imperfect text (imports, rollouts, the workbench) and says what it skipped.
Both take untrusted text (a teacher's reply, a model's completion, an import file) and never
raise on it: huge numbers, NaN, deep nesting, NUL bytes and megabytes of text end as problems
(or skipped parts), in time linear in the text.
"""

from __future__ import annotations

import json
import math
import re
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TypeGuard

WHOLE_IMAGE = (0.0, 0.0, 1.0, 1.0)
BBox = tuple[float, float, float, float]


def as_bbox(values: Iterable[float]) -> BBox:
    """The four coordinates of a box as a `Region`'s bbox (a ValueError when there are not four)."""
    x1, y1, x2, y2 = values
    return x1, y1, x2, y2


@dataclass(frozen=True)
class Region:
    """A normalized box `[x1, y1, x2, y2]` and the mean normalized depth under it (0 = near)."""

    bbox: BBox
    depth: float | None = None

    def to_json(self) -> dict:
        out: dict = {"bbox_2d": [float(v) for v in self.bbox]}
        if self.depth is not None:
            out["depth"] = float(self.depth)
        return out

    @classmethod
    def from_json(cls, obj: dict) -> Region:
        depth = obj.get("depth")
        return cls(as_bbox(float(v) for v in obj["bbox_2d"]), None if depth is None else float(depth))

    @property
    def is_whole_image(self) -> bool:
        return tuple(round(v, 3) for v in self.bbox) == WHOLE_IMAGE


@dataclass(frozen=True)
class Step:
    """One focus step: the regions looked at, then what was concluded about them."""

    regions: tuple[Region, ...]
    text: str

    @property
    def boxes(self) -> list[list[float]]:
        return [list(r.bbox) for r in self.regions]


@dataclass(frozen=True)
class Chain:
    steps: tuple[Step, ...]
    answer: str | None

    def to_json(self) -> dict:
        return {
            "steps": [{"regions": [r.to_json() for r in s.regions], "text": s.text} for s in self.steps],
            "answer": self.answer,
        }

    @classmethod
    def from_json(cls, obj: dict) -> Chain:
        steps = tuple(Step(tuple(Region.from_json(r) for r in s["regions"]), s["text"]) for s in obj["steps"])
        return cls(steps, obj.get("answer"))

    @property
    def final_boxes(self) -> list[list[float]]:
        """The last step's boxes (B_end of the grounding reward)."""
        return self.steps[-1].boxes if self.steps else []

    @property
    def initial_boxes(self) -> list[list[float]]:
        """B_init: the first step whose boxes are not the single whole-image box, else the whole image."""
        for s in self.steps:
            if not (len(s.regions) == 1 and s.regions[0].is_whole_image):
                return s.boxes
        return [list(WHOLE_IMAGE)]


@dataclass(frozen=True)
class Problem:
    """One violation of the strict format. `step` is 0-based, None for chain-level problems."""

    rule: int
    field: str
    message: str
    step: int | None = None

    def __str__(self) -> str:
        where = f"step {self.step + 1}, " if self.step is not None else ""
        return f"{where}{self.field}: {self.message}"


@dataclass
class ParseResult:
    chain: Chain
    skipped: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when nothing had to be skipped or guessed."""
        return not self.skipped


# ---------------------------------------------------------------- rendering


def _num(v: float) -> str:
    return f"{float(v):.3f}"


def render_area(regions) -> str:
    parts = []
    for r in regions:
        box = ",".join(_num(v) for v in r.bbox)
        if r.depth is None:
            parts.append(f'{{"bbox_2d":[{box}]}}')
        else:
            parts.append(f'{{"bbox_2d":[{box}],"depth":{_num(r.depth)}}}')
    return "[" + ",".join(parts) + "]"


def render_chain(chain: Chain) -> str:
    """The canonical text of a chain: one tag per line, every number with 3 decimals."""
    lines = ["<think>"]
    for s in chain.steps:
        lines.append(f"<area>{render_area(s.regions)}</area>")
        lines.append(f"<text>{s.text}</text>")
    lines.append("</think>")
    lines.append(f"<answer>{chain.answer if chain.answer is not None else ''}</answer>")
    return "\n".join(lines)


# ---------------------------------------------------------------- untrusted text

SURROGATES = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """`text` made storable: lone surrogates (a `\\ud800` JSON escape, or bytes that were not
    UTF-8 read with surrogateescape) have no UTF-8 form and become U+FFFD.

    >>> clean_text("a\\ud800b")
    'a\ufffdb'
    """
    return SURROGATES.sub("\ufffd", text)


def surrogate_field(value, where: str = "") -> str | None:
    """The field (a dotted path, in order) of the first string in `value` — a JSON-like value,
    keys included — that holds a lone surrogate: text with no UTF-8 form, which cannot be stored.

    >>> surrogate_field({"a": 1, "b": [{"c": "ok"}, {"d": "\\udcff"}]})
    'b[1].d'
    """
    stack: list[tuple[str, object]] = [(where, value)]
    while stack:
        where, v = stack.pop()
        if isinstance(v, str):
            if SURROGATES.search(v):
                return SURROGATES.sub("?", where)
        elif isinstance(v, dict):
            for k in v:
                if isinstance(k, str) and SURROGATES.search(k):
                    return SURROGATES.sub("?", f"{where}.{k}" if where else k)
            stack.extend(reversed([(f"{where}.{k}" if where else str(k), x) for k, x in v.items()]))
        elif isinstance(v, (list, tuple)):
            stack.extend(reversed([(f"{where}[{i}]", x) for i, x in enumerate(v)]))
    return None


# ---------------------------------------------------------------- untrusted JSON


def _not_a_number(name: str):
    raise ValueError(f"{name} is not a number")


# Numbers read exactly (the decimals rule needs them as written, and Decimal has no digit limit);
# NaN and Infinity, which Python's json accepts, are refused.
_EXACT_JSON = json.JSONDecoder(parse_float=Decimal, parse_int=Decimal, parse_constant=_not_a_number)
# Numbers as floats: any integer string converts (to inf beyond ~308 digits, never an error).
_FLOAT_JSON = json.JSONDecoder(parse_int=float, parse_constant=_not_a_number)


def _untrusted_json(decoder: json.JSONDecoder, body: str):
    """(value, None), or (None, why not) for text that is not JSON or not usable JSON."""
    try:
        return decoder.decode(body), None
    except json.JSONDecodeError as exc:
        return None, f"{exc.msg} at character {exc.pos}"
    except RecursionError:
        return None, "nested too deeply"
    except ValueError as exc:  # NaN / Infinity
        return None, str(exc)


def _show(v) -> str:
    """A number for a message: as written, or in short scientific form when it is long."""
    text = str(v)
    return text if len(text) <= 16 else format(v, ".4g")


# ---------------------------------------------------------------- strict validation

_TAG = re.compile(r"</?(think|answer|area|text)>")
_OPEN = re.compile(r"<(area|text)>")


def _decimals(d: Decimal) -> int:
    exp = d.as_tuple().exponent
    return max(0, -exp) if isinstance(exp, int) else 99


def _is_number(v: object) -> TypeGuard[Decimal]:
    return isinstance(v, Decimal) and v.is_finite()


_CANON_NUM = r"(?:0|[1-9]\d*)(?:\.\d{1,3})?"  # a JSON number with at most 3 decimals, no sign or exponent
_CANON_REGION = (
    rf'\{{"bbox_2d":\[({_CANON_NUM}),({_CANON_NUM}),({_CANON_NUM}),({_CANON_NUM})\],"depth":({_CANON_NUM})\}}'
)
_CANON_AREA = re.compile(rf"\[{_CANON_REGION}(?:,{_CANON_REGION})*\]")
_CANON_REGIONS = re.compile(_CANON_REGION)


def _check_canonical_area(body: str, step: int) -> list[Problem]:
    """Rule 4 for an area in the canonical form `render_area` writes (rule 3 holds by its
    shape): what `_check_area` finds, without decoding JSON numbers as Decimals. Numbers of at
    most 3 decimals compare the same as floats, and messages quote them as written."""
    out: list[Problem] = []
    for i, m in enumerate(_CANON_REGIONS.finditer(body)):
        x1, y1, x2, y2, depth = m.groups()
        fx1, fy1, fx2, fy2, fd = (float(v) for v in m.groups())
        tag = f"area[{i}]"
        if not fx1 < fx2 <= 1:
            out.append(Problem(4, f"{tag}.bbox_2d", f"needs 0 ≤ x1 < x2 ≤ 1, got x1={x1}, x2={x2}", step))
        if not fy1 < fy2 <= 1:
            out.append(Problem(4, f"{tag}.bbox_2d", f"needs 0 ≤ y1 < y2 ≤ 1, got y1={y1}, y2={y2}", step))
        if fd > 1:
            out.append(Problem(4, f"{tag}.depth", f"must be between 0 and 1, got {depth}", step))
    return out


def _check_area(body: str, step: int) -> list[Problem]:
    """Rules 3 and 4 for one `<area>` body."""
    if _CANON_AREA.fullmatch(body):
        return _check_canonical_area(body, step)

    def problem(rule, fld, msg):
        return Problem(rule, fld, msg, step)

    regions, why = _untrusted_json(_EXACT_JSON, body)
    if why is not None:
        return [problem(3, "area", f"is not valid JSON ({why})")]
    if not isinstance(regions, list) or not regions:
        return [problem(3, "area", "must be a JSON list of one or more regions")]
    out: list[Problem] = []
    for i, reg in enumerate(regions):
        tag = f"area[{i}]"
        if not isinstance(reg, dict):
            out.append(problem(3, tag, "must be an object with bbox_2d and depth"))
            continue
        extra = set(reg) - {"bbox_2d", "depth"}
        if extra:
            out.append(problem(3, tag, f"has unexpected keys {sorted(extra)}"))
        box = reg.get("bbox_2d")
        if not isinstance(box, list) or len(box) != 4 or not all(_is_number(v) for v in box):
            out.append(problem(3, f"{tag}.bbox_2d", "must be a list of 4 numbers"))
        else:
            x1, y1, x2, y2 = box
            if not (0 <= x1 < x2 <= 1):
                out.append(problem(4, f"{tag}.bbox_2d", f"needs 0 ≤ x1 < x2 ≤ 1, got x1={_show(x1)}, x2={_show(x2)}"))
            if not (0 <= y1 < y2 <= 1):
                out.append(problem(4, f"{tag}.bbox_2d", f"needs 0 ≤ y1 < y2 ≤ 1, got y1={_show(y1)}, y2={_show(y2)}"))
            if any(_decimals(v) > 3 for v in box):
                out.append(problem(4, f"{tag}.bbox_2d", "numbers may have at most 3 decimals"))
        depth = reg.get("depth")
        if "depth" not in reg:
            out.append(problem(3, f"{tag}.depth", "is missing"))
        elif not _is_number(depth):
            out.append(problem(3, f"{tag}.depth", "must be a number"))
        else:
            if not (0 <= depth <= 1):
                out.append(problem(4, f"{tag}.depth", f"must be between 0 and 1, got {_show(depth)}"))
            if _decimals(depth) > 3:
                out.append(problem(4, f"{tag}.depth", "may have at most 3 decimals"))
    return out


def validate_chain(text: str) -> list[Problem]:
    """Every way `text` breaks the strict format of FORMATS §1; an empty list means valid.

    >>> validate_chain('<think><area>[{"bbox_2d":[0,0,1,1],"depth":0.5}]</area><text>a</text></think><answer>b</answer>')
    []
    """
    problems: list[Problem] = []
    opens = {t: text.count(f"<{t}>") for t in ("think", "answer")}
    closes = {t: text.count(f"</{t}>") for t in ("think", "answer")}
    for t in ("think", "answer"):
        if opens[t] != 1 or closes[t] != 1:
            problems.append(
                Problem(1, t, f"needs exactly one <{t}>…</{t}>, found {opens[t]} opening and {closes[t]} closing tags")
            )
    if problems:
        return problems
    m = re.fullmatch(r"\s*<think>(.*)</think>\s*<answer>(.*)</answer>\s*", text, re.S)
    if not m:
        return [
            Problem(
                1, "chain", "must be <think>…</think> followed by <answer>…</answer>, with nothing else around them"
            )
        ]
    think, answer = m.group(1), m.group(2)
    if not answer.strip():
        problems.append(Problem(1, "answer", "is empty"))

    canonical = _check_canonical_steps(think)
    return problems + (canonical if canonical is not None else _check_steps(think))


def _check_steps(think: str) -> list[Problem]:
    """Rules 2–5 for any `<think>` body."""
    problems: list[Problem] = []
    # Rule 2: only <area>/<text> pairs inside <think>, strictly alternating.
    pos, expect, step, pairs = 0, "area", 0, 0
    for start, end, tag, body in _elements(think):
        gap = think[pos:start]
        if gap.strip():
            problems.append(
                Problem(2, "think", f"has stray text {gap.strip()[:40]!r} outside <area>/<text> tags", step)
            )
        if _TAG.search(body):
            problems.append(Problem(2, tag, "contains a nested or unclosed tag", step))
        if tag != expect:
            problems.append(
                Problem(
                    2, tag, f"expected <{expect}> here: <area> and <text> must alternate, starting with <area>", step
                )
            )
        elif tag == "area":
            problems.extend(_check_area(body, step))
            expect = "text"
        else:
            if not body.strip():
                problems.append(Problem(5, "text", "is empty", step))
            expect, step, pairs = "area", step + 1, pairs + 1
        pos = end
    gap = think[pos:]
    if gap.strip():
        problems.append(Problem(2, "think", f"has stray text {gap.strip()[:40]!r} outside <area>/<text> tags"))
    if pairs == 0:
        problems.append(Problem(2, "think", "needs at least one <area>…</area><text>…</text> pair"))
    elif expect == "text":
        problems.append(Problem(2, "think", "must end with </text>: the last <area> has no <text>", step))
    return problems


_CANON_STEP = re.compile(rf"\s*<area>(?P<area>{_CANON_AREA.pattern})</area>\s*<text>(?P<text>[^<]*)</text>")


def _check_canonical_steps(think: str) -> list[Problem] | None:
    """Rules 2–5 for a `<think>` body made only of steps in the form `render_chain` writes, in
    one pass (a 10,000-step chain is checked as the curator opens it); None for any other body,
    which the general rules then check. Finds what they would: such a body has no stray text
    and no nested tags, so only the areas' numbers and empty texts can be wrong."""
    problems: list[Problem] = []
    pos, step = 0, 0
    while m := _CANON_STEP.match(think, pos):
        area, text = m.group("area", "text")
        problems.extend(_check_canonical_area(area, step))
        if not text.strip():
            problems.append(Problem(5, "text", "is empty", step))
        pos, step = m.end(), step + 1
    if step == 0 or think[pos:].strip():
        return None
    return problems


def _elements(think: str):
    """(start, end, tag, body) of each `<area>…</area>` / `<text>…</text>`, left to right: what
    repeated searches for `<(area|text)>(.*?)</\\1>` would find, but in linear time (those
    searches rescan the rest of the text for every unclosed tag)."""
    closes = {t: [m.start() for m in re.finditer(f"</{t}>", think)] for t in ("area", "text")}
    pos = 0
    for m in _OPEN.finditer(think):
        if m.start() < pos:
            continue  # inside the previous element's body
        tag, positions = m.group(1), closes[m.group(1)]
        k = bisect_left(positions, m.end())
        if k == len(positions):
            continue  # never closed: part of the text around the elements
        close = positions[k]
        pos = close + len(tag) + 3
        yield m.start(), pos, tag, think[m.end() : close]


# ---------------------------------------------------------------- lenient parsing

_LENIENT = re.compile(
    r"<(?P<tag>area|text|answer)>(?P<body>.*?)(?:</(?P=tag)>|(?=<area>|<text>|</think>|<answer>|</answer>)|\Z)",
    re.S,
)
_NUM = r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"


MAX_COORDINATE = 1e9  # beyond any pixel coordinate: a larger number is unreadable, not a box


def _coordinate(v) -> float:
    """A number the lenient parser keeps (a finite int or float within ±MAX_COORDINATE), else ValueError."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"{type(v).__name__} is not a number")
    if not (math.isfinite(v) and abs(v) <= MAX_COORDINATE):
        raise ValueError(f"{_show(v)} is out of range")
    return float(v)


def _lenient_regions(body: str, step: int, skipped: list[str]) -> list[Region]:
    data, why = _untrusted_json(_FLOAT_JSON, body)
    if why is None:
        items = data if isinstance(data, list) else [data]
    else:
        # Salvage region objects one by one from broken JSON.
        items = []
        for m in re.finditer(r'"bbox_2d"\s*:\s*\[([^\]]*)\](?:\s*,\s*"depth"\s*:\s*(' + _NUM + "))?", body):
            nums = [float(n) for n in re.findall(_NUM, m.group(1))]
            items.append({"bbox_2d": nums, **({"depth": float(m.group(2))} if m.group(2) else {})})
        skipped.append(f"step {step + 1}: area is not valid JSON; recovered {len(items)} region(s)")
    regions = []
    for i, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise ValueError(f"expected an object, got {type(item).__name__}")
            box = item.get("bbox_2d")
            if not isinstance(box, list) or len(box) != 4:
                raise ValueError("bbox_2d needs a list of 4 numbers")
            depth = item.get("depth")
            regions.append(Region(as_bbox(map(_coordinate, box)), None if depth is None else _coordinate(depth)))
        except ValueError as exc:
            skipped.append(f"step {step + 1}: region {i + 1} skipped ({exc})")
    return regions


def parse_chain(text: str) -> ParseResult:
    """Recover every step and the answer that can be read from `text`, noting what was skipped.

    >>> r = parse_chain('<area>[{"bbox_2d":[0,0,1,1]}]</area><text>look</text> stray <answer>2')
    >>> len(r.chain.steps), r.chain.answer
    (1, '2')
    """
    skipped: list[str] = []
    steps: list[Step] = []
    answer: str | None = None
    pending: list[Region] | None = None
    for m in _LENIENT.finditer(text):
        tag, body = m.group("tag"), m.group("body")
        if not m.group(0).endswith(f"</{tag}>"):
            skipped.append(f"step {len(steps) + 1}: <{tag}> is not closed")
        if tag == "area":
            if pending is not None:
                skipped.append(f"step {len(steps) + 1}: area has no text")
                steps.append(Step(tuple(pending), ""))
            pending = _lenient_regions(body, len(steps), skipped)
        elif tag == "text":
            if pending is None:
                skipped.append(f"step {len(steps) + 1}: text without an area skipped")
                continue
            steps.append(Step(tuple(pending), body.strip()))
            pending = None
        else:
            if answer is not None:
                skipped.append("a second <answer> was ignored")
                continue
            answer = body.strip()
    if pending is not None:
        skipped.append(f"step {len(steps) + 1}: area has no text")
        steps.append(Step(tuple(pending), ""))
    if answer is None:
        skipped.append("no <answer>")
    return ParseResult(Chain(tuple(steps), answer), first_notes(skipped))


MAX_NOTES = 50  # notes kept about one text: hostile text can have a problem every few characters


def first_notes(notes: list[str], limit: int = MAX_NOTES) -> list[str]:
    """`notes`, the ones beyond `limit` counted instead of listed (the last note is kept)."""
    if len(notes) <= limit:
        return notes
    return [*notes[: limit - 2], f"… and {len(notes) - limit + 1} more", notes[-1]]
