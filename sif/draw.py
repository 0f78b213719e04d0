"""Drawing chains over images: per-step coloured boxes with step numbers, and a step strip.

Shared by the workbench, the demo, `sif infer` and the teacher's step images, so a chain looks
the same everywhere. Boxes are normalized; pixels are computed for the image at hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import cast

from PIL import Image, ImageDraw, ImageFont

from sif.chain import Chain, Region, Step
from sif.geometry import to_pixels

STEP_COLOURS = [
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (0, 128, 128),
    (170, 110, 40),
]
GT_COLOUR = (255, 255, 255)


def step_colour(index: int) -> tuple[int, int, int]:
    return STEP_COLOURS[index % len(STEP_COLOURS)]


@lru_cache(maxsize=32)
def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _boxes(regions) -> list[list[float]]:
    return [list(r.bbox) if isinstance(r, Region) else list(r) for r in regions]


def _draw_into(img: Image.Image, boxes, colour, label, dashed=False, label_below=False) -> None:
    draw = ImageDraw.Draw(img)
    W, H = img.size
    lw = max(2, round(min(W, H) / 160))
    font = _font(max(10, round(min(W, H) / 22)))
    for box in boxes:
        x1, y1, x2, y2 = to_pixels(box, W, H)
        x2, y2 = max(x2 - 1, x1), max(y2 - 1, y1)  # the last covered pixel, not one past it
        if dashed:
            _dashed_rect(draw, (x1, y1, x2, y2), colour, lw)
        else:
            draw.rectangle((x1, y1, x2, y2), outline=colour, width=lw)
        if label:
            tb = draw.textbbox((0, 0), label, font=font)
            tw, th = tb[2] - tb[0] + 4, tb[3] - tb[1] + 4
            if label_below:  # ground truth labels sit under the box, clear of the step numbers
                ty = y2 + 1 if y2 + 1 + th <= H else y2 - th
            else:
                ty = y1 - th if y1 - th >= 0 else y1
            draw.rectangle((x1, ty, x1 + tw, ty + th), fill=colour)
            draw.text(
                (x1 + 2 - tb[0], ty + 2 - tb[1]),
                label,
                fill=(0, 0, 0) if sum(colour) > 400 else (255, 255, 255),
                font=font,
            )


def _dashed_rect(draw, rect, colour, width, dash=6):
    x1, y1, x2, y2 = rect
    for x in range(int(x1), int(x2), dash * 2):
        draw.line((x, y1, min(x + dash, x2), y1), fill=colour, width=width)
        draw.line((x, y2, min(x + dash, x2), y2), fill=colour, width=width)
    for y in range(int(y1), int(y2), dash * 2):
        draw.line((x1, y, x1, min(y + dash, y2)), fill=colour, width=width)
        draw.line((x2, y, x2, min(y + dash, y2)), fill=colour, width=width)


def draw_steps(
    image: Image.Image,
    steps: Sequence[Step] | Sequence[Sequence[Region]],
    *,
    only: int | None = None,
    gt_boxes: Sequence[Sequence[float]] | None = None,
    first: int = 0,
) -> Image.Image:
    """All steps' regions (or only step `only`, 0-based), a colour per step, numbered from 1;
    ground truth dashed in white. `steps` may be a window of a longer chain starting at step
    `first` (0-based), so numbers and colours stay those of the whole chain."""
    out = image.convert("RGB")  # a new image: convert copies even when the mode matches
    if gt_boxes:
        _draw_into(out, gt_boxes, GT_COLOUR, "GT", dashed=True, label_below=True)
    for i, step in enumerate(steps, start=first):
        if only is not None and i != only:
            continue
        regions = step.regions if isinstance(step, Step) else step
        _draw_into(out, _boxes(regions), step_colour(i), str(i + 1))
    return out


def draw_chain(image: Image.Image, chain: Chain, **kwargs) -> Image.Image:
    return draw_steps(image, chain.steps, **kwargs)


def step_strip(
    image: Image.Image,
    steps: Sequence[Step] | Sequence[Sequence[Region]],
    *,
    thumb_height: int = 120,
    gap: int = 6,
    first: int = 0,
) -> Image.Image:
    """One thumbnail per step with that step's boxes, left to right, so the focus path reads at a
    glance (`first`: the chain's index of `steps[0]`, when `steps` is a window)."""
    W, H = image.size
    tw = max(1, round(W * thumb_height / H))
    base = image.convert("RGB").resize((tw, thumb_height), Image.Resampling.BILINEAR)
    n = max(1, len(steps))
    strip = Image.new("RGB", (n * tw + (n - 1) * gap, thumb_height), (245, 245, 245))
    for i, step in enumerate(steps):
        strip.paste(draw_steps(base, cast(Sequence[Step], [step]), first=first + i), (i * (tw + gap), 0))
    return strip
