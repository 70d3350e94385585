"""ablab.components: edit a model's modules by path and measure what a model costs.

A plain library (torch only), used by ``run.ablate`` and ``run.measure``::

    from ablab.components import apply_edits, measure
    model, records = apply_edits(model, {"@encoder.layers.*.attn": "zero"})
    costs = measure(model, torch.zeros(1, 64))   # params, flops, latency_ms, peak_memory_mb

Edits are ``zero``, ``identity``, ``mean`` (needs a reference batch) and
``{replace = "file.py:factory"}``; see :mod:`ablab.components.apply`. Costs are in
:mod:`ablab.components.costs`.
"""

from __future__ import annotations

from ablab._lazy import lazy_getattr

_LAZY = {
    "apply_edits": "ablab.components.apply",
    "match_modules": "ablab.components.apply",
    "EditRecord": "ablab.components.apply",
    "ComponentError": "ablab.components.edits",
    "edits_of": "ablab.components.edits",
    "measure": "ablab.components.costs",
    "COST_KINDS": "ablab.components.kinds",
}

__all__ = list(_LAZY)

__getattr__ = lazy_getattr(__name__, _LAZY, globals())
