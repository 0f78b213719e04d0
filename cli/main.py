"""`sif`: the SIF Workbench command line. Each command parses options and calls one function."""

from __future__ import annotations

import typer
from typer.core import TyperGroup

from cli.options import fail
from sif.errors import SifError


class SifGroup(TyperGroup):
    """Every command runs inside this group's `invoke`: a `SifError` (bad input, a store that
    can't be used, a failed request) or an OS error about a file becomes `error: …` and exit 1,
    never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (SifError, OSError) as exc:
            fail(str(exc))


app = typer.Typer(
    cls=SifGroup,
    name="sif",
    help="Build, curate, train and evaluate think-with-images (SIFThinker-style) models.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)

# Each module registers its commands on `app` (or a sub-app added to it).
from cli import (  # noqa: E402
    core_cmds,  # noqa: F401
    depth_cmds,  # noqa: F401
    eval_cmds,  # noqa: F401
    generate_cmds,  # noqa: F401
    infer_cmds,  # noqa: F401
    runs_cmds,  # noqa: F401
    store_cmds,  # noqa: F401
    team_cmds,  # noqa: F401
    train_cmds,  # noqa: F401
    workbench_cmds,  # noqa: F401
)

if __name__ == "__main__":
    app()
