"""How the workbench is exposed: loopback by default, curators from `--auth`, and no file on disk
reachable except under the store's data root.

Pictures go to the browser as images rendered by handlers, which Gradio writes to its own cache;
that cache is a fresh private folder per launch (not the shared /tmp/gradio), the data root is the
only allowed path, and the store's own file is blocked even when it lies inside the data root.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from sif.errors import ConfigError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860


def parse_auth(values: list[str] | None) -> list[tuple[str, str]] | None:
    """`USER:PASS` strings → Gradio's credential list; None when no curator is given."""
    if not values:
        return None
    out = []
    for v in values:
        user, sep, password = v.partition(":")
        if not sep or not user.strip() or not password:
            raise ConfigError(f"--auth {v!r}: expected USER:PASS with a non-empty user and password")
        out.append((user.strip(), password))
    return out


@dataclass
class ServePolicy:
    data_root: Path
    db_path: Path
    cache_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sif-workbench-")))

    def activate(self) -> None:
        """Point Gradio's upload/render cache at this launch's private folder (removed at exit);
        call before building the app."""
        atexit.register(shutil.rmtree, self.cache_dir, ignore_errors=True)
        os.environ["GRADIO_TEMP_DIR"] = str(self.cache_dir)
        os.environ["GRADIO_EXAMPLES_CACHE"] = str(self.cache_dir / "examples")

    def launch_kwargs(self) -> dict:
        db = self.db_path.resolve()
        blocked = [str(db), str(db) + "-wal", str(db) + "-shm", str(db) + "-journal"]
        return {"allowed_paths": [str(self.data_root.resolve())], "blocked_paths": blocked}


def user_of(request, default: str) -> str:
    """The signed-in curator (Gradio's auth), else `default` (the local user, no auth)."""
    name = getattr(request, "username", None) if request is not None else None
    return name or default
