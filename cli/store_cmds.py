"""Commands that move data in and out of the SQLite store: `sif import …`, `sif export …`, `sif stats`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cli.main import app
from cli.options import DEFAULT_DB, DbOption, fail

import_app = typer.Typer(
    help="Import datasets into the store (idempotent; bad records are reported, not fatal).", no_args_is_help=True
)
export_app = typer.Typer(help="Export training data from the store.", no_args_is_help=True)
app.add_typer(import_app, name="import")
app.add_typer(export_app, name="export")

FileArg = Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The annotation file (JSON list or JSONL).")]
DataRootOption = Annotated[
    Path | None,
    typer.Option(
        "--data-root",
        help="Data root recorded when the store is created (default: the image folder); paths must lie under it.",
    ),
]
MissingOption = Annotated[
    bool, typer.Option("--allow-missing", help="Import records whose image files are missing, marked as missing.")
]
ShowOption = Annotated[int, typer.Option("--show-errors", min=0, help="Print at most this many record errors.")]
StatusOption = Annotated[
    list[str] | None,
    typer.Option("--status", help="Review status to export (repeatable; default: every status but rejected)."),
]
SplitOption = Annotated[str, typer.Option("--split", help="Split to export ('all' for every split).")]


def _import(
    kind: str,
    db: Path,
    file: Path,
    source_dir: Path,
    data_root,
    allow_missing: bool,
    show: int,
    unpad_boxes: bool = False,
    recipe: str | None = None,
    seed: int = 0,
) -> None:
    from db.importers import import_dataset
    from db.renderings import rendering_hint

    store, report = import_dataset(
        db,
        kind,
        file,
        source_dir,
        data_root=data_root,
        allow_missing=allow_missing,
        unpad_boxes=unpad_boxes,
        recipe=recipe,
        seed=seed,
    )
    with store:
        hint = rendering_hint(store)
    for line in report.errors[:show]:
        typer.secho(line, fg=typer.colors.YELLOW, err=True)
    if len(report.errors) > show:
        typer.secho(f"… and {len(report.errors) - show} more errors", fg=typer.colors.YELLOW, err=True)
    for note in report.notes:
        typer.echo(note)
    typer.echo(f"{store.path}: {report.summary()}")
    if hint:
        typer.echo(hint)
    if report.records and report.added + report.existing == 0:
        fail("no record could be imported (see the errors above)")


@import_app.command("sif50k")
def import_sif50k(
    file: FileArg,
    root: Annotated[
        Path, typer.Option("--root", exists=True, file_okay=False, help="Folder the record paths are relative to.")
    ],
    db: DbOption = DEFAULT_DB,
    data_root: DataRootOption = None,
    allow_missing: MissingOption = False,
    unpad_boxes: Annotated[
        bool,
        typer.Option(
            "--unpad-boxes",
            help="Correct ground-truth boxes normalized to the square-padded image (recorded per sample).",
        ),
    ] = False,
    show: ShowOption = 20,
):
    """Import SIF-50K JSON (released, `sif synth` output, or `sif export sft`); chains become `imported` revisions."""
    _import("sif50k", db, file, root, data_root, allow_missing, show, unpad_boxes)


RecipeOption = Annotated[
    str | None,
    typer.Option(
        "--recipe", help="paper: the paper's selection (text-heavy subsets left out, at most 10,000 per dataset)."
    ),
]
SeedOption = Annotated[int, typer.Option("--seed", help="Seed of the recipe's draw.")]


def _images_importer(kind: str, doc: str, *, recipes: bool = False):
    """`sif import KIND FILE --images DIR`: a dataset whose records name images in one folder
    (with `--recipe`/`--seed` where a recipe exists)."""

    def command(
        file: FileArg,
        images: Annotated[
            Path, typer.Option("--images", exists=True, file_okay=False, help="Folder holding the images.")
        ],
        db: DbOption = DEFAULT_DB,
        data_root: DataRootOption = None,
        allow_missing: MissingOption = False,
        recipe: RecipeOption = None,
        seed: SeedOption = 0,
        show: ShowOption = 20,
    ):
        if recipe is not None and not recipes:
            fail(f"--recipe: {kind} imports have no recipe")
        _import(kind, db, file, images, data_root, allow_missing, show, recipe=recipe, seed=seed)

    if not recipes:  # the options stay out of this command's help
        command.__annotations__["recipe"] = Annotated[str | None, typer.Option("--recipe", hidden=True)]
        command.__annotations__["seed"] = Annotated[int, typer.Option("--seed", hidden=True)]
    command.__doc__ = doc
    import_app.command(kind)(command)


_images_importer(
    "viscot",
    "Import Visual-CoT raw JSONL (pixel boxes) or LLaVA-style JSON (square-padded boxes, undone); no chains yet.",
    recipes=True,
)
_images_importer("tallyqa", "Import TallyQA counting questions with the counted objects' pixel boxes.")


def _open(db: Path):
    """The existing store at `db` (use it in a `with` block, so it is closed)."""
    from db.store import Store

    if not db.exists():
        fail(f"no store at {db}; create one with `sif import …` (or set --db / $SIF_DB)")
    return Store.open(db)


@export_app.command("sft")
def export_sft(
    out: Annotated[
        Path, typer.Option("--out", file_okay=False, help="Folder to write the data set and manifest.json into.")
    ],
    db: DbOption = DEFAULT_DB,
    status: StatusOption = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format", help="llamafactory (sharegpt JSON + dataset_info.json) or trl (prompt/completion JSONL)."
        ),
    ] = "llamafactory",
    split: SplitOption = "train",
):
    """Export valid current chains for supervised fine-tuning."""
    from db.exporters import export_sft as run

    with _open(db) as store:
        report = run(store, out, statuses=status, fmt=fmt, split=None if split == "all" else split)
    _exported(report)


def _exported(report) -> None:
    """Print an export's summary (one that would write no sample raises, saying why)."""
    typer.echo(report.summary())


@export_app.command("rl")
def export_rl(
    out: Annotated[
        Path, typer.Option("--out", dir_okay=False, help="JSONL file to write (a .manifest.json goes beside it).")
    ],
    n: Annotated[int, typer.Option("--n", min=1, help="Number of samples.")] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Sampling seed.")] = 42,
    db: DbOption = DEFAULT_DB,
    status: StatusOption = None,
    split: SplitOption = "train",
):
    """Export the RL subset (question, answer, ground-truth boxes, images), stratified by source dataset."""
    from db.exporters import export_rl as run

    with _open(db) as store:
        report = run(store, out, n=n, seed=seed, statuses=status, split=None if split == "all" else split)
    _exported(report)


@app.command()
def stats(
    db: DbOption = DEFAULT_DB,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
):
    """Counts by dataset, review status, validity and origin; chain length and regions-per-step distributions."""
    from db.stats import store_stats

    with _open(db) as store:
        result = store_stats(store)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"{result['db']} (data root {result['data_root']}): {result['samples']} samples, "
        f"{result['missing_images']} with missing images"
    )
    for key, value in result.items():
        if isinstance(value, dict):
            table = Table(title=key.replace("_", " "), title_justify="left")
            table.add_column("value")
            table.add_column("count", justify="right")
            for k, v in value.items():
                table.add_row(str(k), str(v))
            console.print(table)
