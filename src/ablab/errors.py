"""One error hierarchy for everything a user can get wrong.

An :class:`AblabError` carries a message written for the person at the keyboard: it names the
file/key/value at fault, what was expected, what was found and, where possible, what to do.
The CLI prints it without a traceback and exits with code 2 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class AblabError(Exception):
    """Base class of user-facing errors (exit code 2 from the CLI)."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message}\n  hint: {hint}")


class SpecError(AblabError):
    """A study file or study object is invalid."""


class PlanError(AblabError):
    """A design cannot be expanded into runs."""


class StoreError(AblabError):
    """The store cannot be opened or is inconsistent with the request."""


class CodeChangedError(AblabError):
    """The study's code fingerprint changed since runs were recorded."""


class EntryError(AblabError):
    """The entry point cannot be imported or does not follow the contract."""


class MetricError(AblabError):
    """A run returned metrics that do not match the declaration."""


class DataError(AblabError):
    """Input data is empty, malformed or does not fit the model."""


class BundleError(AblabError):
    """An exported study bundle is corrupt, truncated or unsafe."""


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """Return ``"did you mean 'x'?"`` for the closest of ``choices``, or None."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None
