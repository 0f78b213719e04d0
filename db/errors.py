"""The store's error, in a module of its own so that `db.store` and the modules it delegates to
(`db.team`) can both raise it."""

from __future__ import annotations

from sif.errors import SifError


class StoreError(SifError):
    """Bad input or a store that cannot be used as asked; the message says which record/field."""
