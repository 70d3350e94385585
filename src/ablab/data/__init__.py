"""ablab.data: offline datasets and distribution shifts (no downloads).

Every dataset is deterministic for a seed and carries a content hash for provenance::

    from ablab import data
    ds = data.load("glyphs-digits", seed=0, resolution=32)
    ds.x_train.shape, ds.n_classes, ds.hash
    data.names()   # ['corrupt-blur', ..., 'digits', 'glyphs-digits', 'glyphs-heldout-fonts', ...]

Sources: scikit-learn's digits; glyphs (0-9, A-Z, a-z) rendered from matplotlib's bundled
TrueType fonts with affine jitter; OOD sets (held-out fonts, new classes, MNIST-C-style
corruptions, MNIST-1D with shifted generation parameters).
"""

from __future__ import annotations

from ablab._lazy import lazy_getattr

_LAZY = {
    "Dataset": "ablab.data._dataset",
    "load": "ablab.data.registry",
    "names": "ablab.data.registry",
    "describe": "ablab.data.registry",
    "register": "ablab.data.registry",
    "options": "ablab.data.registry",
    "Jitter": "ablab.data.glyphs",
    "render_glyphs": "ablab.data.glyphs",
    "ID_FONTS": "ablab.data.glyphs",
    "HELDOUT_FONTS": "ablab.data.glyphs",
    "corrupt": "ablab.data.corrupt",
    "CORRUPTIONS": "ablab.data.corrupt",
}

__all__ = list(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
