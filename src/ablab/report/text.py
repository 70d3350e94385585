"""Plain-text reports: JSON and CSV here; GitHub Markdown (:mod:`ablab.report.md`) and the
LaTeX booktabs table (:mod:`ablab.report.latex`) re-exported."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from typing import Any

from ablab.report._fmt import ARROW, metric_dirs, rows
from ablab.report.latex import tex_escape, to_latex
from ablab.report.md import md_escape, md_table, to_markdown, verdict_sentences

_md_table = md_table  # the name costs.py and examples.py import

SUMMARY = (
    "n",
    "mean",
    "std",
    "sem",
    "median",
    "iqm",
    "min",
    "max",
    "ci_low",
    "ci_high",
    "ci_method",
)
VERSUS = (
    "delta",
    "delta_pct",
    "delta_ci_low",
    "delta_ci_high",
    "ci_method",
    "test",
    "paired",
    "p_value",
    "wilcoxon_p",
    "p_adjusted",
    "adjustment",
    "p_equivalence",
    "p_equivalence_adjusted",
    "hedges_g",
    "cliffs_delta",
    "prob_improvement",
    "verdict",
    "reason",
    "seeds_needed",
)


def to_json(result: Mapping[str, Any]) -> str:
    """The result as indented JSON (strict: NaN is rejected, the analysis writes null)."""
    return json.dumps(result, indent=2, allow_nan=False, ensure_ascii=False) + "\n"


def to_csv(result: Mapping[str, Any]) -> str:
    """One row per variant and metric: the summary statistics (with ``failed``, the variant's
    failed runs) and the comparison with the baseline (empty cells where undefined)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        [
            "study",
            "variant",
            "metric",
            "direction",
            "failed",
            *SUMMARY,
            *[f"delta_{k}" if k == "ci_method" else k for k in VERSUS],
        ]
    )
    dirs = metric_dirs(result)
    for v, m, s, c in rows(result):
        cells = [s.get(k) for k in SUMMARY] + [c.get(k) for k in VERSUS]
        w.writerow(
            [
                result.get("study"),
                v["name"],
                m,
                dirs[m],
                int(v.get("failed") or 0),
                *["" if x is None else x for x in cells],
            ]
        )
    return buf.getvalue()


__all__ = [
    "to_json",
    "to_csv",
    "to_markdown",
    "to_latex",
    "md_escape",
    "tex_escape",
    "verdict_sentences",
    "ARROW",
]
