"""Adapters from each benchmark's public release format to `EvalRecord`.

Every adapter reads one file (JSON, or JSON Lines) plus an image folder and returns the records
it could build and a message for each record it could not (naming the record and the field),
so a bad record never stops a run. Image paths are resolved against `images` (default: the
data file's folder); whether the image exists is checked by the runner, which reports it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from evaluation.choices import LETTERS
from evaluation.records import BENCHMARK_KINDS, EvalRecord
from sif.errors import ConfigError, RecordError
from sif.geometry import to_normalized
from sif.records import read_records

# The paper's REC request (Fig. 8; the reference evaluation script uses this sentence).
REC_PROMPT = "Please provide the bounding box coordinate of the region this sentence describes: {expression}."
# The OVD request of VLM-R1's OVDEval evaluation (GRPO-SIF's code base), with the answer format
# its rewards expect: a JSON list of labelled boxes, or None.
OVD_PROMPT = (
    "Please carefully check the image and detect the following objects: {labels}. "
    'Output each detected target\'s bbox coordinates in JSON format: [{{"bbox_2d": [x1, y1, x2, y2], '
    '"label": "target name"}}, ...]. If there are no such targets in the image, simply respond with None.'
)
MC_INSTRUCTION = "Answer with the option's letter from the given choices directly."
# SAT's question-answer format (SAT paper, Appendix A.3): the options as text, no letters.
SAT_OPTIONS = "Choose between the following options: {options}."
# VLMEvalKit's multiple-choice prompt for MMBench.
MMBENCH_SELECT = "Please select the correct answer from the options above."
CIRCULAR_OFFSET = 1_000_000  # MMBench TSVs number a question's circular copies index + k · 1e6
SPATIALBENCH_PAIRED = ("existence", "size", "reach")
PNG_SIGNATURE = b"\x89PNG"  # categories SpatialBot scores in pairs of questions


@dataclass
class Loaded:
    records: list[EvalRecord] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _need(row: dict, key: str):
    if not isinstance(row, dict) or key not in row or row[key] is None:
        raise RecordError(f"field {key!r} is missing")
    return row[key]


def depth_picture(image: Path) -> str | None:
    """The depth picture a model is shown with `image`: `NAME_d.png` beside it (the layout of the
    reference scripts), or None (the backend estimates one). Every adapter finds it here."""
    cand = image.with_name(f"{image.stem}_d.png")
    return str(cand) if cand.is_file() else None


def _collect(path: Path, make: Callable[[str, dict], EvalRecord | None]) -> Loaded:
    out = Loaded()
    for where, row in read_records(path):
        try:
            if isinstance(row, RecordError):
                raise row
            rec = make(where, row)
        except (RecordError, KeyError, TypeError, ValueError, IndexError) as exc:
            out.problems.append(f"{where}: {exc}")
            continue
        if rec is not None:
            out.records.append(rec)
    return out


def _lettered(question: str, choices: list[str]) -> str:
    options = "\n".join(f"({LETTERS[i]}) {c}" for i, c in enumerate(choices))
    return f"{question.strip()}\n{options}\n{MC_INSTRUCTION}"


def _pixel_box(box, width: int, height: int, where: str = "bbox") -> list[float]:
    if not (isinstance(box, (list, tuple)) and len(box) == 4):
        raise RecordError(f"field {where!r} must be 4 numbers")
    if not (width and height):
        raise RecordError("fields 'width' and 'height' are needed to normalize the box")
    x1, y1, x2, y2 = (float(v) for v in box)
    if not (x2 > x1 and y2 > y1):
        raise RecordError(f"field {where!r} is not a box with x1 < x2 and y1 < y2: {box}")
    return to_normalized([x1, y1, x2, y2], width, height)


# ---------------------------------------------------------------- REC


def load_rec(path: Path, images: Path) -> Loaded:
    """RefCOCO / RefCOCO+ / RefCOCOg records (`img_path`, `expression`, pixel `bbox` x1y1x2y2)."""

    def make(where, row):
        width, height = int(_need(row, "width")), int(_need(row, "height"))
        dataset = str(row.get("dataset_name", "refcoco")).split("/")[-1]
        split = str(row.get("split", "val"))
        image = images / Path(str(_need(row, "img_path"))).name
        rid = row.get("sent_id", row.get("id", where))
        return EvalRecord(
            id=f"{dataset}-{split}-{rid}",
            kind="rec",
            dataset=dataset,
            question=REC_PROMPT.format(expression=str(_need(row, "expression")).strip()),
            image=str(image),
            width=width,
            height=height,
            depth_image=depth_picture(image),
            gt_boxes=[_pixel_box(_need(row, "bbox"), width, height)],
            category=f"{dataset}/{split}",
            meta={"image_id": row.get("image_id"), "expression": row["expression"]},
        )

    return _collect(path, make)


# ---------------------------------------------------------------- OVD


def load_ovd(path: Path, images: Path) -> Loaded:
    """One OVDEval sub-task file (COCO-style: `categories`, `annotations` with pixel xywh boxes,
    `images` with positive `text` and hard-negative `neg_text` labels); one record per image."""
    data = json.loads(path.read_text(encoding="utf-8"))
    task = path.stem
    out = Loaded()
    try:
        names = {c["id"]: c["name"] for c in _need(data, "categories")}
        anns = _need(data, "annotations")
        image_rows = _need(data, "images")
    except (RecordError, KeyError, TypeError) as exc:
        out.problems.append(f"{path.name}: {exc}")
        return out
    by_image: dict = {}
    for i, ann in enumerate(anns):
        by_image.setdefault(ann.get("image_id"), []).append((i, ann))
    for i, row in enumerate(image_rows):
        where = f"{path.name} images[{i}]"
        try:
            width, height = int(_need(row, "width")), int(_need(row, "height"))
            labels = [str(t) for t in list(_need(row, "text")) + list(row.get("neg_text") or [])]
            objects = []
            for j, ann in by_image.get(row.get("id"), []):
                x, y, w, h = (float(v) for v in ann["bbox"])
                name = names.get(ann.get("category_id"))
                if name is None:
                    raise RecordError(f"annotations[{j}].category_id {ann.get('category_id')!r} is not a category")
                objects.append((name, _pixel_box([x, y, x + w, y + h], width, height, f"annotations[{j}].bbox")))
            image = images / str(_need(row, "file_name"))
            out.records.append(
                EvalRecord(
                    id=f"{task}-{row['id']}",
                    kind="ovd",
                    dataset="ovdeval",
                    category=task,
                    question=OVD_PROMPT.format(labels="; ".join(labels)),
                    image=str(image),
                    width=width,
                    height=height,
                    depth_image=depth_picture(image),
                    labels=labels,
                    objects=objects,
                    gt_boxes=[b for _, b in objects],
                    meta={"image_id": row["id"]},
                )
            )
        except (RecordError, KeyError, TypeError, ValueError) as exc:
            out.problems.append(f"{where}: {exc}")
    return out


# ---------------------------------------------------------------- open VQA


def load_viscot(path: Path, images: Path) -> Loaded:
    """Visual-CoT records (`question`, `answer`, `image`, `width`, `height`, pixel `bboxs`,
    `dataset`); the VisCoT-s sub-task is the `dataset` field."""

    def make(where, row):
        width, height = int(row.get("width") or 0), int(row.get("height") or 0)
        image = images / str(_need(row, "image"))
        boxes = [_pixel_box(b, width, height, "bboxs") for b in row.get("bboxs") or []]
        dataset = str(row.get("dataset", "viscot"))
        rid = row.get("question_id", row.get("id", where.rsplit(":", 1)[-1].rsplit("[", 1)[-1].rstrip("]")))
        return EvalRecord(
            id=f"{dataset}-{rid}",
            kind="vqa",
            dataset="viscot",
            category=dataset,
            question=str(_need(row, "question")),
            answer=str(_need(row, "answer")),
            image=str(image),
            width=width,
            height=height,
            depth_image=depth_picture(image),
            gt_boxes=boxes,
        )

    return _collect(path, make)


_OPTION = re.compile(r"^\(([A-Z])\)\s*(.+)$")


def load_vstar(path: Path, images: Path) -> Loaded:
    """V* Bench `test_questions.jsonl` (`image`, `text` with "(A) …" option lines, `category`,
    `question_id`, `label`); a `NAME.json` beside the image with `bbox` (xywh) gives the boxes."""

    def make(where, row):
        text = str(_need(row, "text"))
        choices = [m.group(2).strip() for m in map(_OPTION.match, text.splitlines()) if m]
        label = str(_need(row, "label")).strip().strip("()")
        if not choices:
            raise RecordError("field 'text' has no '(A) …' option lines")
        if len(label) != 1 or LETTERS.find(label.upper()) >= len(choices) or LETTERS.find(label.upper()) < 0:
            raise RecordError(f"field 'label' {row['label']!r} is not one of the {len(choices)} options")
        image = images / str(_need(row, "image"))
        rec = EvalRecord(
            id=f"vstar-{row.get('question_id', where)}",
            kind="vqa",
            dataset="vstar",
            category=str(row.get("category", "vstar")),
            question=text,
            choices=choices,
            answer=choices[LETTERS.find(label.upper())],
            image=str(image),
            depth_image=depth_picture(image),
        )
        ann = image.with_suffix(".json")
        if ann.is_file():
            meta = json.loads(ann.read_text())
            size = meta.get("size") or [0, 0]
            rec.width, rec.height = int(size[0]), int(size[1])
            if rec.width and rec.height:
                rec.gt_boxes = [
                    _pixel_box([x, y, x + w, y + h], rec.width, rec.height) for x, y, w, h in meta.get("bbox", [])
                ]
        return rec

    return _collect(path, make)


# ---------------------------------------------------------------- multiple choice


def _answer_choice(answer, choices: list[str], field_name: str) -> str:
    """The correct option's text from a letter ("(C)", "C") or the option text itself."""
    a = str(answer).strip()
    m = re.fullmatch(r"\(?([A-Z])\)?", a)
    if m and LETTERS.find(m.group(1)) < len(choices):
        return choices[LETTERS.find(m.group(1))]
    if a in choices:
        return a
    lowered = [c.lower() for c in choices]
    if a.lower() in lowered:
        return choices[lowered.index(a.lower())]
    raise RecordError(f"field {field_name!r} {answer!r} is not one of the options {choices}")


def load_cvbench(path: Path, images: Path) -> Loaded:
    """CV-Bench (`question`, `choices`, `answer` "(C)", `task`, `type`, `image`, `idx`)."""

    def make(where, row):
        choices = [str(c) for c in _need(row, "choices")]
        image = images / str(_need(row, "image"))
        return EvalRecord(
            id=f"cvbench-{row.get('idx', where)}",
            kind="mc",
            dataset="cvbench",
            category=f"{row.get('type', '')} {row.get('task', '')}".strip() or "cvbench",
            question=str(row.get("prompt") or _lettered(str(_need(row, "question")), choices)),
            choices=choices,
            answer=_answer_choice(_need(row, "answer"), choices, "answer"),
            image=str(image),
            depth_image=depth_picture(image),
        )

    return _collect(path, make)


def load_sat(path: Path, images: Path) -> Loaded:
    """SAT (static split) exported as JSON Lines: `question`, `answers` (options),
    `correct_answer`, `question_type`, and `image` (or `images`; multi-image questions are
    skipped, as in the reference evaluation). The options are given as text (SAT_OPTIONS) and
    an answer is read by the option text it names."""

    def make(where, row):
        paths = row.get("images") or ([row["image"]] if row.get("image") else None)
        if not paths:
            raise RecordError("field 'image' is missing")
        if len(paths) > 1:
            raise RecordError(f"has {len(paths)} images; only single-image questions are evaluated")
        choices = [str(c) for c in _need(row, "answers")]
        image = images / str(paths[0])
        return EvalRecord(
            id=f"sat-{row.get('id', row.get('question_id', where))}",
            kind="mc",
            dataset="sat",
            category=str(row.get("question_type", "sat")),
            question=f"{str(_need(row, 'question')).strip()} {SAT_OPTIONS.format(options=', or '.join(choices))}",
            choices=choices,
            answer=_answer_choice(_need(row, "correct_answer"), choices, "correct_answer"),
            image=str(image),
            depth_image=depth_picture(image),
            meta={"options_as_text": True},
        )

    return _collect(path, make)


def load_spatialbench(path: Path, images: Path) -> Loaded:
    """SpatialBench: one category file (`positional.json`, `existence.json`, `counting.json`,
    `size.json`, `reach.json`: `id`, `image`, `question`, `answer`) or a folder of them, each file a
    category. Answers are kept as written (SpatialBot matches them as substrings); the j-th
    question of a paired category (existence, size, reach) belongs to pair j // 2, as in
    SpatialBot's script. Grounding items are skipped."""
    if path.is_dir():
        out = Loaded()
        for part in sorted(path.glob("*.json")):
            one = _spatialbench_file(part, images)
            out.records += one.records
            out.problems += one.problems
        return out
    return _spatialbench_file(path, images)


def _spatialbench_file(path: Path, images: Path) -> Loaded:
    category = path.stem
    position = iter(range(1_000_000_000))  # j: the question's place among the file's questions

    def make(where, row):
        if isinstance(row, dict) and ("objects" in row or str(row.get("id", "")).startswith("grounding")):
            raise RecordError("is a grounding item (field 'objects'); not a question")
        j = next(position)
        image_field = _need(row, "image")
        image = images / str(image_field[0] if isinstance(image_field, list) else image_field)
        meta = {"position": j}
        if category in SPATIALBENCH_PAIRED:
            meta.update(pair=j // 2, group=f"spatialbench-{category}-pair-{j // 2}")
        return EvalRecord(
            id=f"spatialbench-{category}-{row.get('id', where)}",
            kind="mc",
            dataset="spatialbench",
            category=category,
            question=str(_need(row, "question")),
            answer=str(_need(row, "answer")).strip(),
            image=str(image),
            depth_image=depth_picture(image),
            meta=meta,
        )

    return _collect(path, make)


def load_mmbench(path: Path, images: Path) -> Loaded:
    """An MMBench TSV with answers (dev): `index`, `question`, `hint`, options `A`–`D`…, `answer`,
    `category`, `l2-category`, base64 `image` (a short number refers to another row's image).
    Pictures are written once to `IMAGES/<file stem>_images/<index>.jpg`. A TSV that holds the
    circular copies (index + k · 1e6) is used as it is; otherwise each question gets one record
    per circular shift of its options. Records of one question share `meta.group`."""
    import base64
    import csv
    import sys

    csv.field_size_limit(sys.maxsize)
    out = Loaded()
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    picture_dir = images / f"{path.stem}_images"
    by_index = {str(r.get("index")): r for r in rows}

    def picture(row) -> Path:
        data = (row.get("image") or "").strip()
        source = str(row.get("index"))
        if len(data) <= 64 and data.isdigit():  # a reference to the row that holds the picture
            source, data = data, (by_index.get(data) or {}).get("image", "")
        if not data:
            raise RecordError("field 'image' is missing")
        raw = base64.b64decode(data)
        target = picture_dir / f"{source}.{'png' if raw.startswith(PNG_SIGNATURE) else 'jpg'}"
        if not target.is_file():
            picture_dir.mkdir(parents=True, exist_ok=True)
            target.write_bytes(raw)
        return target

    given_circular = any(_int(r.get("index")) >= CIRCULAR_OFFSET for r in rows)
    for i, row in enumerate(rows):
        where = f"{path.name}:{i + 2}"
        try:
            index = _int(_need(row, "index"))
            options = [row[c].strip() for c in LETTERS if row.get(c) not in (None, "") and row[c] != "nan"]
            if len(options) < 2:
                raise RecordError("needs at least two options (columns A, B, …)")
            answer = str(_need(row, "answer")).strip()
            if LETTERS.find(answer) not in range(len(options)):
                raise RecordError(f"field 'answer' {answer!r} is not one of the {len(options)} options")
            image = picture(row)
            shifts = [index // CIRCULAR_OFFSET] if given_circular else range(len(options))
            for shift in shifts:
                shown = options if given_circular else options[shift:] + options[:shift]
                correct = options[LETTERS.find(answer)]
                out.records.append(_mmbench_record(row, index % CIRCULAR_OFFSET, shift, shown, correct, image))
        except (RecordError, KeyError, TypeError, ValueError, OSError) as exc:
            out.problems.append(f"{where}: {exc}")
    return out


def _int(value) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return -1


def _mmbench_record(row, question: int, shift: int, shown: list[str], correct: str, image: Path) -> EvalRecord:
    hint = (row.get("hint") or "").strip()
    lines = [f"Hint: {hint}"] if hint and hint != "nan" else []
    lines.append(f"Question: {row['question'].strip()}")
    lines += ["Options:", *(f"{LETTERS[i]}. {text}" for i, text in enumerate(shown)), MMBENCH_SELECT]
    return EvalRecord(
        id=f"mmbench-{question}-c{shift}",
        kind="mc",
        dataset="mmbench",
        category=str(row.get("l2-category") or row.get("category") or "mmbench"),
        question="\n".join(lines),
        choices=list(shown),
        answer=correct,
        image=str(image),
        depth_image=depth_picture(image),
        meta={"group": f"mmbench-{question}", "shift": shift, "fine_category": row.get("category")},
    )


# ---------------------------------------------------------------- synthetic


def load_synth(path: Path, images: Path) -> Loaded:
    """`sif synth` output (`sif50k.json`): the held-out `split == "test"` records, with their
    exact depth maps for the depth-consistency check."""

    def make(where, row):
        if row.get("split", "test") != "test":
            return None
        image = images / str(_need(row, "image"))
        depth_map = row.get("depth_map")
        return EvalRecord(
            id=str(row.get("id", where)),
            kind="synth",
            dataset="synthetic",
            category=str(row.get("question_kind", "synthetic")),
            question=str(_need(row, "problem")),
            answer=str(_need(row, "response")),
            image=str(image),
            width=int(row.get("width") or 0),
            height=int(row.get("height") or 0),
            gt_boxes=[list(map(float, b)) for b in _need(row, "normalized_solution_round")["bbox_3d"]],
            depth_image=str(images / row["depth_image"]) if row.get("depth_image") else None,
            depth=str(images / depth_map) if depth_map else None,
            depth_encoding="gray16_depth" if depth_map else None,
            meta={"chain": next((m["content"] for m in row.get("messages", []) if m.get("role") == "assistant"), None)},
        )

    return _collect(path, make)


@dataclass(frozen=True)
class Benchmark:
    name: str
    kind: str
    load: Callable[[Path, Path], Loaded]
    summary: str


_LOADERS = {
    "rec": load_rec,
    "ovd": load_ovd,
    "viscot": load_viscot,
    "vstar": load_vstar,
    "cvbench": load_cvbench,
    "sat": load_sat,
    "spatialbench": load_spatialbench,
    "mmbench": load_mmbench,
    "synth": load_synth,
}
BENCHMARKS: dict[str, Benchmark] = {
    name: Benchmark(name, kind, _LOADERS[name], summary) for name, (kind, summary) in BENCHMARK_KINDS.items()
}


def load_benchmark(name: str, data: str | Path, images: str | Path | None = None) -> Loaded:
    """Records of benchmark `name` from `data`, images resolved against `images`."""
    if name not in BENCHMARKS:
        raise ConfigError(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")
    data = Path(data)
    if not (data.is_file() or (name == "spatialbench" and data.is_dir())):
        raise FileNotFoundError(f"benchmark data {data} does not exist")
    return BENCHMARKS[name].load(data, Path(images) if images else (data if data.is_dir() else data.parent))
