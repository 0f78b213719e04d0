"""Everything the workbench does, as plain Python over a `Store`: browse, find neighbours, open,
render, edit (drafts kept in the store per curator), save, review, history, outputs. The
Gradio handlers only translate widgets to these methods, so the benchmark and most tests run
them directly."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from db.store import ChainRevision, ConflictError, Review, Sample, SampleRow, Store, StoreError
from sif.chain import Chain, render_chain
from sif.depth import DepthMap
from workbench.draft import Draft
from workbench.preview import RewardPreview, preview
from workbench.render import Views, load_depth, load_depth_picture, load_picture, render_views

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
    "model disagreement (priority)": ("priority", False),
}
VALIDITY = {ANY: None, "valid": True, "invalid": False}


@dataclass
class Filters:
    status: str = ANY
    dataset: str = ANY
    validity: str = ANY
    origin: str = ANY
    run: str = ANY
    text: str = ""
    sort: str = "id"
    drafts_of: str | None = None  # only the samples this curator has an unsaved draft of
    queue_of: str | None = None  # only this curator's queue (assigned samples, second reviews)

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
            text=pick((self.text or "").strip()),
            draft_of=pick(self.drafts_of),
        )

    def order(self) -> dict:
        sort, descending = SORTS.get(self.sort, ("id", False))
        return {"sort": sort, "descending": descending}


@dataclass
class Page:
    """A page of the filtered, sorted list: `samples`, and the same as table `rows` (id, dataset,
    status, valid, origin, rev, steps, final HIoU, depth ok, question)."""

    rows: list[list]
    ids: list[int]
    total: int
    page: int
    pages: int
    samples: list[SampleRow] = field(default_factory=list)


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


def _yes_no(flag: bool | None) -> str:
    return "" if flag is None else ("yes" if flag else "no")


def _fmt(v, digits=3):
    return "" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else v)


PREVIEWS_KEPT = 64
DRAFTS_KEPT = 8


class Kept:
    """The last `size` values by key, the least recently used dropped first (handlers run on
    Gradio's worker threads, hence the lock)."""

    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
            return self._items.get(key)

    def put(self, key, value) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class Workbench:
    def __init__(self, store: Store):
        self.store = store
        self._previews = Kept(PREVIEWS_KEPT)
        # A revision never changes, so its draft (rounded boxes, depths from the map) is built once
        # per depth map: a 10,000-step chain is not converted again at every key press.
        self._drafts = Kept(DRAFTS_KEPT)

    # ------------------------------------------------------------ browse

    def kwargs(self, filters: Filters) -> dict:
        """The store's filters (those set), with "my queue" as the ids of the curator's queue."""
        kw = {k: v for k, v in filters.store_kwargs().items() if v is not None}
        if filters.queue_of:
            kw["ids"] = self.store.queue(filters.queue_of)
        return kw

    def browse(self, filters: Filters, page: int = 0, page_size: int = PAGE_SIZE) -> Page:
        kw = self.kwargs(filters)
        total = self.store.count(**kw)
        pages = max(1, -(-total // page_size))
        page = min(max(page, 0), pages - 1)
        rows = self.store.query(**kw, **filters.order(), limit=page_size, offset=page * page_size)
        table = [
            [
                r.id,
                r.dataset,
                r.status,
                _yes_no(r.valid),
                r.origin or "",
                _fmt(r.rev),
                _fmt(r.n_steps),
                _fmt(r.final_hiou),
                _yes_no(r.depth_ok),
                r.question,
            ]
            for r in rows
        ]
        return Page(table, [r.id for r in rows], total, page, pages, rows)

    def page_of(self, filters: Filters, sample_id: int | None, page_size: int = PAGE_SIZE) -> int:
        """The page of the filtered, sorted list where `sample_id` is (or would be)."""
        if sample_id is None:
            return 0
        try:
            before = self.store.position(sample_id, **filters.order(), **self.kwargs(filters))
        except StoreError:
            return 0
        return before // page_size

    def neighbour(self, filters: Filters, sample_id: int | None, delta: int) -> int | None:
        """The sample `delta` places from `sample_id` in the filtered, sorted list (the first one
        when there is no current sample), None past the ends."""
        if sample_id is None:
            return self.first(filters)
        try:
            return self.store.neighbour(sample_id, delta, **filters.order(), **self.kwargs(filters))
        except StoreError:
            return self.first(filters)

    def first(self, filters: Filters) -> int | None:
        rows = self.store.query(**self.kwargs(filters), **filters.order(), limit=1)
        return rows[0].id if rows else None

    def step(self, filters: Filters, page: Page, sample_id: int | None, delta: int) -> tuple[Page, int | None]:
        """The sample `delta` (±1) places from `sample_id` and the page it is on; stays put at the
        ends of the list."""
        target = self.neighbour(filters, sample_id, delta)
        if target is None:
            return page, sample_id
        if target in page.ids:
            return page, target
        return self.browse(filters, self.page_of(filters, target)), target

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

    def picture(self, sample: Sample):
        return load_picture(self.image_path(sample), width=sample.width, height=sample.height)

    def render(
        self,
        sample: Sample,
        chain: Chain | None,
        *,
        selected: int = 0,
        only_selected: bool = False,
        show_gt: bool = True,
        hide: int | None = None,
    ) -> Views:
        picture = self.picture(sample)
        depth = load_depth_picture(self.depth_picture_path(sample), width=sample.width, height=sample.height)
        steps = chain.steps if chain is not None else ()
        return render_views(
            picture,
            depth,
            steps,
            sample.gt_boxes,
            selected=selected,
            only_selected=only_selected,
            show_gt=show_gt,
            hide=hide,
        )

    def feedback(self, sample: Sample, chain: Chain) -> RewardPreview:
        """The chain's format problems and rewards; kept for the last few chains (keyed by their
        text, ground truth and depth map), so reopening a long chain does not score it again."""
        path, encoding = self.depth_source(sample)
        text = render_chain(chain)
        key = (text, json.dumps(sample.gt_boxes), None if path is None else str(path), encoding)
        result = self._previews.get(key)
        if result is None:
            result = preview(chain, sample.gt_boxes, path, encoding, text=text)
            self._previews.put(key, result)
        return result

    def open(self, sample_id: int) -> Opened:
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
            self.render(sample, chain),
            self.feedback(sample, chain),
            self.store.run_revisions(sample_id),
        )

    # ------------------------------------------------------------ drafts

    def draft_of(
        self, curator: str, sample: Sample, rev: int | None, *, current: ChainRevision | None = None
    ) -> tuple[Draft, bool]:
        """The curator's unsaved draft of the sample (True), else a fresh draft of revision `rev`
        (the one on the curator's screen; the current one, or `current` when given, if None)."""
        stored = self.store.get_draft(curator, sample.id)
        if stored is not None:
            return Draft.from_data(sample.id, stored.base_rev, stored.data), True
        revision = (current or self.store.current_chain(sample.id)) if rev is None else None
        if revision is not None:
            rev = revision.rev
        dmap = self.depth_map(sample)
        kept = self._drafts.get((sample.id, rev))
        if kept is not None and kept[0] is dmap:
            return kept[1].copy(), False
        if rev is not None and revision is None:
            revision = self.revision(sample.id, rev)
        if revision is None:
            return Draft(sample.id, None), False
        draft = Draft.from_chain(sample.id, revision.rev, revision.chain, dmap)
        self._drafts.put((sample.id, revision.rev), (dmap, draft))
        return draft.copy(), False

    def stored_step(self, curator: str, sample_id: int) -> int | None:
        stored = self.store.get_draft(curator, sample_id)
        return None if stored is None else stored.step

    def keep_draft(self, curator: str, draft: Draft, step: int = 0) -> None:
        self.store.put_draft(curator, draft.sample_id, base_rev=draft.base_rev, data=draft.to_data(), step=step)

    def drop_draft(self, curator: str, sample_id: int) -> None:
        self.store.drop_draft(curator, sample_id)

    # ------------------------------------------------------------ edit and review

    def save(self, draft: Draft, author: str, note: str | None = None) -> ChainRevision:
        """Store the draft as a new `edited` revision (and forget the author's unsaved copy),
        refused (ConflictError) when the sample's current revision is no longer the one the
        draft was made from."""
        with self.store.transaction():
            saved = self.store.add_revision(
                draft.sample_id,
                draft.to_chain(),
                origin="edited",
                author=author,
                parent=draft.base_rev,
                note=note or None,
                expected_rev=draft.base_rev or 0,
            )
            self.store.drop_draft(author, draft.sample_id)
        return saved

    def save_and_review(
        self, draft: Draft, author: str, status: str, review_note: str, expected_version: int
    ) -> tuple[ChainRevision, Review]:
        """Save the draft and review the revision it becomes, in one transaction: either both
        happen or neither (a stale review version or chain raises ConflictError)."""
        with self.store.transaction():
            self._check_review_version(draft.sample_id, expected_version)
            saved = self.save(draft, author)
            review = self.store.set_review(
                draft.sample_id,
                status,
                reviewer=author,
                note=review_note,
                expected_version=self.store.get_review(draft.sample_id).version,
                rev=saved.rev,
            )
        return saved, review

    def _check_review_version(self, sample_id: int, expected_version: int) -> None:
        current = self.store.get_review(sample_id)
        if current.version != expected_version:
            raise ConflictError(
                f"review of sample {sample_id} was changed meanwhile ({current.status} by {current.reviewer} "
                f"at {current.updated_at}); nothing was saved",
                current,
            )

    def review(
        self, sample_id: int, status: str, reviewer: str, note: str, expected_version: int, rev: int | None = None
    ) -> Review:
        return self.store.set_review(
            sample_id, status, reviewer=reviewer, note=note, expected_version=expected_version, rev=rev
        )

    def revert(self, sample_id: int, rev: int, author: str, expected_rev: int | None = None) -> ChainRevision:
        return self.store.revert(sample_id, rev, author=author, expected_rev=expected_rev)

    def revision(self, sample_id: int, rev: int) -> ChainRevision | None:
        return self.store.get_revision(sample_id, rev)

    @staticmethod
    def text_of(chain: Chain) -> str:
        return render_chain(chain)
