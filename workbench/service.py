"""Everything the workbench does, as plain Python over a `Store`: browse, open, edit, save,
review, history, outputs, stats. The Gradio app only wires widgets to these methods, so the
benchmark and most tests run them directly."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from db.store import ChainRevision, Review, Sample, Store, StoreError
from sif.chain import Chain, render_chain
from sif.depth import DepthMap
from workbench.draft import Draft
from workbench.preview import RewardPreview, preview
from workbench.render import ALL_STEPS, Views, load_depth, load_depth_picture, load_picture, render_views

PAGE_SIZE = 25
ANY = "any"
SORTS = {  # label → (store sort key, descending)
    "id": ("id", False),
    "newest": ("newest", False),
    "recently changed": ("updated", True),
    "final-step HIoU ↑": ("final_hiou", False),
    "final-step HIoU ↓": ("final_hiou", True),
    "depth consistency ↑": ("depth_ok", False),
    "depth consistency ↓": ("depth_ok", True),
    "chain length ↑": ("n_steps", False),
    "chain length ↓": ("n_steps", True),
}
VALIDITY = {ANY: None, "valid": True, "invalid": False}
BROWSE_HEADERS = ["id", "dataset", "status", "valid", "origin", "rev", "steps", "final HIoU", "depth ok", "question"]


@dataclass
class Filters:
    status: str = ANY
    dataset: str = ANY
    validity: str = ANY
    origin: str = ANY
    run: str = ANY
    text: str = ""
    sort: str = "id"

    def store_kwargs(self) -> dict:
        """The store's query filters; ANY and blanks mean 'do not filter'."""

        def pick(v):
            return None if v in (None, "", ANY) else v

        return dict(
            status=pick(self.status),
            dataset=pick(self.dataset),
            valid=VALIDITY.get(self.validity),
            origin=pick(self.origin),
            run_id=pick(self.run),
            text=pick(self.text.strip()),
        )


@dataclass
class Page:
    rows: list[list]
    ids: list[int]
    total: int
    page: int
    pages: int


@dataclass
class Opened:
    """One sample as the workbench shows it."""

    sample: Sample
    revision: ChainRevision | None
    review: Review
    draft: Draft
    views: Views
    preview: RewardPreview
    outputs: list[ChainRevision]


def _fmt(v, digits=3):
    return "" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else v)


class Workbench:
    def __init__(self, store: Store):
        self.store = store

    # ------------------------------------------------------------ browse

    def browse(self, filters: Filters, page: int = 0, page_size: int = PAGE_SIZE) -> Page:
        kw = filters.store_kwargs()
        total = self.store.count(**kw)
        pages = max(1, -(-total // page_size))
        page = min(max(page, 0), pages - 1)
        sort, descending = SORTS.get(filters.sort, ("id", False))
        rows = self.store.query(**kw, sort=sort, descending=descending, limit=page_size, offset=page * page_size)
        table = [
            [
                r.id,
                r.dataset,
                r.status,
                {True: "yes", False: "no"}.get(r.valid, ""),
                r.origin or "",
                _fmt(r.rev),
                _fmt(r.n_steps),
                _fmt(r.final_hiou),
                {True: "yes", False: "no"}.get(r.depth_ok, ""),
                r.question,
            ]
            for r in rows
        ]
        return Page(table, [r.id for r in rows], total, page, pages)

    def step(self, filters: Filters, page: Page, sample_id: int | None, delta: int) -> tuple[Page, int | None]:
        """The sample `delta` (±1) places from `sample_id` in the filtered, sorted list, turning the
        page at its ends; stays put at the ends of the list."""
        if sample_id not in page.ids:
            return page, (page.ids[0] if page.ids else None)
        i = page.ids.index(sample_id) + delta
        if 0 <= i < len(page.ids):
            return page, page.ids[i]
        turn = page.page + (1 if i >= len(page.ids) else -1)
        if not 0 <= turn < page.pages:
            return page, sample_id
        new = self.browse(filters, turn)
        if not new.ids:
            return page, sample_id
        return new, (new.ids[0] if delta > 0 else new.ids[-1])

    def choices(self) -> dict[str, list[str]]:
        """Options of the browse filters that depend on the store's content."""
        return {"dataset": [ANY, *self.store.datasets()], "run": [ANY, *(r["id"] for r in self.store.list_runs())]}

    # ------------------------------------------------------------ look

    def depth_source(self, sample: Sample) -> tuple[Path | None, str | None]:
        """The exact depth map checks use (`Store.depth_file`, the one rule), or (None, None)."""
        try:
            exact = self.store.depth_file(sample)
        except StoreError:
            return None, None
        return (Path(exact[0]), exact[1]) if exact else (None, None)

    def depth_picture_path(self, sample: Sample) -> Path | None:
        """The depth picture models see for the sample (`Store.model_depth_image`), if it has one."""
        try:
            return self.store.model_depth_image(sample)
        except (StoreError, OSError, ValueError):
            return None

    def image_path(self, sample: Sample) -> Path | None:
        try:
            return self.store.resolve(sample.image)
        except StoreError:
            return None

    def depth_map(self, sample: Sample) -> DepthMap | None:
        return load_depth(*self.depth_source(sample))

    def render(self, sample: Sample, chain: Chain | None, *, show=ALL_STEPS, show_gt: bool = True) -> Views:
        picture = load_picture(self.image_path(sample), width=sample.width, height=sample.height)
        depth = load_depth_picture(self.depth_picture_path(sample), width=sample.width, height=sample.height)
        steps = chain.steps if chain is not None else ()
        return render_views(picture, depth, steps, sample.gt_boxes, show=show, show_gt=show_gt)

    def feedback(self, sample: Sample, chain: Chain) -> RewardPreview:
        return preview(chain, sample.gt_boxes, *self.depth_source(sample))

    def open(self, sample_id: int, *, show=ALL_STEPS, show_gt: bool = True) -> Opened:
        sample = self.store.get_sample(sample_id)
        revision = self.store.current_chain(sample_id)
        draft = Draft.from_chain(
            sample_id, revision.rev if revision else None, revision.chain if revision else None, self.depth_map(sample)
        )
        chain = draft.to_chain()
        return Opened(
            sample,
            revision,
            self.store.get_review(sample_id),
            draft,
            self.render(sample, chain, show=show, show_gt=show_gt),
            self.feedback(sample, chain),
            self.store.run_revisions(sample_id),
        )

    # ------------------------------------------------------------ edit and review

    def save(self, draft: Draft, author: str, note: str | None = None) -> ChainRevision:
        """Store the draft as a new `edited` revision, refused (ConflictError) when the sample's
        current revision is no longer the one the draft was made from."""
        return self.store.add_revision(
            draft.sample_id,
            draft.to_chain(),
            origin="edited",
            author=author,
            parent=draft.base_rev,
            note=note or None,
            expected_rev=draft.base_rev or 0,
        )

    def review(self, sample_id: int, status: str, reviewer: str, note: str, expected_version: int) -> Review:
        return self.store.set_review(sample_id, status, reviewer=reviewer, note=note, expected_version=expected_version)

    def revert(self, sample_id: int, rev: int, author: str) -> ChainRevision:
        return self.store.revert(sample_id, rev, author=author)

    def revision(self, sample_id: int, rev: int) -> ChainRevision | None:
        return next((r for r in self.store.history(sample_id) if r.rev == rev), None)

    @staticmethod
    def text_of(chain: Chain) -> str:
        return render_chain(chain)
