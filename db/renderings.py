"""The `spectral_r` pictures models see, for a whole store at once (`sif depth render --db`).

`Store.model_depth_image` writes a sample's rendering on first need (an export, the workbench);
this walks every sample ahead of time, so that a store made before renderings existed, or a large
import of gray maps, gets them in one pass with a progress bar and one report of what failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from db.store import Store, StoreError, sample_from_row
from sif.depth import rendering_path


@dataclass
class RenderReport:
    samples: int = 0
    rendered: int = 0  # written now
    ready: int = 0  # a spectral_r picture already, or a rendering already written
    without_depth: int = 0
    failed: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.samples} samples: {self.rendered} depth renderings written, {self.ready} already there, "
            f"{self.without_depth} without a depth map, {len(self.failed)} failed"
        )


def _needs_rendering(store: Store, sample) -> bool | None:
    """True when the sample's model-facing picture still has to be written; None without a depth map."""
    if sample.depth and sample.depth_encoding == "spectral_r" and store.resolve(sample.depth).is_file():
        return False
    exact = store.depth_file(sample)
    if exact is None:
        return None
    if exact[1] == "spectral_r":
        return False
    out = rendering_path(exact[0])
    return not out.is_file() or out.stat().st_mtime_ns < store.resolve(exact[0]).stat().st_mtime_ns


def _samples(store: Store):
    for row in store.conn.execute("SELECT * FROM samples ORDER BY id"):
        yield sample_from_row(row)


def missing_renderings(store: Store) -> int:
    """Samples whose depth map has no up-to-date `spectral_r` rendering yet."""
    return sum(bool(_needs_rendering(store, s)) for s in _samples(store))


def rendering_hint(store: Store) -> str | None:
    """A line for an import or generation summary when some renderings are still to be written."""
    n = missing_renderings(store)
    if not n:
        return None
    return (
        f"{n} samples' depth maps have no spectral_r rendering yet (the depth image models see): "
        f"run `sif depth render --db {store.path}` to write them now (exports write them when needed)"
    )


def render_store(store: Store, *, progress: bool = True) -> RenderReport:
    """Write every missing rendering; a sample whose rendering fails is reported and the rest go on."""
    from rich.progress import track

    report = RenderReport()
    samples = list(_samples(store))
    for sample in track(samples, description="rendering depth", disable=not progress, transient=True):
        report.samples += 1
        try:
            needed = _needs_rendering(store, sample)
            if needed is None:
                report.without_depth += 1
                continue
            store.model_depth_image(sample)
        except (OSError, ValueError, StoreError) as exc:
            report.failed.append(f"sample {sample.id}: {exc}")
            continue
        report.rendered += needed
        report.ready += not needed
    return report
