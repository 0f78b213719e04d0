"""The one record type every benchmark adapter produces, and the kinds of benchmark.

An adapter turns a public release format into `EvalRecord`s; the runner, the scorers and the
report only ever see this type. Boxes are normalized `[x1, y1, x2, y2]` like everywhere else.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from sif.errors import ConfigError

# How a benchmark is scored; each benchmark name maps to one kind.
KINDS = ("rec", "ovd", "vqa", "mc", "synth")
# benchmark name -> (kind, one-line summary); light, so the CLI can list them without numpy.
BENCHMARK_KINDS: dict[str, tuple[str, str]] = {
    "rec": ("rec", "RefCOCO/RefCOCO+/RefCOCOg JSON Lines; Acc@0.5 and mean IoU per split"),
    "ovd": ("ovd", "an OVDEval sub-task JSON; NMS-AP"),
    "viscot": ("vqa", "Visual-CoT (VisCoT-s) JSON Lines; judge score per sub-task"),
    "vstar": ("vqa", "V* Bench test_questions.jsonl; score per sub-task"),
    "cvbench": ("mc", "CV-Bench JSON Lines; accuracy per task"),
    "sat": ("mc", "SAT static split as JSON Lines; accuracy per question type"),
    "spatialbench": ("mc", "a SpatialBench category JSON; accuracy"),
    "synth": ("synth", "`sif synth` held-out scenes; accuracy, HIoU, depth, format"),
}


@dataclass
class EvalRecord:
    """One question of a benchmark, with everything needed to ask it and to score the answer.

    `question` is the text sent before the SIF suffix; `category` is the group a metric is
    reported for (a REC split, a V* sub-task, a CV-Bench task); `objects` holds OVD's labelled
    ground truth as `(label, box)` pairs; `labels` the labels asked for (positives + hard negatives).
    """

    id: str
    kind: str
    dataset: str
    question: str
    answer: str | None = None
    image: str | None = None
    width: int = 0
    height: int = 0
    gt_boxes: list[list[float]] = field(default_factory=list)
    choices: list[str] = field(default_factory=list)
    category: str = ""
    depth_image: str | None = None  # the depth picture the model is shown (None: the backend estimates one)
    depth: str | None = None  # a depth map to score depth consistency against
    depth_encoding: str | None = None
    labels: list[str] = field(default_factory=list)
    objects: list[tuple[str, list[float]]] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"record {self.id}: kind must be one of {KINDS}, not {self.kind!r}")

    @property
    def image_missing(self) -> bool:
        return not self.image or not Path(self.image).is_file()

    def to_json(self) -> dict:
        return asdict(self)
