"""ablab.probe: layer-wise OOD probing (the tunnel effect; Harun et al., NeurIPS 2024).

    from ablab.probe import probe_model
    report = probe_model(model, "glyphs-digits", ["glyphs-heldout-fonts", "glyphs-letters"])
    report.summary()          # {'r': ..., 'rho': ..., 'A': ..., ...}
    report.to_frame()         # per-layer table
    report.plot("probe")      # probe.png + probe.svg

Features come from forward hooks at every conv/linear block and transformer block
(:mod:`ablab.probe.features`); the default probe is a multinomial logistic regression in each
layer's shrinkage-LDA discriminant subspace, batched across layers
(:mod:`ablab.probe.lda_logistic`); ridge, LDA and full-width logistic probes are in
:mod:`ablab.probe.linear`. Strengths are chosen on a validation split of the probe's own
training data, never on its test split. The metrics are in :mod:`ablab.probe.metrics`.
"""

from __future__ import annotations

from ablab._lazy import lazy_getattr

_LAZY = {
    "probe_model": "ablab.probe.analyse",
    "ProbeReport": "ablab.probe.report",
    "FeatureCache": "ablab.probe.cache",
    "model_hash": "ablab.probe.cache",
    "select_points": "ablab.probe.features",
    "extract": "ablab.probe.features",
    "ProbePoint": "ablab.probe.features",
    "lda_logistic_probes": "ablab.probe.lda_logistic",
    "ridge_probe": "ablab.probe.linear",
    "lda_probe": "ablab.probe.linear",
    "logistic_probes": "ablab.probe.linear",
    "metrics": "ablab.probe.metrics",
}

__all__ = list(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
