"""Depth commands: `sif depth [estimate] IMG...` and `sif depth render --db`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from cli.main import app
from cli.options import DEFAULT_DB, DbOption, fail


class EstimateByDefault(TyperGroup):
    """`sif depth IMG...` is `sif depth estimate IMG...`: the command's first form keeps working."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["estimate", *args]
        return super().parse_args(ctx, args)


depth_app = typer.Typer(
    cls=EstimateByDefault,
    help="Depth maps: estimate them for images, render the spectral_r pictures models see.",
    no_args_is_help=True,
)
app.add_typer(depth_app, name="depth")


@depth_app.command("estimate")
def estimate(
    images: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, help="Image files.")],
    out: Annotated[
        Path, typer.Option("--out", help="Folder for NAME_depth.png (gray16_depth) and NAME_d.png (spectral_r).")
    ] = Path("depth"),
    depth_model: Annotated[
        str | None,
        typer.Option(
            "--depth-model",
            help="HF id, local path, large, small, or tiny (offline, random weights). Default: Depth Anything V2 Large.",
            show_default=False,
        ),
    ] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
):
    """Estimate depth maps (Depth Anything V2) in the project's convention: 0 nearest, 1 farthest."""
    from common.settings import DEFAULT_DEPTH_MODEL
    from datagen.depth_model import estimate_depth_files

    result = estimate_depth_files(images, out, depth_model or DEFAULT_DEPTH_MODEL, progress=progress)
    for path, why in result.failed:
        typer.secho(f"skipped {path}: {why}", fg=typer.colors.YELLOW, err=True)
    typer.echo(f"wrote {len(result.written)} depth map(s) to {out}; {len(result.failed)} failed")
    if result.failed:
        raise typer.Exit(1)


@depth_app.command("render")
def render(
    db: DbOption = DEFAULT_DB,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
    show: Annotated[int, typer.Option("--show-errors", min=0, help="Print at most this many failures.")] = 20,
):
    """Write the spectral_r picture models see beside every sample's depth map that lacks one (gray16, gray)."""
    from db.renderings import render_store
    from db.store import Store

    if not db.exists():
        fail(f"no store at {db}; create one with `sif import …` (or set --db / $SIF_DB)")
    with Store.open(db) as store:
        report = render_store(store, progress=progress)
    for line in report.failed[:show]:
        typer.secho(line, fg=typer.colors.YELLOW, err=True)
    typer.echo(report.summary())
    if report.failed and not report.rendered + report.ready:
        fail("no depth picture could be rendered (see above)")
