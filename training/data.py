"""Training datasets from the store's exports.

- SFT: `sif export sft --format trl` lines (prompt/completion, two images: RGB then depth).
  A sample whose prompt alone (image tokens included) does not fit `max_length` is always
  dropped, so truncation can only ever cut the completion, never image tokens.
- GRPO: `sif export rl` lines, turned into TRL's conversational `prompt` + `images` columns
  plus the columns the SIF rewards read (`depth_path`: the exact `depth_map`, else the
  export's `depth_image`).
The depth image a model is given is always the `spectral_r` picture (`sif.depth.spectral_r_file`):
a file written by an older export that holds a 16-bit or gray map is rendered, not fed as is.
Bad records are skipped with a message naming the line and field; counts come back.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from PIL import Image

from sif.depth import spectral_r_file
from sif.errors import ConfigError, RecordError
from sif.prompts import RL_SUFFIX, SIF_SUFFIX, sif_user_message
from sif.records import read_records

SFT_FILE = "sif_sft.jsonl"
SUFFIXES = {"sif": SIF_SUFFIX, "rl": RL_SUFFIX}
T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass
class DataReport:
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)  # the first few, for the log

    def skip(self, reason: str, where: str) -> None:
        self.skipped[reason] += 1
        if len(self.problems) < 10:
            self.problems.append(f"{where}: {reason}")

    def summary(self) -> str:
        skipped = ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items())) or "none"
        return f"{self.kept} samples kept; skipped: {skipped}"

    def log(self, what: str, data) -> None:
        """The summary, then the first problems, in the training log."""
        log.info("%s data %s: %s", what, data, self.summary())
        for problem in self.problems:
            log.warning("skipped %s", problem)


def read_jsonl(path: Path, report: DataReport) -> list[tuple[str, dict]]:
    """(`file:line`, record) for each readable record; unreadable ones are counted, not fatal."""
    out = []
    for where, record in read_records(path):
        if isinstance(record, RecordError):
            report.skip("not a JSON object" if record.field == "record" else "not valid JSON", where)
        else:
            out.append((where, record))
    return out


def _require(record: dict, key: str, kind: type[T]) -> T:
    value = record.get(key)
    empty = isinstance(value, (str, list)) and not value
    if empty or not isinstance(value, kind):
        raise KeyError(f"field {key!r} is missing or not a non-empty {getattr(kind, '__name__', kind)}")
    return value


def _images_exist(paths: list) -> None:
    for i, p in enumerate(paths):
        if not isinstance(p, str) or not Path(p).is_file():
            raise KeyError(f"field 'images'[{i}]: file {p!r} not found")


def _model_images(images: list[str], encoding) -> list[str]:
    """The record's [RGB, depth] with the depth as the `spectral_r` picture a model sees."""
    try:
        depth = spectral_r_file(images[1], encoding if isinstance(encoding, str) else "auto")
    except (OSError, ValueError) as exc:
        raise KeyError(f"field 'images'[1]: no spectral_r picture for {images[1]!r} ({exc})") from None
    return [images[0], str(depth)]


def sft_path(data: str | Path) -> Path:
    p = Path(data)
    return p / SFT_FILE if p.is_dir() else p


def prompt_tokens(processor, prompt: list[dict], image_paths: list[str]) -> int:
    """Tokens of the rendered prompt with its image placeholders expanded (no pixels are decoded)."""
    text = processor.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    n_text = len(processor.tokenizer(text, add_special_tokens=False)["input_ids"])
    sizes = []
    for p in image_paths:
        with Image.open(p) as im:
            sizes.append((im.height, im.width))
    n_image = sum(processor._get_num_multimodal_tokens(image_sizes=sizes).num_image_tokens)
    return n_text + n_image - len(sizes)  # each placeholder token is replaced by its image tokens


def completion_tokens(processor, completion: list[dict]) -> int:
    text = "".join(str(m.get("content", "")) for m in completion)
    return len(processor.tokenizer(text, add_special_tokens=False)["input_ids"]) + 2  # <|im_end|>\n


def load_sft_rows(
    data: str | Path, processor, max_length: int | None, overlong: str = "drop"
) -> tuple[list[dict], DataReport]:
    """Rows for TRL's SFTTrainer (prompt, completion, images) and what was skipped."""
    if overlong not in ("drop", "truncate"):
        raise ConfigError(f"overlong: {overlong!r} is not one of drop, truncate")
    report, rows = DataReport(), []
    for where, record in read_jsonl(sft_path(data), report):
        try:
            prompt = _require(record, "prompt", list)
            completion = _require(record, "completion", list)
            given = _require(record, "images", list)
            _images_exist(given)
            images = _model_images(given, record.get("depth_encoding"))
        except KeyError as exc:
            report.skip(str(exc.args[0]), where)
            continue
        if max_length is not None:
            n_prompt = prompt_tokens(processor, prompt, images)
            if n_prompt >= max_length:
                report.skip("prompt (with image tokens) longer than max_length", where)
                continue
            if overlong == "drop" and n_prompt + completion_tokens(processor, completion) > max_length:
                report.skip("longer than max_length", where)
                continue
        rows.append(
            {
                "sample_id": str(record.get("sample_id", where)),
                "prompt": prompt,
                "completion": completion,
                "images": images,
            }
        )
    report.kept = len(rows)
    return rows, report


FLAT_DEPTH_GREY = (128, 128, 128)


def flat_depth_image(like: str | Path, folder: str | Path) -> str:
    """A uniform grey picture the size of `like`, under `folder` (one file per size): what a model
    is shown in place of the depth image when training or evaluating without the depth input."""
    with Image.open(like) as im:
        size = im.size
    path = Path(folder) / f"flat_depth_{size[0]}x{size[1]}.png"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, FLAT_DEPTH_GREY).save(path)
    return str(path)


def load_rl_rows(
    data: str | Path, suffix: str = "sif", *, flat_depth_dir: str | Path | None = None
) -> tuple[list[dict], DataReport]:
    """Rows for TRL's GRPOTrainer with the columns the SIF rewards take.

    With `flat_depth_dir` the model is shown a flat grey picture instead of the depth image (the
    depth reward still checks against the real map)."""
    if suffix not in SUFFIXES:
        raise ConfigError(f"suffix: {suffix!r} is not one of {', '.join(SUFFIXES)}")
    report, rows = DataReport(), []
    for where, record in read_jsonl(Path(data), report):
        try:
            question = _require(record, "question", str)
            answer = record.get("answer")
            if isinstance(answer, (int, float)) and not isinstance(answer, bool):
                answer = str(answer)
            if not isinstance(answer, str) or not answer.strip():
                raise KeyError("field 'answer' is missing or empty")
            boxes = _require(record, "gt_boxes", list)
            if not all(isinstance(b, list) and len(b) == 4 for b in boxes):
                raise KeyError("field 'gt_boxes': expected a list of [x1, y1, x2, y2]")
            image, depth = _require(record, "image", str), _require(record, "depth_image", str)
            _images_exist([image, depth])
            images = _model_images([image, depth], record.get("depth_encoding"))
            if flat_depth_dir is not None:
                images[1] = flat_depth_image(images[1], flat_depth_dir)
            exact = record.get("depth_map") or depth
            if not isinstance(exact, str) or not Path(exact).is_file():
                raise KeyError(f"field 'depth_map': file {exact!r} not found")
        except KeyError as exc:
            report.skip(str(exc.args[0]), where)
            continue
        except OSError as exc:
            report.skip(f"field 'depth_image': unreadable picture ({exc})", where)
            continue
        rows.append(
            {
                "prompt": [sif_user_message(question, SUFFIXES[suffix])],
                "images": images,
                "sample_id": str(record.get("sample_id", where)),
                "question": question,
                "answer": answer,
                "gt_boxes": [[float(v) for v in b] for b in boxes],
                "image_path": image,
                "depth_path": exact,
                "depth_encoding": (
                    record.get("depth_map_encoding") if record.get("depth_map") else record.get("depth_encoding")
                )
                or "auto",
            }
        )
    report.kept = len(rows)
    return rows, report


def to_dataset(rows: list[dict]):
    """A `datasets.Dataset` whose `images` column decodes to PIL images on access."""
    import datasets

    if not rows:
        raise ConfigError("no usable samples (see the skipped counts above)")
    ds = datasets.Dataset.from_list(rows)
    return ds.cast_column("images", datasets.List(datasets.Image()))
