"""What the curator sees of a sample: the picture and its depth map with a chain's regions drawn,
and the step strip. Pictures are decoded once and kept at display size (bounded LRU keyed by
file version), so flipping between samples and steps only draws boxes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw

from sif.chain import Step
from sif.depth import DepthMap
from sif.draw import draw_steps, step_strip

DISPLAY_SIDE = 768  # longest side of the pictures sent to the browser
STRIP_HEIGHT = 96
ALL_STEPS = "all"


def _display_size(width: int, height: int, side: int = DISPLAY_SIDE) -> tuple[int, int]:
    scale = min(1.0, side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _version(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path), st.st_mtime_ns, st.st_size


@lru_cache(maxsize=256)
def _picture(version: tuple[str, int, int]) -> Image.Image:
    with Image.open(version[0]) as img:
        img = img.convert("RGB")
        size = _display_size(*img.size)
        return img if img.size == size else img.resize(size, Image.BILINEAR)


@lru_cache(maxsize=256)
def _depth_picture(version: tuple[str, int, int]) -> Image.Image:
    with Image.open(version[0]) as img:
        img = img.convert("RGB")
        size = _display_size(*img.size)
        return img if img.size == size else img.resize(size, Image.NEAREST)


def placeholder(message: str, width: int = 320, height: int = 240) -> Image.Image:
    """A grey picture saying what is missing, shown instead of failing."""
    img = Image.new("RGB", _display_size(max(width, 1), max(height, 1)), (90, 90, 90))
    ImageDraw.Draw(img).text((8, 8), message, fill=(255, 255, 255))
    return img


def load_picture(path: Path | None, *, width: int = 320, height: int = 240) -> Image.Image:
    """The display-size RGB picture at `path`, or a placeholder naming what is wrong."""
    if path is None:
        return placeholder("no image", width, height)
    try:
        return _picture(_version(path))
    except (OSError, ValueError) as exc:
        return placeholder(f"image unreadable: {path.name}\n{exc.__class__.__name__}", width, height)


def load_depth(path: Path | None, encoding: str | None) -> DepthMap | None:
    """The sample's depth map (decoded once per process), or None when it has none or it is unreadable."""
    if path is None:
        return None
    try:
        return DepthMap.load(path, encoding or "auto")
    except (OSError, ValueError):
        return None


def load_depth_picture(path: Path | None, *, width: int = 320, height: int = 240) -> Image.Image:
    """The depth picture models see (`Store.model_depth_image`: `spectral_r`, near = red, far =
    blue) at display size, or a placeholder naming what is wrong."""
    if path is None:
        return placeholder("no depth map", width, height)
    try:
        return _depth_picture(_version(path))
    except (OSError, ValueError) as exc:
        return placeholder(f"depth unreadable: {path.name}\n{exc.__class__.__name__}", width, height)


@dataclass
class Views:
    image: Image.Image
    depth: Image.Image
    strip: Image.Image


def step_choice(show: str | int | None) -> int | None:
    """'all' (or None) → every step; 'step 3' / 3 → the 0-based index of that one step."""
    if show is None or show == ALL_STEPS:
        return None
    if isinstance(show, int):
        return show
    digits = "".join(ch for ch in str(show) if ch.isdigit())
    return int(digits) - 1 if digits else None


def render_views(
    picture: Image.Image,
    depth_picture: Image.Image,
    steps: Sequence[Step],
    gt_boxes: Sequence[Sequence[float]] | None,
    *,
    show: str | int | None = ALL_STEPS,
    show_gt: bool = True,
) -> Views:
    """Both overlays (every step or one, ground truth optional) and the step strip."""
    only = step_choice(show)
    gt = list(gt_boxes or []) if show_gt else None
    return Views(
        draw_steps(picture, steps, only=only, gt_boxes=gt),
        draw_steps(depth_picture, steps, only=only, gt_boxes=gt),
        step_strip(picture, steps, thumb_height=STRIP_HEIGHT) if steps else placeholder("no steps", 160, STRIP_HEIGHT),
    )
