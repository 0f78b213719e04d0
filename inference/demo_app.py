"""`sif demo`: watch a model think with images.

Upload an image (and optionally its depth map) or pick a synthetic scene, ask a question, and
the answer streams in; each step's regions are drawn on the image and on the depth map as soon
as the step's `</text>` arrives, with a step strip below. When generation ends the answer is
highlighted and the strict format check says whether the chain is valid; partial or broken
output stays on screen, marked as such. Works with every backend in `inference.backends`.
"""

from __future__ import annotations

import html
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from inference.backends import DEFAULT_MAX_NEW_TOKENS
from sif.chain import Step, parse_chain, validate_chain
from sif.draw import draw_steps, step_colour, step_strip

CSS = """
.sif-answer {font-size: 1.3em; padding: .5em .8em; border-radius: 6px; background: #fff3b0; color: #222;
             border: 2px solid #e0b400; font-weight: 600}
.sif-answer.missing {background: #f3f3f3; border-color: #bbb; color: #777; font-weight: 400}
.sif-status {padding: .3em .6em; border-radius: 4px}
.sif-status.valid {background: #dff5e1; color: #145a1e}
.sif-status.invalid {background: #fde2e1; color: #8a1712}
.sif-status.running {background: #e5f0fb; color: #0d3c6e}
.sif-steps ol {margin: 0; padding-left: 0; list-style: none}
.sif-steps li {margin: .2em 0}
.sif-swatch {display: inline-block; min-width: 1.4em; text-align: center; color: #fff; border-radius: 3px;
             margin-right: .4em; font-weight: 600}
"""


@dataclass
class DemoConfig:
    backend: str = "hf"
    model: str | None = None
    adapter: str | None = None
    base_url: str | None = None
    depth_model: str | None = None
    scenes: int = 6  # synthetic scenes in the example gallery
    scenes_dir: Path | None = None  # default: $SIF_HOME/demo-scenes
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS


class LazyBackend:
    """Loads the backend on first use, so the page is up while a large model loads."""

    def __init__(self, config: DemoConfig, backend=None):
        self.config = config
        self._backend = backend
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._backend is not None

    def get(self):
        with self._lock:
            if self._backend is None:
                from inference.backends import load_backend

                c = self.config
                opts = {"depth_model": c.depth_model} if c.depth_model else {}
                self._backend = load_backend(c.backend, c.model, adapter=c.adapter, base_url=c.base_url, **opts)
            return self._backend


# ---------------------------------------------------------------- what the page shows


def completed_steps(text: str) -> tuple[Step, ...]:
    """The steps whose `</text>` has arrived (a step still being written is not drawn yet)."""
    end = text.rfind("</text>")
    return parse_chain(text[: end + len("</text>")]).chain.steps if end >= 0 else ()


def steps_html(steps) -> str:
    if not steps:
        return "<div class='sif-steps'><em>No step yet.</em></div>"
    items = []
    for i, step in enumerate(steps):
        r, g, b = step_colour(i)
        boxes = "; ".join(
            "["
            + ", ".join(f"{v:.3f}" for v in reg.bbox)
            + "]"
            + (f" d={reg.depth:.3f}" if reg.depth is not None else "")
            for reg in step.regions
        )
        items.append(
            f"<li class='sif-step'><span class='sif-swatch' style='background:rgb({r},{g},{b})'>{i + 1}</span>"
            f"{html.escape(step.text) or '<em>(no text)</em>'} <small>{html.escape(boxes)}</small></li>"
        )
    return "<div class='sif-steps'><ol>" + "".join(items) + "</ol></div>"


def status_html(text: str, done: bool, n_steps: int) -> str:
    if not done:
        return f"<div class='sif-status running'>Thinking… {n_steps} step(s) so far</div>"
    problems = validate_chain(text)
    if not text.strip():
        return "<div class='sif-status invalid'>✗ The model wrote nothing but whitespace.</div>"
    if not problems:
        return f"<div class='sif-status valid'>✓ Valid chain: {n_steps} step(s) and an answer.</div>"
    notes = [str(p) for p in problems] + [f"lenient parse: {s}" for s in parse_chain(text).skipped]
    items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return (
        f"<div class='sif-status invalid'>✗ Invalid or partial output ({len(problems)} problem(s)); "
        f"what could be read is shown.<ul>{items}</ul></div>"
    )


def answer_html(text: str, done: bool) -> str:
    answer = parse_chain(text).chain.answer
    if answer:
        return f"<div class='sif-answer'>{html.escape(answer)}</div>"
    return f"<div class='sif-answer missing'>{'waiting for the answer…' if not done else 'no answer'}</div>"


@dataclass
class View:
    """One update of the page; images are None when they did not change since the last view."""

    text: str
    overlay: object | None
    depth_overlay: object | None
    strip: object | None
    steps: str
    status: str
    answer: str
    n_steps: int
    done: bool


def think(backend, images, question: str, **sampling) -> Iterator[View]:
    """Stream a backend's answer as page views, redrawing the overlays when a step completes."""
    rgb, depth = images.image, images.depth.resize(images.image.size)
    text, drawn = "", -1
    pieces = backend.stream(rgb, images.depth, question, **sampling)
    for piece in _with_end(pieces):
        done = piece is None
        text += piece or ""
        steps = completed_steps(text) if not done else parse_chain(text).chain.steps
        changed = len(steps) != drawn or done
        if changed:
            drawn = len(steps)
            overlay, depth_overlay = draw_steps(rgb, steps), draw_steps(depth, steps)
            strip = step_strip(rgb, steps) if steps else None
        yield View(
            text,
            overlay if changed else None,
            depth_overlay if changed else None,
            strip if changed else None,
            steps_html(steps),
            status_html(text, done, len(steps)),
            answer_html(text, done),
            len(steps),
            done,
        )


def _with_end(pieces):
    yield from pieces
    yield None


# ---------------------------------------------------------------- scenes


def scenes_dir(config: DemoConfig) -> Path:
    if config.scenes_dir is not None:
        return Path(config.scenes_dir)
    from sif.paths import sif_home

    return sif_home() / "demo-scenes"


def demo_scenes(config: DemoConfig) -> list[list[str]]:
    """[image, depth image, question] for the example gallery, synthesized on first use."""
    if config.scenes <= 0:
        return []
    folder = scenes_dir(config)
    index = folder / "sif50k.json"
    records = json.loads(index.read_text()) if index.exists() else []
    if len(records) < config.scenes:
        from sif.synthetic import make_dataset

        records = json.loads(make_dataset(folder, config.scenes, seed=0).read_text())
    return [[str(folder / r["image"]), str(folder / r["depth_image"]), r["problem"]] for r in records[: config.scenes]]


# ---------------------------------------------------------------- app


def build_demo(config: DemoConfig = DemoConfig(), *, backend=None):
    """The Gradio app; `backend` (any object with `stream`) overrides loading one from `config`."""
    import gradio as gr

    from inference.backends import prepare_images

    lazy = LazyBackend(config, backend)

    def ask(image, depth, question, max_new_tokens, temperature):
        if image is None:
            raise gr.Error("Upload an image or pick a demo scene first.")
        if not (question or "").strip():
            raise gr.Error("Type a question.")
        skip = gr.skip()
        if not lazy.loaded:
            yield (
                "",
                None,
                None,
                None,
                "",
                "<div class='sif-status running'>Loading the model…</div>",
                skip,
            )
        model = lazy.get()
        try:
            images = prepare_images(image, depth, depth_model=getattr(model, "depth_model", "flat"))
        except (ValueError, FileNotFoundError) as exc:
            raise gr.Error(str(exc)) from None
        sampling = {"max_new_tokens": int(max_new_tokens), "temperature": float(temperature)}
        for v in think(model, images, question, **sampling):
            pictures = [skip if im is None else im for im in (v.overlay, v.depth_overlay, v.strip)]
            yield v.text, *pictures, v.steps, v.status, v.answer

    with gr.Blocks(title="SIF think-with-images demo") as app:
        gr.Markdown(
            "## Think with images\nAsk a question; each reasoning step's regions appear on the image and "
            "on its depth map as the model writes them."
        )
        with gr.Row():
            with gr.Column(scale=1):
                image = gr.Image(label="Image", type="pil", image_mode="RGB", elem_id="sif-image")
                depth = gr.Image(
                    label="Depth map (optional; estimated if left empty)",
                    type="filepath",
                    image_mode=None,
                    elem_id="sif-depth",
                )
                question = gr.Textbox(label="Question", elem_id="sif-question")
                with gr.Accordion("Sampling", open=False):
                    max_new_tokens = gr.Slider(16, 4096, value=config.max_new_tokens, step=16, label="max new tokens")
                    temperature = gr.Slider(0.0, 1.5, value=0.0, step=0.05, label="temperature (0 = greedy)")
                ask_button = gr.Button("Ask", variant="primary", elem_id="sif-ask")
            with gr.Column(scale=2):
                answer = gr.HTML(answer_html("", False), elem_id="sif-answer")
                status = gr.HTML("", elem_id="sif-status")
                with gr.Row():
                    overlay = gr.Image(label="Steps on the image", interactive=False, elem_id="sif-overlay")
                    depth_overlay = gr.Image(
                        label="Steps on the depth map", interactive=False, elem_id="sif-depth-overlay"
                    )
                strip = gr.Image(label="Step strip", interactive=False, height=170, elem_id="sif-strip")
                steps = gr.HTML(steps_html(()), elem_id="sif-steps")
                raw = gr.Textbox(label="Model output (streaming)", lines=8, interactive=False, elem_id="sif-raw")
        examples = demo_scenes(config)
        if examples:
            gr.Examples(
                examples,
                inputs=[image, depth, question],
                label="Demo scenes (synthetic, with exact depth)",
                examples_per_page=8,
                elem_id="sif-examples",
            )
        outputs = [raw, overlay, depth_overlay, strip, steps, status, answer]
        inputs = [image, depth, question, max_new_tokens, temperature]
        ask_button.click(ask, inputs, outputs)
        question.submit(ask, inputs, outputs)
    return app


def launch_demo(config: DemoConfig, *, host: str = "127.0.0.1", port: int | None = None, **launch):
    if config.backend in ("hf", "vllm"):
        from inference.backends import resolve_model

        resolve_model(config.model, config.backend)  # no model, or an unbuilt demo model: say so before the page opens
    app = build_demo(config)
    app.queue().launch(server_name=host, server_port=port, css=CSS, **launch)
    return app
