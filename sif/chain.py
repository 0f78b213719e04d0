"""The interleaved reasoning chain (FORMATS §1): data types, strict validation, lenient parsing
and canonical rendering.

Strict validation is what the format reward checks; the lenient parser is for everything that
has to live with imperfect text (imports, rollouts, the workbench) and says what it skipped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

WHOLE_IMAGE = (0.0, 0.0, 1.0, 1.0)


@dataclass(frozen=True)
class Region:
    """A normalized box `[x1, y1, x2, y2]` and the mean normalized depth under it (0 = near)."""

    bbox: tuple[float, float, float, float]
    depth: float | None = None

    def to_json(self) -> dict:
        out: dict = {"bbox_2d": [float(v) for v in self.bbox]}
        if self.depth is not None:
            out["depth"] = float(self.depth)
        return out

    @classmethod
    def from_json(cls, obj: dict) -> Region:
        depth = obj.get("depth")
        return cls(tuple(float(v) for v in obj["bbox_2d"]), None if depth is None else float(depth))

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


# ---------------------------------------------------------------- strict validation

_TAG = re.compile(r"</?(think|answer|area|text)>")


def _decimals(d: Decimal) -> int:
    exp = d.as_tuple().exponent
    return max(0, -exp) if isinstance(exp, int) else 99


def _is_number(v) -> bool:
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

    try:
        regions = json.loads(body, parse_float=Decimal, parse_int=Decimal)
    except (json.JSONDecodeError, InvalidOperation) as exc:
        return [problem(3, "area", f"is not valid JSON ({exc.msg} at character {exc.pos})")]
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
                out.append(problem(4, f"{tag}.bbox_2d", f"needs 0 ≤ x1 < x2 ≤ 1, got x1={x1}, x2={x2}"))
            if not (0 <= y1 < y2 <= 1):
                out.append(problem(4, f"{tag}.bbox_2d", f"needs 0 ≤ y1 < y2 ≤ 1, got y1={y1}, y2={y2}"))
            if any(_decimals(v) > 3 for v in box):
                out.append(problem(4, f"{tag}.bbox_2d", "numbers may have at most 3 decimals"))
        depth = reg.get("depth")
        if "depth" not in reg:
            out.append(problem(3, f"{tag}.depth", "is missing"))
        elif not _is_number(depth):
            out.append(problem(3, f"{tag}.depth", "must be a number"))
        else:
            if not (0 <= depth <= 1):
                out.append(problem(4, f"{tag}.depth", f"must be between 0 and 1, got {depth}"))
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

    # Rule 2: only <area>/<text> pairs inside <think>, strictly alternating.
    pos, expect, step, pairs = 0, "area", 0, 0
    pattern = re.compile(r"<(area|text)>(.*?)</\1>", re.S)
    while True:
        nxt = pattern.search(think, pos)
        gap = think[pos : nxt.start() if nxt else len(think)]
        if gap.strip():
            problems.append(
                Problem(
                    2, "think", f"has stray text {gap.strip()[:40]!r} outside <area>/<text> tags", step if nxt else None
                )
            )
        if nxt is None:
            break
        tag, body = nxt.group(1), nxt.group(2)
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
        pos = nxt.end()
    if pairs == 0:
        problems.append(Problem(2, "think", "needs at least one <area>…</area><text>…</text> pair"))
    elif expect == "text":
        problems.append(Problem(2, "think", "must end with </text>: the last <area> has no <text>", step))
    return problems


# ---------------------------------------------------------------- lenient parsing

_LENIENT = re.compile(
    r"<(?P<tag>area|text|answer)>(?P<body>.*?)(?:</(?P=tag)>|(?=<area>|<text>|</think>|<answer>|</answer>)|\Z)",
    re.S,
)
_NUM = r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"


def _lenient_regions(body: str, step: int, skipped: list[str]) -> list[Region]:
    try:
        data = json.loads(body)
        items = data if isinstance(data, list) else [data]
    except json.JSONDecodeError:
        # Salvage region objects one by one from broken JSON.
        items = []
        for m in re.finditer(r'"bbox_2d"\s*:\s*\[([^\]]*)\](?:\s*,\s*"depth"\s*:\s*(' + _NUM + "))?", body):
            nums = re.findall(_NUM, m.group(1))
            items.append({"bbox_2d": nums, **({"depth": m.group(2)} if m.group(2) else {})})
        skipped.append(f"step {step + 1}: area is not valid JSON; recovered {len(items)} region(s)")
    regions = []
    for i, item in enumerate(items):
        try:
            box = [float(v) for v in item["bbox_2d"]]
            if len(box) != 4:
                raise ValueError("bbox_2d needs 4 numbers")
            depth = item.get("depth")
            regions.append(Region(tuple(box), None if depth is None else float(depth)))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
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
    return ParseResult(Chain(tuple(steps), answer), skipped)
