"""Commands on the domain core alone: `sif synth`, `sif validate`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.main import app
from sif.errors import ConfigError


def _parse_sizes(text: str) -> tuple[tuple[int, int], ...]:
    sizes = []
    for part in text.split(","):
        w, sep, h = part.strip().lower().partition("x")
        if not sep or not w.isdigit() or not h.isdigit():
            raise ConfigError(f"--sizes: {part.strip()!r} is not WIDTHxHEIGHT (e.g. 320x240)")
        sizes.append((int(w), int(h)))
    return tuple(sizes)


@app.command()
def synth(
    out: Annotated[Path, typer.Argument(help="Folder to write images/, depth/ and sif50k.json into.")],
    n: Annotated[int, typer.Option("--n", min=1, help="Number of samples.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Sample i depends only on (seed, i).")] = 0,
    min_objects: Annotated[int, typer.Option("--min-objects", min=1, help="Fewest objects in a scene.")] = 2,
    max_objects: Annotated[int, typer.Option("--max-objects", min=1, help="Most objects in a scene.")] = 6,
    sizes: Annotated[
        str, typer.Option("--sizes", help="Image sizes to draw from, WxH,WxH.")
    ] = "320x240,256x256,240x320,384x256",
    kinds: Annotated[str, typer.Option("--kinds", help="Question kinds, comma separated (default: all).")] = "",
    distractor_prob: Annotated[
        float, typer.Option("--distractor-prob", min=0.0, max=1.0, help="Chance a chain first looks at a wrong region.")
    ] = 0.5,
    split_ratio: Annotated[
        float, typer.Option("--split-ratio", min=0.0, max=1.0, help="Fraction of samples marked split=test.")
    ] = 0.1,
):
    """Draw synthetic 3-D scenes with exact depth, spatial questions and SIF chains (SIF-50K format)."""
    from sif.synthetic import QUESTION_KINDS, make_dataset

    path = make_dataset(
        out,
        n,
        seed,
        min_objects=min_objects,
        max_objects=max_objects,
        sizes=_parse_sizes(sizes),
        kinds=tuple(k.strip() for k in kinds.split(",") if k.strip()) or QUESTION_KINDS,
        distractor_prob=distractor_prob,
        split_ratio=split_ratio,
    )
    typer.echo(f"wrote {n} samples to {path}")


@app.command()
def validate(
    path: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="A chain text file, or a SIF-50K JSON list.")
    ],
    show: Annotated[int, typer.Option("--show", min=0, help="Print at most this many invalid records.")] = 20,
):
    """Check chains against the strict chain format (docs/format.md); exits 1 when any is invalid."""
    from sif.validate import validate_file

    results = validate_file(path)
    bad = [(name, problems) for name, problems in results if problems]
    for name, problems in bad[:show]:
        typer.echo(f"{name}: " + "; ".join(f"rule {p.rule}: {p}" for p in problems))
    typer.echo(f"{len(results) - len(bad)} valid, {len(bad)} invalid of {len(results)}")
    if bad:
        raise typer.Exit(1)
