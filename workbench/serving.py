"""How the workbench is exposed: loopback by default, curators from `--auth`, and no file on disk
reachable but the pictures the app renders.

Pictures go to the browser as JPEG files the handlers render into Gradio's cache, a fresh private
folder per launch (not the shared /tmp/gradio). Nothing else is allowed: not the data root (its
images, depth maps, `.env` files, backups and other stores), and not the store's own file; the
data root is blocked outright unless it holds the cache folder itself.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from sif.errors import ConfigError
from workbench.render import PictureFiles

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
PICTURES_KEPT = 600  # files in the served cache: the pictures of the last ~150 samples opened


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
        atexit.register(self.remove_cache)
        os.environ["GRADIO_TEMP_DIR"] = str(self.cache_dir)
        os.environ["GRADIO_EXAMPLES_CACHE"] = str(self.cache_dir / "examples")
        # Gradio rebuilds a pandas summary of up to 10,000 past events after every event by
        # default: the largest cost of a decision after drawing it. Every 1,000 events is plenty.
        os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "1000")

    def pictures(self) -> PictureFiles:
        """Where the app writes what it renders: inside the served cache folder, which is kept to
        a bounded number of files while the app runs."""
        return PictureFiles(self.cache_dir / "sif-views", keep=PICTURES_KEPT, bound=self.cache_dir)

    def remove_cache(self) -> None:
        shutil.rmtree(self.cache_dir, ignore_errors=True)

    def stop_on_signals(self) -> None:
        """SIGTERM and SIGINT stop the server the way Ctrl+C does (Gradio closes it; the caller
        then removes the cache), and the cache is removed at once in case the stop hangs."""

        def stop(signum, frame):
            self.remove_cache()
            raise KeyboardInterrupt

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, stop)

    def launch_kwargs(self) -> dict:
        db = self.db_path.resolve()
        blocked = [str(db), str(db) + "-wal", str(db) + "-shm", str(db) + "-journal"]
        root = self.data_root.resolve()
        if not self.cache_dir.resolve().is_relative_to(root):
            blocked.append(str(root))
        return {"allowed_paths": [], "blocked_paths": blocked}


ADMIN, CURATOR = "admin", "curator"


class SignIn:
    """Who may sign in, and as what: the accounts (`db.team.StoreAccounts` or an `AuthFile`,
    argon2 hashes), else `--auth` USER:PASS pairs (curators). With neither, nobody signs in and
    the local user is the admin of their own store."""

    def __init__(self, accounts=None, pairs: list[tuple[str, str]] | None = None):
        self.accounts = accounts
        self.pairs = dict(pairs or [])

    @property
    def enabled(self) -> bool:
        return self.accounts is not None or bool(self.pairs)

    def check(self, name: str, password: str) -> bool:
        """Gradio's login check."""
        if self.accounts is not None:
            return self.accounts.verify_user(name, password) is not None
        return name in self.pairs and self.pairs[name] == password

    def role(self, name: str) -> str:
        """The signed-in user's role, read at each call (an account changed meanwhile counts)."""
        if not self.enabled:
            return ADMIN
        if self.accounts is not None:
            return dict(self.accounts.users()).get(name, "")
        return CURATOR if name in self.pairs else ""


def user_of(request, default: str) -> str:
    """The signed-in curator (Gradio's auth), else `default` (the local user, no auth)."""
    name = getattr(request, "username", None) if request is not None else None
    return name or default
