"""docs/commands.md is generated from the CLI: it fails here as soon as a command or option changes
without `scripts/gen-commands-doc` being run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cli.main import app
from cli.reference import render

ROOT = Path(__file__).resolve().parent.parent


def test_commands_md_is_current():
    assert (ROOT / "docs" / "commands.md").read_text() == render(app), "stale: run scripts/gen-commands-doc"


def test_every_command_and_option_is_in_it():
    text = render(app)
    for heading in ("## `sif synth`", "## `sif eval synth`", "## `sif train grpo`", "## `sif runs`"):
        assert heading in text
    assert "`--db` PATH | `sif.db`, `$SIF_DB`" in text or "`--db` PATH | `$SIF_DB`" in text
    assert "`--set` TEXT (repeatable)" in text


def test_the_script_says_the_file_is_current():
    script = ROOT / "scripts" / "gen-commands-doc"
    result = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
