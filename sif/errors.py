"""The project's error family: what a user can fix gets a `SifError` with a message for a person.

The CLI turns any `SifError` into `error: …` and exit code 1 (cli/main.py), so a command never
shows a traceback for bad input; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class SifError(Exception):
    """An error whose message says what to fix."""


class ConfigError(SifError, ValueError):
    """A setting, option or argument that cannot be used as given."""


class RecordError(SifError, ValueError):
    """One input record cannot be used; `field` names the culprit. Batches report it with the
    record's position and carry on."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
