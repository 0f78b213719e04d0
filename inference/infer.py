"""`sif infer`: ask a model one question about one image and keep what it thought.

The answer text is parsed leniently (so partial or broken output still shows its steps) and
checked strictly; each step's regions are compared with the depth map they claim to describe.
Outputs: one overlay per step on the image and on the depth map, the whole chain, a step strip,
the depth image the model saw, and `summary.json`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from common.settings import DEFAULT_DEPTH_MODEL
from inference.backends import Backend, SifImages, prepare_images
from sif.chain import ParseResult, Problem, parse_chain, validate_chain
from sif.draw import draw_chain, draw_steps, step_strip
from sif.prompts import SIF_SUFFIX


@dataclass
class InferenceResult:
    question: str
    text: str
    images: SifImages
    elapsed_s: float
    parsed: ParseResult = field(init=False)
    problems: list[Problem] = field(init=False)

    def __post_init__(self):
        self.parsed = parse_chain(self.text)
        self.problems = validate_chain(self.text)

    @property
    def valid(self) -> bool:
        return not self.problems

    def steps_json(self) -> list[dict]:
        """Each step's text and regions: normalized box, the pixels it covers (x1, y1, x2, y2,
        end exclusive, FORMATS §2), claimed and measured depth."""
        depth = self.images.depth_map
        out = []
        for step in self.parsed.chain.steps:
            regions = []
            for r in step.regions:
                x1, y1, x2, y2 = r.bbox
                ok = 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1
                regions.append(
                    {
                        "bbox_2d": list(r.bbox),
                        "depth": r.depth,
                        "pixels": list(depth.pixel_span(r.bbox)) if ok else None,
                        "measured_depth": round(depth.box_mean(r.bbox), 3) if ok else None,
                    }
                )
            out.append({"text": step.text, "regions": regions})
        return out

    def summary(self) -> dict:
        return {
            "question": self.question,
            "text": self.text,
            "valid": self.valid,
            "problems": [str(p) for p in self.problems],
            "skipped": self.parsed.skipped,
            "answer": self.parsed.chain.answer,
            "steps": self.steps_json(),
            "image_size": list(self.images.image.size),
            "depth_source": self.images.source,
            "elapsed_s": round(self.elapsed_s, 3),
        }


def run_inference(
    backend: Backend,
    image,
    depth,
    question: str,
    *,
    suffix: str = SIF_SUFFIX,
    depth_model: str | None = None,
    **sampling,
) -> InferenceResult:
    """Prepare the two images (estimating depth when none is given: `depth_model`, else the
    backend's), generate, parse."""
    model: str = depth_model or getattr(backend, "depth_model", None) or DEFAULT_DEPTH_MODEL
    images = prepare_images(image, depth, depth_model=model)
    start = time.monotonic()
    text = backend.generate(images.image, images.depth, question, suffix=suffix, **sampling)
    return InferenceResult(question, text, images, time.monotonic() - start)


def write_outputs(result: InferenceResult, out_dir: str | Path) -> list[Path]:
    """Per-step overlays (`step_01.png`, `step_01_depth.png`, …), `chain.png`, `strip.png`,
    `depth_d.png` and `summary.json` under `out_dir`; returns the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rgb, depth = result.images.image, result.images.depth.resize(result.images.image.size)
    steps = result.parsed.chain.steps
    written: dict[Path, Image.Image] = {}
    for i in range(len(steps)):
        written[out / f"step_{i + 1:02d}.png"] = draw_steps(rgb, steps, only=i)
        written[out / f"step_{i + 1:02d}_depth.png"] = draw_steps(depth, steps, only=i)
    written[out / "chain.png"] = draw_chain(rgb, result.parsed.chain)
    if steps:
        written[out / "strip.png"] = step_strip(rgb, steps)
    written[out / "depth_d.png"] = result.images.depth
    for path, img in written.items():
        img.save(path)
    summary = out / "summary.json"
    paths = [*written, summary]
    summary.write_text(json.dumps({**result.summary(), "files": [p.name for p in paths]}, indent=1))
    return paths


def infer(
    image,
    question: str,
    *,
    depth=None,
    backend: str = "hf",
    model: str | None = None,
    adapter: str | None = None,
    base_url: str | None = None,
    depth_model: str | None = None,
    max_pixels: int | None = None,
    suffix: str = SIF_SUFFIX,
    out_dir: str | Path | None = None,
    **sampling,
) -> tuple[InferenceResult, list[Path]]:
    """Load the backend, answer one question, and write the outputs to `out_dir` if given."""
    from inference.backends import load_backend

    opts: dict = {"depth_model": depth_model} if depth_model else {}
    if max_pixels:
        opts["max_pixels"] = max_pixels
    loaded = load_backend(backend, model, adapter=adapter, base_url=base_url, **opts)
    result = run_inference(loaded, image, depth, question, suffix=suffix, **sampling)
    return result, (write_outputs(result, out_dir) if out_dir is not None else [])
