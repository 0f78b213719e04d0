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
    "spatialbench": ("mc", "SpatialBench category JSONs (a file or their folder); SpatialBot's scores"),
    "mmbench": ("mc", "MMBench TSV (dev, with answers); CircularEval accuracy per ability"),
    "synth": ("synth", "`sif synth` held-out scenes; accuracy, HIoU, depth, format"),
}
# benchmark name -> the protocol its prompts and scores follow, named in every report.
PROTOCOLS: dict[str, str] = {
    "rec": "the SIFThinker paper's REC prompt (Fig. 8); Top-1 Acc@0.5 of the final step's region (RefCOCO convention)",
    "ovd": (
        "OVDEval (Yao et al. 2024) as VLM-R1's evaluation runs it, on whose code GRPO-SIF is built: the prompt "
        "'Please carefully check the image and detect the following objects: …', a JSON list of "
        "{bbox_2d, label} in the answer ('None' for no object), every box scored 1.0; NMS-AP as OVDEval's "
        "eval.py (ground-truth-guided, label-agnostic NMS at IoU 0.5, ties kept as its reversed argsort "
        "keeps them, then COCO AP@[.5:.95])"
    ),
    "viscot": "Visual-CoT's VisCoT benchmark: judge score (0-1) per answer, mean per sub-task; the paper quotes the mean of sub-tasks",
    "vstar": "V* Bench (Wu & Xie 2023): the option picked, accuracy per sub-task (attribute, spatial)",
    "cvbench": "CV-Bench (Cambrian-1): its lettered prompt, accuracy per task",
    "sat": (
        "SAT (Ray et al. 2024), Appendix A.3: '<question> Choose between the following options: a, or b.', "
        "the answer scored by the option text it names (no letters); multi-image questions skipped"
    ),
    "spatialbench": (
        "SpatialBot's bunny/eval/eval_spatialbench.py: an answer is right when the ground truth is a "
        "substring of it; existence counts a pair of questions only when both are right; size and reach "
        "report acc (per question), acc+ (per pair) and SpatialBot's score (acc + acc+ over 3 per pair); "
        "counting scores 1 − mean |pred − gt| / gt; overall is the mean of the categories, as the paper averages them"
    ),
    "mmbench": (
        "MMBench CircularEval (Liu et al. 2023, as VLMEvalKit runs it): each question asked once per circular "
        "shift of its options, right only if every pass picks the right option; VLMEvalKit's prompt "
        "(Hint / Question / Options / 'Please select the correct answer from the options above.'); "
        "options read by letter or text, without VLMEvalKit's LLM fallback (an unreadable pass is wrong)"
    ),
    "synth": "this project's synthetic scenes: exact answer, final-step HIoU, depth consistency, strict format",
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
