"""What the curator sees of a sample: the picture and its depth map with a chain's regions drawn,
and the step strip, written as JPEG files the browser fetches.

Pictures are decoded once and kept at the size the editor shows them (bounded LRU keyed by file
version), zoomed up when the image is smaller than the editor, so flipping between samples and
steps only draws boxes. A long chain is drawn as a window of steps around the selected one."""

from __future__ import annotations

import hashlib
import io
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw

from sif.chain import Step
from sif.depth import DepthMap
from sif.draw import draw_steps, step_strip

EDITOR_BOX = (600, 450)  # the picture fits this box (small images are zoomed up to it)
STRIP_HEIGHT = 64
STRIP_WINDOW = 9  # thumbnails in the step strip
STRIP_GAP = 6
DRAW_WINDOW = 60  # "all steps" of a longer chain draws this many around the selected step
JPEG_QUALITY = 88


def fit_size(width: int, height: int, box: tuple[int, int] = EDITOR_BOX) -> tuple[int, int]:
    """`width` × `height` scaled (up or down) to fit `box`."""
    scale = min(box[0] / max(width, 1), box[1] / max(height, 1))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _version(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path), st.st_mtime_ns, st.st_size


@lru_cache(maxsize=96)
def _picture(version: tuple[str, int, int]) -> Image.Image:
    with Image.open(version[0]) as opened:
        img = opened.convert("RGB")
    size = fit_size(*img.size)
    return img if img.size == size else img.resize(size, Image.Resampling.BILINEAR)


@lru_cache(maxsize=96)
def _depth_picture(version: tuple[str, int, int]) -> Image.Image:
    with Image.open(version[0]) as opened:
        img = opened.convert("RGB")
    size = fit_size(*img.size)
    return img if img.size == size else img.resize(size, Image.Resampling.NEAREST)


_THUMBNAILS: OrderedDict[int, tuple[Image.Image, Image.Image]] = OrderedDict()
_THUMBNAILS_LOCK = threading.Lock()


def _thumbnail(picture: Image.Image) -> Image.Image:
    """The strip's base picture, kept for the last pictures (keyed by the cached picture object)."""
    with _THUMBNAILS_LOCK:
        hit = _THUMBNAILS.get(id(picture))
        if hit is not None and hit[0] is picture:
            _THUMBNAILS.move_to_end(id(picture))
            return hit[1]
    W, H = picture.size
    thumb = picture.resize((max(1, round(W * STRIP_HEIGHT / H)), STRIP_HEIGHT), Image.Resampling.BILINEAR)
    with _THUMBNAILS_LOCK:
        _THUMBNAILS[id(picture)] = (picture, thumb)
        while len(_THUMBNAILS) > 96:
            _THUMBNAILS.popitem(last=False)
    return thumb


def clear_caches() -> None:
    _picture.cache_clear()
    _depth_picture.cache_clear()
    with _THUMBNAILS_LOCK:
        _THUMBNAILS.clear()


def placeholder(message: str, width: int = 320, height: int = 240) -> Image.Image:
    """A grey picture saying what is missing, shown instead of failing."""
    img = Image.new("RGB", fit_size(max(width, 1), max(height, 1)), (90, 90, 90))
    ImageDraw.Draw(img).text((8, 8), message, fill=(255, 255, 255))
    return img


def load_picture(path: Path | None, *, width: int = 320, height: int = 240) -> Image.Image:
    """The editor-size RGB picture at `path`, or a placeholder naming what is wrong."""
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
    blue) at editor size, or a placeholder naming what is wrong."""
    if path is None:
        return placeholder("no depth map", width, height)
    try:
        return _depth_picture(_version(path))
    except (OSError, ValueError) as exc:
        return placeholder(f"depth unreadable: {path.name}\n{exc.__class__.__name__}", width, height)


def window(n: int, selected: int, size: int) -> range:
    """At most `size` step indices of `n`, around `selected`."""
    if n <= size:
        return range(n)
    start = min(max(selected - size // 2, 0), n - size)
    return range(start, start + size)


@dataclass
class Views:
    image: Image.Image  # the picture with the chain (all steps or one) and the ground truth
    depth: Image.Image  # the same over the depth map
    strip: Image.Image  # a thumbnail per step of a window around the selected step
    drawn: range  # the steps drawn on the picture and the depth map
    stripped: range  # the steps in the strip


def render_views(
    picture: Image.Image,
    depth_picture: Image.Image,
    steps: Sequence[Step],
    gt_boxes: Sequence[Sequence[float]] | None,
    *,
    selected: int = 0,
    only_selected: bool = False,
    show_gt: bool = True,
    hide: int | None = None,
) -> Views:
    """Both overlays (every step of a window, or the selected one; ground truth optional) and
    the strip. `hide` leaves one step off the picture (the box editor draws that one itself)."""
    n = len(steps)
    drawn = range(selected, selected + 1) if only_selected and n else window(n, selected, DRAW_WINDOW)
    gt = list(gt_boxes or []) if show_gt else None
    on_picture = [steps[i] if i != hide else Step((), "") for i in drawn]
    stripped = window(n, selected, STRIP_WINDOW)
    strip = (
        step_strip(
            _thumbnail(picture),
            [steps[i] for i in stripped],
            thumb_height=STRIP_HEIGHT,
            gap=STRIP_GAP,
            first=stripped.start,
        )
        if n
        else placeholder("no steps", 160, STRIP_HEIGHT)
    )
    return Views(
        draw_steps(picture, on_picture, gt_boxes=gt, first=drawn.start),
        draw_steps(depth_picture, [steps[i] for i in drawn], gt_boxes=gt, first=drawn.start),
        strip,
        drawn,
        stripped,
    )


class PictureFiles:
    """Writes rendered pictures as JPEG files in `folder` (named by content, so an unchanged
    picture is written and fetched once), for the browser to load; the folder is what the app
    serves, never the data root.

    The files under `bound` (default `folder`; the app passes its whole served cache, which also
    holds Gradio's copies of what the box editor sends back) are kept to `keep` files: every
    `SWEEP_EVERY` new files the oldest (by last use) are removed, so a long session does not fill
    the disk. A picture handed out again is touched, so what is on screens now stays."""

    SWEEP_EVERY = 32

    def __init__(self, folder: Path, *, keep: int = 600, bound: Path | None = None):
        self.folder = Path(folder)
        self.bound = Path(bound) if bound is not None else self.folder
        self.keep = keep
        self._written = 0
        self._lock = threading.Lock()

    def write(self, image: Image.Image, name: str) -> str:
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=JPEG_QUALITY)
        data = buf.getvalue()
        path = self.folder / f"{name}-{hashlib.sha1(data).hexdigest()[:20]}.jpg"
        try:
            os.utime(path)
            return str(path)
        except FileNotFoundError:
            pass
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{name}.{threading.get_ident()}.tmp"
        tmp.write_bytes(data)
        tmp.replace(path)
        with self._lock:
            self._written += 1
            sweep = self._written % self.SWEEP_EVERY == 0
        if sweep:
            self.sweep()
        return str(path)

    def sweep(self) -> int:
        """Remove the least recently used files beyond `keep` under `bound` (and the folders they
        leave empty, such as Gradio's per-file ones); returns how many were removed."""
        files = []
        for root, _, names in os.walk(self.bound):
            for n in names:
                p = os.path.join(root, n)
                try:
                    files.append((os.stat(p).st_mtime, p))
                except FileNotFoundError:
                    continue
        if len(files) <= self.keep:
            return 0
        files.sort()
        removed = 0
        for _, p in files[: len(files) - self.keep]:
            try:
                os.unlink(p)
                removed += 1
                os.rmdir(os.path.dirname(p))  # only when it is empty now
            except OSError:
                continue
        return removed

    def count(self) -> int:
        return sum(len(names) for _, _, names in os.walk(self.bound))
