"""The error raised for bad input to batched training (an :class:`ablab.errors.AblabError`)."""

from __future__ import annotations

from ablab.errors import AblabError


class BatchedError(AblabError):
    """Batched training got inconsistent input: lengths that differ from K, a non-numeric or
    negative hyperparameter, models of different architectures, or configs that differ in a key
    that must be shared by every model of a batch (CLI exit code 2)."""
