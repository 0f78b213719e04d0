"""Where SIF Workbench keeps its own files (demo store, demo model, caches)."""

import os
from pathlib import Path


def sif_home() -> Path:
    """`$SIF_HOME`, else `~/.cache/sif`."""
    return Path(os.environ.get("SIF_HOME") or "~/.cache/sif").expanduser()


def demo_model_dir() -> Path:
    """Where `sif train demo-run` leaves its model by default; `--model demo` names it."""
    return sif_home() / "tiny-demo" / "model"
