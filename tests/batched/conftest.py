"""Collects the largest batched-vs-solo differences measured by the tests and prints them in
pytest's terminal summary (visible without ``-s``)."""

from __future__ import annotations

import pytest

_DIFFS: list[tuple[str, float]] = []


@pytest.fixture
def report_diff():
    """``report_diff(label, value)`` records a measured max |batched - solo| difference."""

    def record(label: str, value: float) -> None:
        _DIFFS.append((label, float(value)))

    return record


def pytest_terminal_summary(terminalreporter) -> None:
    if _DIFFS:
        terminalreporter.section("batched vs solo: largest differences")
        for label, value in _DIFFS:
            terminalreporter.write_line(f"{label}: {value:.3g}")
        terminalreporter.write_line(f"overall max: {max(v for _, v in _DIFFS):.3g}")
