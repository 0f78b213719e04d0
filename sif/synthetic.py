"""Synthetic 3-D-looking scenes with exact depth, spatial questions and SIF chains.

Each scene is a ground plane under a sky with 2–6 coloured shapes standing on it: farther
objects sit higher and smaller, and are drawn first so nearer ones occlude them. Depth follows
a pinhole camera over flat ground (disparity grows linearly below the horizon; sky is farthest),
normalized per image to the project convention (0 nearest, 1 farthest). The records are
SIF-50K records (FORMATS §3) plus a few bookkeeping keys, so every consumer reads them alike.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from sif.chain import Chain, Step, render_chain, validate_chain
from sif.depth import DepthMap, encode_spectral_r, save_gray16
from sif.errors import ConfigError
from sif.plan import FocusPlan, plan_focus_detailed
from sif.prompts import sif_user_prompt

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (205, 40, 40),
    "green": (40, 160, 60),
    "blue": (40, 80, 210),
    "yellow": (235, 205, 40),
    "purple": (130, 50, 170),
    "orange": (240, 130, 30),
    "white": (235, 235, 235),
    "black": (35, 35, 35),
}
SHAPES: tuple[str, ...] = ("cube", "ball", "cylinder", "cone")
PLURALS = {"cube": "cubes", "ball": "balls", "cylinder": "cylinders", "cone": "cones"}
QUESTION_KINDS: tuple[str, ...] = (
    "left_colour",
    "left_shape",
    "right_colour",
    "right_shape",
    "nearest",
    "farthest",
    "closer",
    "count",
)
DEFAULT_SIZES: tuple[tuple[int, int], ...] = ((320, 240), (256, 256), (240, 320), (384, 256))
MIN_VISIBLE_FRACTION = 0.6  # a scene is redrawn when an object is more hidden than this
MIN_VISIBLE_PIXELS = 40
DEPTH_MARGIN = 0.05  # depth gap that makes "nearer"/"farther" questions unambiguous
SCENE_TRIES = 50


@dataclass(frozen=True)
class SynthConfig:
    """Difficulty knobs of the synthetic set."""

    min_objects: int = 2
    max_objects: int = 6
    sizes: tuple[tuple[int, int], ...] = DEFAULT_SIZES
    kinds: tuple[str, ...] = QUESTION_KINDS
    distractor_prob: float = 0.5
    split_ratio: float = 0.1  # fraction of samples held out as "test"

    def __post_init__(self):
        if not 1 <= self.min_objects <= self.max_objects:
            raise ConfigError(f"need 1 ≤ min_objects ≤ max_objects, got {self.min_objects} and {self.max_objects}")
        if self.max_objects > len(COLOURS) * len(SHAPES):
            raise ConfigError(f"max_objects is at most {len(COLOURS) * len(SHAPES)} (unique colour + shape)")
        if not self.sizes or any(w < 64 or h < 64 for w, h in self.sizes):
            raise ConfigError("sizes must be a non-empty list of WxH, each side at least 64 pixels")
        unknown = set(self.kinds) - set(QUESTION_KINDS)
        if not self.kinds or unknown:
            raise ConfigError(f"unknown question kinds {sorted(unknown)}; choose from {', '.join(QUESTION_KINDS)}")
        if self.max_objects < 2 and set(self.kinds) - {"count"}:
            raise ConfigError("every question kind but count compares objects: max_objects must be at least 2")
        for name in ("distractor_prob", "split_ratio"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be between 0 and 1, got {getattr(self, name)}")


@dataclass
class SceneObject:
    colour: str
    shape: str
    base_y: float  # image row where it stands on the ground (larger = nearer)
    size: float  # pixels
    cx: float
    box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)  # visible extent, normalized
    depth: float = 0.0  # mean depth over its visible pixels

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"


@dataclass
class Scene:
    image: Image.Image
    depth: np.ndarray  # float32 H×W, 0 = nearest
    labels: np.ndarray  # int16 H×W: index of the visible object, -1 for ground and sky
    objects: list[SceneObject] = field(default_factory=list)

    def visible_mask(self, index: int) -> np.ndarray:
        return self.labels == index


@dataclass
class Question:
    kind: str
    text: str
    answer: str
    targets: list[int]  # objects whose boxes are the ground truth
    goal: str  # what the chain looks for, without giving the answer away


# ---------------------------------------------------------------- drawing


def _shade(rgb, factor: float) -> tuple[int, int, int]:
    r, g, b = (int(min(max(c * factor, 0), 255)) for c in rgb)
    return r, g, b


def _primitives(obj: SceneObject) -> list[tuple[str, list, float]]:
    """The shape as (kind, geometry, shade) primitives in drawing order."""
    s, cx, yb = obj.size, obj.cx, obj.base_y
    if obj.shape == "cube":
        d = s * 0.3  # oblique depth offset: top and right faces recede up and to the right
        x1, x2, top = cx - s / 2, cx + s / 2, yb - s
        return [
            ("polygon", [(x1, top), (x1 + d, top - d), (x2 + d, top - d), (x2, top)], 1.3),
            ("polygon", [(x2, top), (x2 + d, top - d), (x2 + d, yb - d), (x2, yb)], 0.7),
            ("polygon", [(x1, top), (x2, top), (x2, yb), (x1, yb)], 1.0),
        ]
    if obj.shape == "ball":
        r = s / 2
        cy = yb - r
        return [
            ("ellipse", [cx - r, cy - r, cx + r, cy + r], 0.85),
            ("ellipse", [cx - r * 0.8, cy - r * 0.85, cx + r * 0.55, cy + r * 0.5], 1.0),
            ("ellipse", [cx - r * 0.55, cy - r * 0.65, cx - r * 0.05, cy - r * 0.2], 1.35),
        ]
    e = s * 0.15  # half height of the ellipses seen from above
    x1, x2 = cx - s / 2, cx + s / 2
    if obj.shape == "cylinder":
        top = yb - s * 1.2
        return [
            ("ellipse", [x1, yb - 2 * e, x2, yb], 0.8),
            ("polygon", [(x1, top), (x2, top), (x2, yb - e), (x1, yb - e)], 0.9),
            ("ellipse", [x1, top - e, x2, top + e], 1.3),
        ]
    if obj.shape == "cone":
        return [
            ("ellipse", [x1, yb - 2 * e, x2, yb], 0.8),
            ("polygon", [(x1, yb - e), (cx, yb - s * 1.3), (x2, yb - e)], 1.0),
            ("polygon", [(cx, yb - s * 1.3), (x2, yb - e), (cx + s * 0.2, yb)], 0.75),
        ]
    raise AssertionError(f"unknown shape {obj.shape!r}")


def _draw_object(image: Image.Image, obj: SceneObject) -> np.ndarray:
    """Draw `obj` onto `image` and return the mask of every pixel it covers."""
    mask = Image.new("L", image.size, 0)
    draw, mdraw = ImageDraw.Draw(image), ImageDraw.Draw(mask)
    base = COLOURS[obj.colour]
    for kind, geom, shade in _primitives(obj):
        fill = _shade(base, shade)
        getattr(draw, kind)(geom, fill=fill)
        getattr(mdraw, kind)(geom, fill=255)
    return np.asarray(mask) > 0


def _background(width: int, height: int, horizon: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """Sky and ground colours (H×W×3 uint8) and their disparity (H×W, 0 at the horizon and above)."""
    rows = np.arange(height, dtype=np.float64) + 0.5
    below = np.clip((rows - horizon) / (height - horizon), 0.0, None)
    sky_top, sky_low = np.array([110, 160, 225]), np.array([200, 225, 245])
    ground_far = rng.integers(140, 190, 3).astype(np.float64)
    ground_near = ground_far * 0.6
    t_sky = np.clip(rows / max(horizon, 1.0), 0, 1)[:, None]
    sky = sky_top * (1 - t_sky) + sky_low * t_sky
    ground = ground_far * (1 - below[:, None]) + ground_near * below[:, None]
    colour = np.where((rows < horizon)[:, None], sky, ground)
    rgb = np.broadcast_to(colour[:, None, :], (height, width, 3)).astype(np.uint8)
    disparity = np.broadcast_to(below[:, None], (height, width)).astype(np.float64)
    return rgb, disparity


def _bulge(disparity: np.ndarray, mask: np.ndarray, ball: SceneObject, ground_h: float) -> None:
    """A ball's centre is nearer than its rim: raise its disparity inside its bounding square."""
    r = ball.size / 2
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return
    sl = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    yy, xx = np.ogrid[sl]
    rr = ((xx + 0.5 - ball.cx) ** 2 + (yy + 0.5 - (ball.base_y - r)) ** 2) / (r * r)
    bump = 0.04 * (ball.size / ground_h) * np.sqrt(np.clip(1 - rr, 0, 1))
    disparity[sl] += np.where(mask[sl], bump, 0.0)


def render_scene(rng: np.random.Generator, width: int, height: int, n_objects: int) -> Scene | None:
    """One scene with `n_objects` distinct objects, or None when one ended up mostly hidden."""
    horizon = height * rng.uniform(0.3, 0.45)
    rgb, disparity = _background(width, height, horizon, rng)
    image = Image.fromarray(np.ascontiguousarray(rgb))
    descriptors = rng.choice(len(COLOURS) * len(SHAPES), size=n_objects, replace=False)
    colours = list(COLOURS)
    ground_h = height - horizon
    slots = rng.permutation(n_objects)  # one column band each, so objects rarely hide each other
    objects = []
    for code, slot in zip(descriptors, slots):
        near = rng.uniform(0.3, 1.0)  # 0 = at the horizon, 1 = at the bottom edge
        size = near * min(width, height) * rng.uniform(0.22, 0.32)
        base_y = horizon + near * ground_h - rng.uniform(0.0, 0.02) * height
        lo, hi = size * 0.7, width - size * 0.9
        cx = lo + (slot + rng.uniform(0.1, 0.9)) / n_objects * max(hi - lo, 0.0)
        objects.append(SceneObject(colours[code // len(SHAPES)], SHAPES[code % len(SHAPES)], base_y, size, cx))
    objects.sort(key=lambda o: o.base_y)  # far to near: nearer objects are drawn over farther ones

    labels = np.full((height, width), -1, dtype=np.int16)
    full_masks = []
    disparity = disparity.copy()
    for i, obj in enumerate(objects):
        mask = _draw_object(image, obj)
        full_masks.append(mask)
        disparity[mask] = (obj.base_y - horizon) / ground_h
        if obj.shape == "ball":
            _bulge(disparity, mask, obj, ground_h)
        labels[mask] = i
    hi = float(disparity.max())
    depth = 1.0 - disparity / hi if hi > 0 else np.zeros_like(disparity)
    # On the gray16 grid, so the written map and every depth computed here agree exactly.
    depth = (np.rint(depth * 65535.0) / 65535.0).astype(np.float32)

    for i, obj in enumerate(objects):
        visible = labels == i
        count = int(visible.sum())
        if count < MIN_VISIBLE_PIXELS or count < MIN_VISIBLE_FRACTION * full_masks[i].sum():
            return None
        rows, cols = np.flatnonzero(visible.any(axis=1)), np.flatnonzero(visible.any(axis=0))
        obj.box = (cols[0] / width, rows[0] / height, (cols[-1] + 1) / width, (rows[-1] + 1) / height)
        obj.depth = float(depth[visible].mean())
    return Scene(image, depth, labels, objects)


# ---------------------------------------------------------------- questions


def _side_question(scene: Scene, kind: str, rng) -> Question | None:
    """'What colour/shape is the object left (right) of X?' with exactly one object on that side."""
    objs = scene.objects
    if len(objs) < 2:
        return None
    right = kind.startswith("right")
    order = sorted(range(len(objs)), key=lambda i: objs[i].box[0] + objs[i].box[2], reverse=right)
    target, ref = order[0], order[1]
    centre = [(o.box[0] + o.box[2]) / 2 for o in objs]
    t, r = objs[target], objs[ref]
    # The target must lie clearly beside the reference, every other object clearly on the far side.
    clear = r.box[0] - centre[target] if not right else centre[target] - r.box[2]
    others = [abs(centre[i] - centre[ref]) for i in order[2:]]
    if clear <= 0.01 or (others and min(others) < 0.05):
        return None
    goal = f"the object to the {'right' if right else 'left'} of the {r.name}"
    if kind.endswith("colour"):
        return Question(kind, f"What colour is {goal}?", t.colour, [target], goal)
    return Question(kind, f"What shape is {goal}?", t.shape, [target], goal)


def _depth_order(scene: Scene) -> list[int]:
    return sorted(range(len(scene.objects)), key=lambda i: scene.objects[i].depth)


def _extreme_question(scene: Scene, kind: str, rng) -> Question | None:
    order = _depth_order(scene)
    if kind == "farthest":
        order = order[::-1]
    objs = scene.objects
    if len(order) < 2 or abs(objs[order[0]].depth - objs[order[1]].depth) < DEPTH_MARGIN:
        return None
    goal = f"the object {'nearest to' if kind == 'nearest' else 'farthest from'} the camera"
    return Question(kind, f"Which is {goal}?", objs[order[0]].name, [order[0]], goal)


def _closer_question(scene: Scene, kind: str, rng) -> Question | None:
    objs = scene.objects
    pairs = [
        (i, j)
        for i in range(len(objs))
        for j in range(i + 1, len(objs))
        if abs(objs[i].depth - objs[j].depth) >= DEPTH_MARGIN * 2
    ]
    if not pairs:
        return None
    i, j = pairs[int(rng.integers(len(pairs)))]
    if rng.random() < 0.5:
        i, j = j, i
    nearer = i if objs[i].depth < objs[j].depth else j
    text = f"Which is closer to the camera, the {objs[i].name} or the {objs[j].name}?"
    return Question(kind, text, objs[nearer].name, [i, j], f"the {objs[i].name} and the {objs[j].name}")


def _count_question(scene: Scene, kind: str, rng) -> Question | None:
    shapes = sorted({o.shape for o in scene.objects})
    shape = shapes[int(rng.integers(len(shapes)))]
    targets = [i for i, o in enumerate(scene.objects) if o.shape == shape]
    return Question(kind, f"How many {PLURALS[shape]} are there?", str(len(targets)), targets, f"the {PLURALS[shape]}")


_QUESTION_MAKERS = {
    "left_colour": _side_question,
    "left_shape": _side_question,
    "right_colour": _side_question,
    "right_shape": _side_question,
    "nearest": _extreme_question,
    "farthest": _extreme_question,
    "closer": _closer_question,
    "count": _count_question,
}


def make_question(scene: Scene, kind: str, rng) -> Question | None:
    """A question of `kind` that this scene answers unambiguously, or None."""
    return _QUESTION_MAKERS[kind](scene, kind, rng)


# ---------------------------------------------------------------- chain texts


def step_texts(plan: FocusPlan, q: Question, scene: Scene) -> list[str]:
    """One template text per planned step, by kind; the last names the objects and their depths."""
    goal = q.goal
    n = len(scene.objects)
    texts = []
    for kind, regions in zip(plan.kinds, plan.steps):
        if kind == "whole":
            texts.append(f"The question is about {goal}. The scene shows {n} object{'s' * (n != 1)} on the ground.")
        elif kind == "distractor":
            texts.append(f"I look here first, but {goal} is not here; look elsewhere.")
        elif kind == "enclosing":
            texts.append(f"{goal[0].upper() + goal[1:]} should be within this part of the scene.")
        elif kind == "expansion":
            texts.append(f"Narrowing the focus to the area around {goal}.")
        else:
            parts = [f"the {scene.objects[i].name} at depth {r.depth:.3f}" for i, r in zip(q.targets, regions)]
            texts.append(_final_text(q, parts))
    return texts


def _final_text(q: Question, parts: list[str]) -> str:
    if q.kind == "count":
        return f"There are {q.answer}: {'; '.join(parts)}."
    listing = " and ".join(parts)
    if q.kind == "closer":
        return f"Comparing {listing}, the {q.answer} is closer."
    return f"This is {listing}; the answer is {q.answer}."


# ---------------------------------------------------------------- samples and datasets


@dataclass
class Sample:
    scene: Scene
    question: Question
    chain: Chain
    gt_boxes: list[list[float]]
    plan: FocusPlan


def _gt_box(box) -> list[float]:
    return [round(float(v), 3) for v in box]


def make_sample(rng: np.random.Generator, config: SynthConfig = SynthConfig()) -> Sample:
    """A scene, a question it answers, and the chain that finds the answer."""
    kind = config.kinds[int(rng.integers(len(config.kinds)))]
    width, height = config.sizes[int(rng.integers(len(config.sizes)))]
    n_objects = int(rng.integers(config.min_objects, config.max_objects + 1))
    for _ in range(SCENE_TRIES):
        scene = render_scene(rng, width, height, n_objects)
        if scene is None:
            continue
        q = make_question(scene, kind, rng)
        if q is None:
            continue
        gt = [_gt_box(scene.objects[i].box) for i in q.targets]
        plan = plan_focus_detailed(gt, DepthMap(scene.depth), rng, distractor_prob=config.distractor_prob)
        steps = tuple(Step(tuple(r), t) for r, t in zip(plan.steps, step_texts(plan, q, scene)))
        return Sample(scene, q, Chain(steps, q.answer), gt, plan)
    raise ConfigError(
        f"no {width}x{height} scene with {n_objects} objects fits a {kind!r} question after {SCENE_TRIES} tries; "
        "use larger sizes or fewer objects"
    )


def _record(sample: Sample, sample_id: str, split: str) -> dict:
    image, depth_image, depth_map = (
        f"images/{sample_id}.png",
        f"depth/{sample_id}_d.png",
        f"depth/{sample_id}_depth.png",
    )
    text = render_chain(sample.chain)
    problems = validate_chain(text)
    if problems:  # a template bug, not bad input: stop loudly
        raise AssertionError(f"{sample_id}: generated chain is invalid: {problems[0]}")
    width, height = sample.scene.image.size
    return {
        "dataset": "synthetic",
        "image": image,
        "depth_image": depth_image,
        "problem": sample.question.text,
        "normalized_solution_round": {"bbox_3d": sample.gt_boxes, "illegal_content": False},
        "response": sample.question.answer,
        "messages": [
            {"role": "user", "content": sif_user_prompt(sample.question.text)},
            {"role": "assistant", "content": text},
        ],
        "images": [image, depth_image],
        "id": sample_id,
        "split": split,
        "width": width,
        "height": height,
        "depth_map": depth_map,
        "question_kind": sample.question.kind,
    }


def _write_images(sample: Sample, out: Path, record: dict) -> None:
    sample.scene.image.save(out / record["image"], compress_level=1)
    Image.fromarray(encode_spectral_r(sample.scene.depth)).save(out / record["depth_image"], compress_level=1)
    save_gray16(sample.scene.depth, out / record["depth_map"], compress_level=1)


def sample_id(index: int) -> str:
    return f"synth-{index:06d}"


def make_dataset(out_dir, n: int, seed: int = 0, *, progress: bool | None = None, **knobs) -> Path:
    """Write `n` samples (images, depth maps, `sif50k.json`) under `out_dir`; returns the JSON path.

    Sample `i` depends only on (`seed`, `i`) and the knobs, so a larger `n` extends a smaller set.
    Knobs are the fields of `SynthConfig`; progress shows by default from 500 samples.
    """
    config = replace(SynthConfig(), **knobs) if knobs else SynthConfig()
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "depth").mkdir(parents=True, exist_ok=True)
    records = []
    for i in _progress(range(n), n, progress):
        sid = sample_id(i)
        try:
            sample = make_sample(np.random.default_rng([seed, i]), config)
        except ValueError as exc:
            raise ConfigError(f"{sid}: {exc}") from None
        split = "test" if np.random.default_rng([seed, i, 1]).random() < config.split_ratio else "train"
        record = _record(sample, sid, split)
        _write_images(sample, out, record)
        records.append(record)
    path = out / "sif50k.json"
    path.write_text(json.dumps(records, indent=1))
    return path


def _progress(items: Sequence, total: int, show: bool | None):
    if show is None:
        show = total >= 500
    if not show:
        yield from items
        return
    from rich.progress import track

    yield from track(items, total=total, description="synthesizing")
