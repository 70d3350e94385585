"""ablab.analysis: pure statistics over a study's runs (no I/O, no global state).

Entry points: :func:`analyze` (runs table -> result dictionary, the JSON of reports) and
:func:`reduce_series` (a logged series -> one number). The building blocks live in
``stats`` (descriptive statistics, effect sizes, planning), ``ttest`` (t-tests, their
intervals, TOST), ``compare`` (a variant against the baseline: the four verdicts),
``effects`` (factorial designs), ``sensitivity``, ``adaptive*`` (seeds = "auto").
Imported lazily so that ``import ablab.analysis`` does not load scipy.
"""

from __future__ import annotations

from ablab._lazy import lazy_getattr

_LAZY = {
    "analyze": "ablab.analysis.core",
    "jsonable": "ablab.analysis.core",
    "reduce_series": "ablab.analysis.reduce",
    "describe": "ablab.analysis.stats",
    "bootstrap_ci": "ablab.analysis.stats",
    "iqm": "ablab.analysis.stats",
    "hedges_g": "ablab.analysis.stats",
    "cliffs_delta": "ablab.analysis.stats",
    "prob_improvement": "ablab.analysis.stats",
    "seeds_needed": "ablab.analysis.stats",
    "seeds_for_margin": "ablab.analysis.stats",
    "t_interval": "ablab.analysis.ttest",
    "paired_t": "ablab.analysis.ttest",
    "welch_t": "ablab.analysis.ttest",
    "tost_p": "ablab.analysis.ttest",
    "holm": "ablab.analysis.stats",
    "compare": "ablab.analysis.compare",
    "factorial_effects": "ablab.analysis.effects",
    "shapley_values": "ablab.analysis.effects",
    "sensitivity_report": "ablab.analysis.sensitivity",
}

__all__ = list(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
