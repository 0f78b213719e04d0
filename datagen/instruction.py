"""What the teacher VLM is asked (FORMATS §6, step 5): the construction instruction and step images.

The focus path is fixed by the planner; the teacher only writes each step's text and the answer.
The instruction therefore hands it the exact `<area>` lines to copy, says what each step is for
(a distractor must be looked at and then rejected), and shows one image per step with that
step's boxes drawn.
"""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image

from common.openai_client import image_data_url, user_message
from sif.chain import render_area
from sif.draw import draw_steps
from sif.plan import FocusPlan

STEP_PURPOSE = {
    "whole": "the whole image: take in the scene and say what the question is looking for",
    "distractor": (
        "a region that does NOT answer the question: look at it, say what is there and why it is "
        "not what the question asks about, then turn elsewhere"
    ),
    "enclosing": "the area that encloses every candidate region: say what lies inside it",
    "expansion": "the surroundings of the target: say what is there and where the target must be",
    "gt": "the region(s) that answer the question: describe what settles the answer",
}


def open_rgb(path: str | Path, max_side: int | None = None) -> Image.Image:
    """The picture in RGB. A JPEG to be shown at most `max_side` large is decoded at a reduced
    scale (libjpeg's DCT scaling, still at least that large): several times faster on big photos."""
    with Image.open(path) as img:
        if max_side and max(img.size) > max_side:
            scale = max_side / max(img.size)
            img.draft("RGB", (math.ceil(img.width * scale), math.ceil(img.height * scale)))
        img.load()
        return img if img.mode == "RGB" else img.convert("RGB")


def step_images(image: Image.Image, plan: FocusPlan, *, max_side: int | None = 768) -> list[Image.Image]:
    """One copy of `image` per step with that step's boxes drawn, scaled to at most `max_side`."""
    img = image if image.mode == "RGB" else image.convert("RGB")  # each step draws on its own copy
    if max_side and max(img.size) > max_side:
        scale = max_side / max(img.size)
        img = img.resize(
            (max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.BILINEAR
        )
    return [draw_steps(img, plan.steps, only=i) for i in range(len(plan.steps))]


def teacher_instruction(question: str, answer: str, plan: FocusPlan) -> str:
    """The construction instruction in plain words, with the planned regions to copy verbatim."""
    n = len(plan.steps)
    lines = [
        "You are writing one training example of step-by-step visual reasoning, in which every "
        "step names the image regions it looks at before it says what it sees there.",
        "",
        f"Question: {question.strip()}",
        f"Correct answer: {answer.strip()}",
        "",
        f"The path of focus is fixed in advance and has {n} steps. Image k above shows the picture "
        "with the boxes of step k drawn in that step's colour and number. A box is "
        "[x1, y1, x2, y2] in fractions of the image width and height, (0, 0) at the top left; "
        "depth is the mean relative depth of the region, 0 the nearest point and 1 the farthest.",
        "",
    ]
    for i, (regions, kind) in enumerate(zip(plan.steps, plan.kinds), start=1):
        lines.append(f"Step {i} — {STEP_PURPOSE[kind]}:")
        lines.append(f"<area>{render_area(regions)}</area>")
    lines += [
        "",
        "For each step write one or two sentences about what its regions show and how that leads "
        "to the next step; use the depths where they help (nearer, farther, in front of, behind). "
        "Reason as if you were finding the answer yourself: do not mention drawn boxes, colours, "
        "step numbers, or that the answer was given to you.",
        "",
        "Reply with exactly this structure and nothing else, copying every <area> line above "
        "unchanged and in the same order:",
        "<think>",
        "<area>…step 1 regions…</area>",
        "<text>…</text>",
        "… one <area>/<text> pair per step …",
        "</think>",
        "<answer>the correct answer, in one short sentence of your own</answer>",
    ]
    return "\n".join(lines)


def encode_step_images(
    image: Image.Image | str | Path,
    plan: FocusPlan,
    *,
    max_side: int | None = 768,
    quality: int | None = None,
) -> list[str]:
    """The step images as JPEG data URLs (at `quality`, Pillow's 75 by default). From a path, a
    big JPEG is decoded at a reduced scale."""
    if not isinstance(image, Image.Image):
        image = open_rgb(image, max_side)
    return [image_data_url(im, "JPEG", quality) for im in step_images(image, plan, max_side=max_side)]


def teacher_messages(
    image: Image.Image | str | Path,
    question: str,
    answer: str,
    plan: FocusPlan,
    *,
    max_side: int | None = 768,
    quality: int | None = None,
) -> list[dict]:
    """The chat messages for one sample: the step images of the picture (or its path), then the instruction."""
    urls = encode_step_images(image, plan, max_side=max_side, quality=quality)
    return [user_message(teacher_instruction(question, answer, plan), urls)]
