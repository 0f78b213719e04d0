"""GRPO-SIF rollouts into the store, fed by the reward functions themselves.

TRL's public reward-function contract hands every reward function the completions and the
dataset columns of a batch; `RolloutRecorder.feeding(func)` wraps a reward function so that it
also reports its scores here. Once every reward function has scored a batch, the batch's
completions are gathered from all processes and the main process alone writes up to
`per_step` of them per logging step as `rollout` revisions of the run: each completion is
written once, however many processes shared the batch. Nothing here reaches into TRL's private
methods, so a TRL upgrade can only break it loudly (a changed contract), never silently.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
from collections import Counter
from collections.abc import Callable, Sequence

from sif.rewards import completion_text

log = logging.getLogger(__name__)


def reward_name(func: Callable) -> str:
    """The name TRL logs a reward function under (`rewards/<name>/mean`): partials are unwrapped."""
    while isinstance(func, functools.partial):
        func = func.func
    return getattr(func, "__name__", type(func).__name__)


class RolloutRecorder:
    """Collects each reward function's scores for a batch; writes the batch once, on the main process.

    `db`/`run_id` are given on the main process only; every process must share `per_step` and
    `every`, because all of them take part in gathering a batch that is due to be written.
    """

    def __init__(
        self,
        labels: Sequence[str],
        weights: Sequence[float],
        *,
        per_step: int,
        every: int,
        db: str | None = None,
        run_id: str | None = None,
    ):
        self.labels, self.weights = list(labels), list(weights)
        self.per_step, self.every = per_step, max(1, every)
        self.store = None
        if db and run_id is not None:
            from db.store import Store

            self.store = Store.open(db)
        self.run_id = run_id
        self.written = 0
        self.failed = 0
        self._written_at: Counter = Counter()  # step → rollouts written for it
        self._batch: dict[str, list] = {}
        self._batch_of: int | None = None  # id() of the completions list the scores belong to

    def feeding(self, label: str, func: Callable) -> Callable:
        """`func` as TRL sees it (same name, arguments and scores), reporting its scores under `label`."""

        def fed(completions, **kwargs):
            scores = func(completions=completions, **kwargs)
            self._report(label, completions, kwargs, scores)
            return scores

        fed.__name__ = fed.__qualname__ = reward_name(func)
        return fed

    def _report(self, label: str, completions: list, columns: dict, scores: list) -> None:
        if self._batch_of != id(completions):
            self._batch, self._batch_of = {}, id(completions)
        self._batch[label] = list(scores)
        if set(self._batch) >= set(self.labels):
            state = columns.get("trainer_state")
            self._flush(completions, columns["sample_id"], state.global_step if state is not None else 0)
            self._batch, self._batch_of = {}, None

    def _flush(self, completions: list, sample_ids: list, step: int) -> None:
        # Decided from the step alone, so every process reaches the gather below together.
        if self.per_step <= 0 or step % self.every:
            return
        from accelerate.utils import gather_object

        local = [
            (str(sid), completion_text(c), [self._batch[label][i] for label in self.labels])
            for i, (sid, c) in enumerate(zip(sample_ids, completions))
        ]
        rows = gather_object(local)  # every process's completions, in process order
        if self.store is None:
            return
        budget = self.per_step - self._written_at[step]
        for sample_id, text, scores in rows[: max(0, budget)]:
            self._write(self.store, sample_id, text, scores, step)

    def _write(self, store, sample_id: str, text: str, scores: list, step: int) -> None:
        from db.store import StoreError

        parts = ", ".join(f"{n}={'-' if v is None else f'{v:.3f}'}" for n, v in zip(self.labels, scores))
        total = sum(w * v for w, v in zip(self.weights, scores) if v is not None and v == v)  # skipped count 0
        try:
            store.add_revision(
                int(sample_id),
                text,
                origin="rollout",
                author="grpo",
                run_id=self.run_id,
                note=f"GRPO step {step}: total={total:.3f} ({parts})",
            )
            self.written += 1
            self._written_at[step] += 1
        except (StoreError, ValueError, sqlite3.Error) as exc:  # a rollout log must not stop training
            self.failed += 1
            log.warning("rollout of sample %s not written to the store: %s", sample_id, exc)

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
