"""The SQLite store (the only package that speaks SQL)."""

from ablab.store.db import Store

__all__ = ["Store"]
