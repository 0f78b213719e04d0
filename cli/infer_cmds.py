"""Inference commands: `sif infer`, `sif demo`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.main import app

BackendOption = Annotated[
    str,
    typer.Option(
        "--backend", help="hf (local transformers), vllm (offline engine, GPU) or openai (OpenAI-compatible server)."
    ),
]
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="Model directory or id; `demo` is the embedded tiny model that `sif train demo-run` builds (openai: the served model name, default $SIF_OPENAI_MODEL).",
        show_default=False,
    ),
]
AdapterOption = Annotated[
    str | None,
    typer.Option("--adapter", help="LoRA adapter directory to apply on --model (hf, vllm).", show_default=False),
]
BaseUrlOption = Annotated[
    str | None,
    typer.Option("--base-url", help="OpenAI-compatible server (default: $SIF_OPENAI_BASE_URL).", show_default=False),
]
DepthModelOption = Annotated[
    str | None,
    typer.Option(
        "--depth-model",
        help="Depth estimator for images without a depth map: HF id, local path, large, small, tiny (offline, "
        "random) or flat (default: Depth Anything V2 Large; flat for the tiny demo model).",
        show_default=False,
    ),
]


@app.command()
def infer(
    image: Annotated[Path, typer.Option("--image", exists=True, dir_okay=False, help="The image to ask about.")],
    question: Annotated[str, typer.Option("--question", help="The question.")],
    depth: Annotated[
        Path | None,
        typer.Option(
            "--depth",
            exists=True,
            dir_okay=False,
            help="Its depth map (spectral_r, gray_disparity or gray16_depth); estimated when left out.",
            show_default=False,
        ),
    ] = None,
    model: ModelOption = None,
    backend: BackendOption = "hf",
    adapter: AdapterOption = None,
    base_url: BaseUrlOption = None,
    depth_model: DepthModelOption = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Folder for step overlays, chain.png, strip.png and summary.json.", show_default=False
        ),
    ] = None,
    max_new_tokens: Annotated[
        int, typer.Option("--max-new-tokens", min=1, help="Longest answer, in tokens (the reference's 2048).")
    ] = 2048,
    max_pixels: Annotated[
        int,
        typer.Option(
            "--max-pixels", min=1, help="Images above this many pixels are scaled down (the reference's 768²)."
        ),
    ] = 589_824,
    temperature: Annotated[float, typer.Option("--temperature", min=0.0, help="0 = greedy.")] = 0.0,
    top_p: Annotated[
        float, typer.Option("--top-p", min=0.0, max=1.0, help="Nucleus sampling mass (when sampling).")
    ] = 1.0,
):
    """Ask a model a question about an image; print its chain, validity and each step's regions."""
    from inference.infer import infer as run

    result, paths = run(
        image,
        question,
        depth=depth,
        backend=backend,
        model=model,
        adapter=adapter,
        base_url=base_url,
        depth_model=depth_model,
        max_pixels=max_pixels,
        out_dir=out,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
    )
    _print_result(result)
    if paths:
        typer.echo(f"wrote {len(paths)} files to {out}")


def _print_result(result) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.rule("chain")
    console.print(result.text, markup=False, highlight=False)
    console.rule("validity")
    if result.valid:
        console.print("[green]valid[/green]: strictly follows the SIF format")
    else:
        console.print(f"[red]invalid[/red]: {len(result.problems)} problem(s)")
        for p in result.problems:
            console.print(f"  - {p}", markup=False)
    for note in result.parsed.skipped:
        console.print(f"  [yellow]lenient parse:[/yellow] {note}")
    steps = result.steps_json()
    table = Table(
        "step",
        "box (normalized)",
        "pixels",
        "depth",
        "measured",
        "text",
        title=f"steps (depth map: {result.images.source})",
    )
    for i, step in enumerate(steps, 1):
        for j, r in enumerate(step["regions"]):
            table.add_row(
                str(i) if j == 0 else "",
                ", ".join(f"{v:.3f}" for v in r["bbox_2d"]),
                _cell(r["pixels"], str),
                _cell(r["depth"]),
                _cell(r["measured_depth"]),
                step["text"] if j == 0 else "",
            )
    console.print(table if steps else "no step could be read")
    console.print(
        f"answer: [bold]{result.parsed.chain.answer if result.parsed.chain.answer is not None else '(none)'}[/bold]"
    )


def _cell(value, fmt=lambda v: f"{v:.3f}") -> str:
    if value is None:
        return "-"
    return ", ".join(map(fmt, value)) if isinstance(value, list) else fmt(value)


@app.command()
def demo(
    model: ModelOption = None,
    backend: BackendOption = "hf",
    adapter: AdapterOption = None,
    base_url: BaseUrlOption = None,
    depth_model: DepthModelOption = None,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[
        int | None, typer.Option("--port", help="Port (default: the first free one from 7860).", show_default=False)
    ] = None,
    scenes: Annotated[int, typer.Option("--scenes", min=0, help="Synthetic demo scenes in the example gallery.")] = 6,
):
    """A Gradio app: ask a question about an image and watch each step's regions appear as the model thinks."""
    from inference.demo_app import DemoConfig, launch_demo

    launch_demo(
        DemoConfig(
            backend=backend, model=model, adapter=adapter, base_url=base_url, depth_model=depth_model, scenes=scenes
        ),
        host=host,
        port=port,
    )
