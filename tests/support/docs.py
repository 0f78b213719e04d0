"""Runs the shell and Python blocks of the README and docs/*.md as a reader would: in order, in one
fresh folder per file, with the `sif` of this environment. The convention, for the page author:

- a ```bash or ```python block runs, and must succeed; ```text, ```json, ```yaml blocks are not run
  (use ```text for a command's synopsis or output);
- `<!-- docs-test: skip (WHY) -->` on the line before a block skips it, WHY being the reason
  (GPU, several nodes, real data sets, a remote API). Every skip is listed in tests/test_docs.py, so
  none is silent;
- `<!-- docs-test: slow -->` runs the block (and, in the fast suite, nothing after it in that file)
  only in the slow suite;
- `<!-- docs-test: server PATH -->` runs a block that starts a server in the background, waits for
  `http://127.0.0.1:PORT/PATH` (the block's `--port`, changed to a free one) to answer 200, and stops
  it when the file is done;
- `<!-- docs-test: input TEXT -->` answers every prompt of the block (a password) with TEXT, the way
  a reader types it (one prompting command a block: the first would read all of it); the block
  runs without a terminal, so the prompt reads what is typed here;
- `<!-- docs-test: setup` … `-->` holds hidden shell lines run at that point (the data a reference
  page's examples assume), so that the page shows only what its reader needs.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
RUN_LANGS = {"bash": "bash", "sh": "bash", "python": "python"}
MARK = re.compile(r"<!--\s*docs-test:\s*(skip|slow|server|input)\b\s*(.*?)\s*-->")
SETUP = re.compile(r"<!--\s*docs-test:\s*setup\s*\n(.*?)-->", re.S)
FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass
class Block:
    file: str
    line: int
    lang: str  # bash | python | setup
    code: str
    mark: str | None = None  # skip | slow | server | input
    note: str = ""  # skip: the reason; server: the path to wait for; input: what is typed


@dataclass
class Page:
    path: Path
    blocks: list[Block] = field(default_factory=list)

    @property
    def skips(self) -> list[tuple[str, str]]:
        return [(b.file, b.note) for b in self.blocks if b.mark == "skip"]


def parse(path: Path, root: Path = ROOT) -> Page:
    """The runnable blocks of a markdown file (and its hidden setup lines), in order."""
    name = str(path.relative_to(root))
    text = path.read_text()
    page = Page(path)
    setups = {text[: m.start()].count("\n") + 1: m.group(1) for m in SETUP.finditer(text)}
    lines = text.splitlines()
    i, pending = 0, None
    while i < len(lines):
        line = lines[i]
        if i + 1 in setups:
            page.blocks.append(Block(name, i + 1, "setup", setups[i + 1]))
            while "-->" not in lines[i]:
                i += 1
            i += 1
            continue
        mark = MARK.search(line)
        if mark:
            note = mark.group(2).strip()
            pending = (mark.group(1), note[1:-1] if note.startswith("(") and note.endswith(")") else note)
            i += 1
            continue
        fence = FENCE.match(line)
        if fence:
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            lang = fence.group(1)
            if lang in RUN_LANGS:
                kind, note = pending or (None, "")
                page.blocks.append(Block(name, i + 1, RUN_LANGS[lang], "\n".join(lines[i + 1 : end]), kind, note))
            pending = None
            i = end + 1
            continue
        if line.strip():
            pending = None
        i += 1
    return page


def section(page: Page, heading: str) -> Page:
    """Only the blocks under the heading that starts with `heading` (to the next heading of its level)."""
    text = page.path.read_text().splitlines()
    start = next(
        n for n, line in enumerate(text, 1) if line.startswith("#") and line.lstrip("#").strip().startswith(heading)
    )
    level = len(text[start - 1]) - len(text[start - 1].lstrip("#"))
    end = next(
        (n for n, line in enumerate(text, 1) if n > start and re.match(rf"^#{{1,{level}}} ", line)), len(text) + 1
    )
    return Page(page.path, [b for b in page.blocks if start < b.line < end])


def environment(home: Path, pythonpath: Path = ROOT) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIF_") and k != "PYTHONPATH"}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(pythonpath),
        SIF_HOME=str(home),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"),
        GRADIO_ANALYTICS_ENABLED="False",
        NO_COLOR="1",
        COLUMNS="160",
    )
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SHELL_OWN = {"_", "PWD", "OLDPWD", "SHLVL"}


class Runner:
    """Runs a page's blocks in `cwd`; servers it starts are stopped by `close()`."""

    def __init__(self, cwd: Path, env: dict[str, str], timeout: float = 600):
        self.cwd, self.env, self.timeout = cwd, env, timeout
        self.servers: list[subprocess.Popen] = []
        self.ran: list[Block] = []

    def run(self, page: Page, *, slow: bool) -> None:
        for block in page.blocks:
            if block.mark == "skip":
                continue
            if block.mark == "slow" and not slow:
                return  # what follows may depend on it
            if block.mark == "server":
                self._serve(block)
            else:
                self._run(block)
            self.ran.append(block)

    def _command(self, block: Block) -> list[str]:
        if block.lang == "python":
            return [sys.executable, "-c", block.code]
        # A reader follows a page in one shell: what a block exports holds for the blocks after it.
        return ["bash", "-e", "-o", "pipefail", "-c", f'{block.code}\nenv -0 > "{self.cwd / ".docs-env"}"']

    def _keep_exports(self) -> None:
        saved = self.cwd / ".docs-env"
        if saved.is_file():
            pairs = (item.split("=", 1) for item in saved.read_text().split("\0") if "=" in item)
            self.env = {k: v for k, v in pairs if k not in SHELL_OWN}
            saved.unlink()

    def _run(self, block: Block) -> None:
        proc = subprocess.Popen(
            self._command(block),
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # no terminal: a prompt reads the input given here
        )
        try:
            out, err = proc.communicate((block.note + "\n") * 16 if block.mark == "input" else "", self.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the block's whole session: no training left running
            proc.communicate()
            raise AssertionError(f"{block.file}:{block.line} ({block.lang}) ran over {self.timeout:.0f} s") from None
        result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        assert result.returncode == 0, (
            f"{block.file}:{block.line} ({block.lang}) exited {result.returncode}\n--- block\n{block.code}\n"
            f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}"
        )
        self._keep_exports()

    def _serve(self, block: Block) -> None:
        port = _free_port()
        code = re.sub(r"--port \d+", f"--port {port}", block.code)
        assert code != block.code, f"{block.file}:{block.line}: a server block names its --port"
        log = (self.cwd / f".server-{port}.log").open("w")
        proc = subprocess.Popen(
            ["bash", "-c", f"exec {code.strip()}"],
            cwd=self.cwd,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.servers.append(proc)
        url = f"http://127.0.0.1:{port}/{block.note.lstrip('/')}"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"{block.file}:{block.line}: the server exited\n{Path(log.name).read_text()}"
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    body = response.read().decode("utf-8", "replace")
                    assert response.status == 200 and "gradio" in body.lower(), body[:500]
                    return
            except OSError:
                time.sleep(1)
        raise AssertionError(f"{block.file}:{block.line}: {url} did not answer in 180 s")

    def close(self) -> None:
        for proc in self.servers:
            if proc.poll() is None:
                os.killpg(proc.pid, 15)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, 9)


def prepare(folder: Path) -> Path:
    """A reader's working folder: empty but for `configs/` (the docs' commands run where a
    checkout's configs/ is, as from the repository root)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "configs", folder / "configs")
    return folder
