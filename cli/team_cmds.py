"""Curating as a team from the terminal: `sif review` (batch decisions, undo, priority),
`sif assign`, `sif qa` (second reviews, gold, agreement) and `sif users` (accounts)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.main import app
from cli.options import DEFAULT_DB, DbOption, fail
from cli.store_cmds import _open

if TYPE_CHECKING:
    from db.team import Accounts

review_app = typer.Typer(help="Decide many samples at once, undo a batch, rank by the model's mistakes.")
qa_app = typer.Typer(help="Blind second reviews, gold samples and agreement between curators.", no_args_is_help=True)
users_app = typer.Typer(help="Curator and admin accounts (salted argon2 hashes).", no_args_is_help=True)
app.add_typer(review_app, name="review", no_args_is_help=True)
app.add_typer(qa_app, name="qa")
app.add_typer(users_app, name="users")

Unit = dict(min=0.0, max=1.0)
DatasetOption = Annotated[str | None, typer.Option("--dataset", help="Only this dataset.")]
StatusOption = Annotated[str | None, typer.Option("--status", help="Only this review status.")]
ValidityOption = Annotated[str | None, typer.Option("--validity", help="valid | invalid: the current chain.")]
OriginOption = Annotated[
    str | None, typer.Option("--origin", help="Current chain origin (none, imported, …); rollout/prediction: has one.")
]
RunOption = Annotated[str | None, typer.Option("--run", help="Only samples with outputs of this run.")]
TextOption = Annotated[
    str | None, typer.Option("--text", help="Words in question, answer or chain, or a source id (synth-000007).")
]
HiouMinOption = Annotated[float | None, typer.Option("--hiou-min", help="Final-step HIoU at least this.", **Unit)]
HiouMaxOption = Annotated[float | None, typer.Option("--hiou-max", help="Final-step HIoU at most this.", **Unit)]
DepthOption = Annotated[str | None, typer.Option("--depth", help="ok | bad: the current chain's depth check.")]
SplitOption = Annotated[str | None, typer.Option("--split", help="Only this split.")]
IdsOption = Annotated[str | None, typer.Option("--ids", help="Comma-separated sample ids (instead of filters).")]


def _filters(dataset, status, validity, origin, run, text, hiou_min, hiou_max, depth, split) -> dict:
    from db.team import SampleFilter

    return SampleFilter(dataset, status, validity, origin, run, text, hiou_min, hiou_max, depth, split).kwargs()


def _ids(text: str, option: str = "--ids") -> list[int]:
    try:
        ids = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        fail(f"{option}: {text!r} is not a comma-separated list of sample ids")
    if not ids:
        fail(f"{option}: no sample ids given")
    return ids


def _decision_command(status: str, verb: str):
    def command(
        reviewer: Annotated[str, typer.Option("--reviewer", help="Who decides (recorded on every review).")],
        ids: IdsOption = None,
        note: Annotated[str, typer.Option("--note", help="Note kept with each review.")] = "",
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Print how many and which; change nothing.")] = False,
        dataset: DatasetOption = None,
        status_filter: StatusOption = None,
        validity: ValidityOption = None,
        origin: OriginOption = None,
        run: RunOption = None,
        text: TextOption = None,
        hiou_min: HiouMinOption = None,
        hiou_max: HiouMaxOption = None,
        depth: DepthOption = None,
        split: SplitOption = None,
        db: DbOption = DEFAULT_DB,
    ):
        filters = _filters(dataset, status_filter, validity, origin, run, text, hiou_min, hiou_max, depth, split)
        if ids is not None and filters:
            fail(f"--ids: give sample ids or filters ({', '.join(sorted(filters))}), not both")
        if ids is None and not filters:
            fail("give --ids or at least one filter (a decision on every sample must be asked for: --status pending)")
        selection = {"ids": _ids(ids)} if ids is not None else filters
        with _open(db) as store:
            if dry_run:
                count = store.count(**selection)
                first = [r.id for r in store.query(limit=10, **selection)]
                typer.echo(f"would mark {count} sample(s) {status} (dry run; nothing changed): {first}")
                if ids is not None and count < len(set(selection["ids"])):
                    fail(f"--ids: {len(set(selection['ids'])) - count} of the ids name no sample")
                return
            batch = store.decide_many(status, reviewer, note=note, **selection)
        typer.echo(f"batch {batch.id}: {batch.count} sample(s) marked {status} by {reviewer}")
        typer.echo(f"undo with: sif review undo {batch.id}")

    command.__doc__ = f"{verb} the samples given by --ids or the filters, as one batch that can be undone."
    return command


for _name, _status, _verb in (
    ("accept", "accepted", "Accept"),
    ("reject", "rejected", "Reject"),
    ("needs-fix", "needs_fix", "Send back for fixing"),
):
    review_app.command(_name)(_decision_command(_status, _verb))


@review_app.command("undo")
def review_undo(
    batch: Annotated[int, typer.Argument(help="The batch id `sif review accept|reject|needs-fix` printed.")],
    reviewer: Annotated[str, typer.Option("--reviewer", help="Who undoes it.")] = "undo",
    db: DbOption = DEFAULT_DB,
):
    """Give every sample of a batch its review from before the batch again."""
    with _open(db) as store:
        restored = store.undo_batch(batch, reviewer)
    typer.echo(f"batch {batch} undone: {restored} sample(s) have their earlier review again")


@review_app.command("batches")
def review_batches(db: DbOption = DEFAULT_DB):
    """List the batches, newest first, with what each decided and whether it was undone."""
    with _open(db) as store:
        rows = store.batches()
    for b in rows:
        undone = f"  undone {b['undone_at']} by {b['undone_by']}" if b["undone_at"] else ""
        typer.echo(
            f"{b['id']:>5}  {b['created_at']}  {b['reviewer']}  {b['status']} × {b['count']}  {b['filters']}{undone}"
        )


@review_app.command("priority")
def review_priority(
    top: Annotated[int, typer.Option("--top", min=0, help="Print this many samples, highest priority first.")] = 10,
    everything: Annotated[bool, typer.Option("--refresh", help="Recompute every sample's priority.")] = False,
    db: DbOption = DEFAULT_DB,
):
    """Rank samples by how much the model's outputs disagree with the curated chain or each other."""
    with _open(db) as store:
        n = store.refresh_priority(everything=everything)
        rows = store.query(sort="priority", limit=top)
        marks = ",".join("?" * len(rows))
        priority = dict(
            store.conn.execute(
                f"SELECT sample_id, priority FROM sample_index WHERE sample_id IN ({marks})", [r.id for r in rows]
            ).fetchall()
        )
    typer.echo(f"priority recomputed for {n} sample(s)")
    ranked = [row for row in rows if priority.get(row.id) is not None]
    if not ranked:
        typer.echo("no sample has model outputs (rollouts, eval predictions) yet")
    for row in ranked:
        typer.echo(f"{row.id:>8}  {priority[row.id]:>6.3f}  {row.status:<9}  {row.question[:70]}")


@app.command()
def assign(
    curator: Annotated[str, typer.Option("--curator", help="Whose queue the samples go to.")],
    n: Annotated[int, typer.Option("--n", min=1, help="How many pending samples to assign.")],
    dataset: DatasetOption = None,
    status: StatusOption = None,
    validity: ValidityOption = None,
    origin: OriginOption = None,
    run: RunOption = None,
    text: TextOption = None,
    hiou_min: HiouMinOption = None,
    hiou_max: HiouMaxOption = None,
    depth: DepthOption = None,
    split: SplitOption = None,
    db: DbOption = DEFAULT_DB,
):
    """Give a curator a queue: N pending samples of the filters that are in nobody's queue yet."""
    filters = _filters(dataset, status, validity, origin, run, text, hiou_min, hiou_max, depth, split)
    with _open(db) as store:
        added = store.assign(curator, n, **filters)
        waiting = len(store.queue(curator))
    if added == 0:
        fail("no pending sample of the filters is left to assign")
    short = f" (only {added} were left)" if added < n else ""
    typer.echo(f"assigned {added} sample(s) to {curator}{short}; {waiting} in their queue")


@qa_app.command("sample")
def qa_sample(
    fraction: Annotated[float, typer.Option("--fraction", min=0.0, max=1.0, help="Share of accepted samples.")],
    seed: Annotated[int, typer.Option("--seed", help="Random seed of the pick.")] = 0,
    reviewers: Annotated[
        str | None, typer.Option("--reviewers", help="Comma-separated second curators (default: curator accounts).")
    ] = None,
    status: Annotated[
        list[str] | None,
        typer.Option("--status", help="Sample the samples decided so (repeatable; default: accepted)."),
    ] = None,
    db: DbOption = DEFAULT_DB,
):
    """Pick decided (by default accepted) samples for a blind second review by another curator (into their queues)."""
    names = [r.strip() for r in reviewers.split(",") if r.strip()] if reviewers else None
    statuses = tuple(status or ["accepted"])
    with _open(db) as store:
        picked = store.qa_sample(fraction, seed, names, statuses)
    if not picked:
        fail(f"no {'/'.join(statuses)} sample could be given to another curator")
    per: dict[str, int] = {}
    for _, curator in picked:
        per[curator] = per.get(curator, 0) + 1
    typer.echo(
        f"{len(picked)} sample(s) sent for second review: " + ", ".join(f"{k} {v}" for k, v in sorted(per.items()))
    )


@qa_app.command("gold")
def qa_gold(
    ids: Annotated[str, typer.Option("--ids", help="Comma-separated sample ids.")],
    status: Annotated[str, typer.Option("--status", help="The right decision: accepted | rejected | needs_fix.")] = (
        "accepted"
    ),
    db: DbOption = DEFAULT_DB,
):
    """Mark samples as gold: they go into queues unannounced and measure accuracy."""
    with _open(db) as store:
        n = store.mark_gold(_ids(ids), status)
    typer.echo(f"{n} gold sample(s) marked {status}")


REPORT_COLUMNS = (
    ("curator", None),
    ("done", "done"),
    ("accepted", "accepted"),
    ("rejected", "rejected"),
    ("median s", "median_s"),
    ("κ", "kappa"),
    ("pairs", "pairs"),
    ("box IoU", "box_iou"),
    ("text changed", "text_change_rate"),
    ("gold acc.", "gold_accuracy"),
    ("gold n", "gold_n"),
)


@qa_app.command("report")
def qa_report(
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    db: DbOption = DEFAULT_DB,
):
    """Per curator: progress, status agreement (Cohen's κ), box agreement, text changes, gold accuracy."""
    from rich.console import Console
    from rich.table import Table

    with _open(db) as store:
        report = store.qa_report()
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    table = Table(title="Curators")
    for label, _ in REPORT_COLUMNS:
        table.add_column(label, justify="left" if label == "curator" else "right")
    for curator, figures in report.items():
        cells = [curator]
        for _, key in REPORT_COLUMNS[1:]:
            value = figures[key]
            cells.append("-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value))
        table.add_row(*cells)
    Console(width=max(Console().width, 120)).print(table)


AuthFileOption = Annotated[
    Path | None, typer.Option("--auth-file", help="Keep accounts in this JSON file instead of the store.")
]


@contextmanager
def _accounts(db: Path, auth_file: Path | None) -> Iterator[Accounts]:
    from db.team import AuthFile, StoreAccounts

    if auth_file is not None:
        yield AuthFile(auth_file)
        return
    with _open(db) as store:
        yield StoreAccounts(store)


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="The user name (what reviews are signed with).")],
    role: Annotated[str, typer.Option("--role", help="curator | admin.")] = "curator",
    auth_file: AuthFileOption = None,
    db: DbOption = DEFAULT_DB,
):
    """Add a user (or set a user's role and password); the password is asked twice, never an option."""
    from db.team import ROLES

    if role not in ROLES:
        fail(f"--role: {role!r} is not one of {', '.join(ROLES)}")
    with _accounts(db, auth_file) as accounts:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        accounts.add_user(name, role, password)
    typer.echo(f"user {name} ({role}) saved in {auth_file or db}")


@users_app.command("list")
def users_list(auth_file: AuthFileOption = None, db: DbOption = DEFAULT_DB):
    """List the users and their roles."""
    with _accounts(db, auth_file) as accounts:
        users = accounts.users()
    for name, role in users:
        typer.echo(f"{name}\t{role}")
