"""MD tree: say why a trained model fails from its loss landscape (Zhou et al., ICML 2024).

- :func:`rfi_labels`: Q1/Q2/Q2' labels from a zoo table of (configuration, accuracy) rows;
- :class:`MDTree`: the hand-structured trees, thresholds fitted one at a time;
- :class:`BaselineTree`, :func:`majority_baseline`: the paper's baselines;
- :func:`diagnose`: compute a model's landscape metrics and apply fitted trees;
- :func:`zoo_pairs`: pair features (mc_peak, mu, CKA) of a zoo run as a study, from its
  saved checkpoints (``ablab mdtree pairs STUDY_FILE``).

Importing this package does not import torch; :func:`diagnose` does, when called.
"""

from __future__ import annotations

from ablab._lazy import lazy_getattr

_LAZY = {
    "MDTree": "ablab.mdtree.tree",
    "DEFAULT_FEATURES": "ablab.mdtree.tree",
    "CKA_FEATURES": "ablab.mdtree.tree",
    "rfi_labels": "ablab.mdtree.labels",
    "BaselineTree": "ablab.mdtree.baselines",
    "majority_baseline": "ablab.mdtree.baselines",
    "Diagnosis": "ablab.mdtree.diagnose",
    "diagnose": "ablab.mdtree.diagnose",
    "default_trees": "ablab.mdtree.diagnose",
    "training_table": "ablab.mdtree.dataset",
    "runs_frame": "ablab.mdtree.dataset",
    "zoo_pairs": "ablab.mdtree.pairs",
}

__all__ = list(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
