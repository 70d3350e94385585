"""``probe_model``: linear probes on every layer for ID and OOD data, one extraction each."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ablab.errors import DataError
from ablab.probe.cache import FeatureCache, array_hash, cache_key, model_hash
from ablab.probe.report import ProbeReport

DataLike = Any  # Dataset | str | (x_train, y_train, x_test, y_test)


def _as_dataset(data: DataLike, what: str, seed: int, options: Mapping[str, Any]) -> Any:
    from ablab.data import Dataset, load
    from ablab.data import options as accepted

    if isinstance(data, Dataset):
        ds = data
    elif isinstance(data, str):
        ok = set(accepted(data))
        ds = load(data, seed=seed, **{k: v for k, v in options.items() if k in ok})
    elif isinstance(data, tuple | list) and len(data) in (2, 4):
        parts = [None if a is None else np.asarray(a) for a in data]
        if len(parts) == 2 or parts[2] is None:
            raise DataError(
                f"{what} has no test split",
                hint="pass (x_train, y_train, x_test, y_test) or a named dataset",
            )
        x_tr, y_tr, x_te, y_te = parts
        ds = Dataset(what, x_tr.astype(np.float32), y_tr.astype(np.int64).ravel(),
                     x_te.astype(np.float32), y_te.astype(np.int64).ravel(),
                     tuple(str(c) for c in range(int(max(y_tr.max(), y_te.max())) + 1)))  # fmt: skip
    else:
        raise DataError(
            f"{what}: expected a dataset name, an ablab.data.Dataset or a tuple "
            f"(x_train, y_train, x_test, y_test), got {type(data).__name__}"
        )
    if ds.x_test is None or len(ds.x_test) == 0:
        raise DataError(f"{what} '{ds.name}' has no test split", hint="give it a test split")
    if len(ds.x_train) == 0:
        raise DataError(f"{what} '{ds.name}' has an empty training split")
    n_tr, n_te = len(np.unique(ds.y_train)), len(np.unique(ds.y_test))
    if n_tr < 2 or n_te < 2:
        raise DataError(
            f"{what} '{ds.name}' has a single class ({n_tr} in train, {n_te} in test); "
            "probe accuracy on it is meaningless",
            hint="use a set with at least 2 classes in both splits",
        )
    return ds


def _ood_sets(ood_data: Any, seed: int, options: Mapping[str, Any]) -> dict[str, Any]:
    if ood_data is None or (isinstance(ood_data, Sequence | Mapping) and len(ood_data) == 0):
        raise DataError("no OOD set given", hint="pass at least one OOD dataset")
    if isinstance(ood_data, Mapping):
        items = list(ood_data.items())
    elif isinstance(ood_data, str):
        items = [(n.strip(), n.strip()) for n in ood_data.split(",") if n.strip()]
    elif isinstance(ood_data, tuple) and len(ood_data) == 4 and not isinstance(ood_data[0], str):
        items = [("ood", ood_data)]
    elif isinstance(ood_data, Sequence):
        items = [(d if isinstance(d, str) else getattr(d, "name", f"ood{i}"), d)
                 for i, d in enumerate(ood_data)]  # fmt: skip
    else:
        items = [(getattr(ood_data, "name", "ood"), ood_data)]
    out = {}
    for name, d in items:
        out[name] = _as_dataset(d, f"OOD set '{name}'", seed, options)
    return out


#: Probe methods of :func:`probe_model`; the first is the default.
METHODS = ("lda-logistic", "ridge", "lda", "logistic")


def probe_model(
    model: Any,
    id_data: DataLike,
    ood_data: DataLike | Sequence[DataLike] | Mapping[str, DataLike],
    layers: str | Sequence[str | type] | None = None,
    *,
    method: str = "lda-logistic",
    pool: int = 2,
    batch_size: int = 256,
    device: str = "cpu",
    cache: FeatureCache | str | Path | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    rank_samples: int = 2000,
    data_options: Mapping[str, Any] | None = None,
) -> ProbeReport:
    """Probe every layer of ``model`` on ID and OOD data (Harun et al., NeurIPS 2024, sec 3).

    For each dataset (ID, then each OOD set) the features of its train and test splits are
    extracted at every probe point in one forward pass per batch (:mod:`ablab.probe.features`)
    and a fresh linear probe per layer is fitted on the train split and scored on the test
    split, so OOD sets with new classes get their own head, as in the paper. ``method`` is
    ``"lda-logistic"`` (default: multinomial logistic regression in each layer's shrinkage-LDA
    discriminant subspace, batched across layers; within 2 points of scikit-learn's
    LogisticRegression on every layer of ``benchmarks/results/probe.md`` at a fraction of its
    time), ``"ridge"`` (closed form; can mask classes on collapsed layers with many classes),
    ``"lda"`` (closed-form shrinkage discriminant) or ``"logistic"`` (full-width L-BFGS,
    slow). Strengths are chosen on a
    validation split of each probe's training data, never on its test split.

    ``device`` runs the feature extraction there, and for ``"lda-logistic"`` also each
    layer's Gram matrix and Cholesky factorisation (a GPU pays off for wide layers and many
    rows); the rest of the probes runs on the CPU.

    Datasets are names from :mod:`ablab.data` (built with ``seed`` and ``data_options`` such
    as ``resolution``), :class:`ablab.data.Dataset` objects or ``(x_train, y_train, x_test,
    y_test)`` tuples. ``layers`` selects probe points (see
    :func:`ablab.probe.features.select_points`).
    """
    from ablab.probe.features import extract, select_points
    from ablab.probe.lda_logistic import lda_logistic_probes
    from ablab.probe.linear import lda_probe, logistic_probes, ridge_probe
    from ablab.probe.metrics import effective_rank, nc1, numerical_rank

    if method not in METHODS:
        raise DataError(f"unknown probe method '{method}'", hint="use one of " + ", ".join(METHODS))
    options = dict(data_options or {})
    id_ds = _as_dataset(id_data, "ID set", seed, options)
    oods = _ood_sets(ood_data, seed, options)
    if not isinstance(cache, FeatureCache):
        cache = FeatureCache(cache)
    points = select_points(model, layers)
    if not points:
        raise DataError(f"{type(model).__name__} has no probe points (no conv/linear/blocks)")
    m_id = model_hash(model)
    drop = layers is None

    def features(ds: Any) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        res = []
        for x in (ds.x_train, ds.x_test):
            key = cache_key(m_id, array_hash(x), [p.name for p in points] + [str(drop)], pool)
            got = cache.get(key)
            if got is None:
                got = cache.put(key, extract(model, x, points, batch_size=batch_size,
                                             pool=pool, device=device, drop_output=drop))  # fmt: skip
            res.append(got)
        return res[0], res[1]

    def probe(ds: Any, what: str) -> tuple[np.ndarray, list[str], dict[str, np.ndarray]]:
        ftr, fte = features(ds)
        names = list(ftr)
        if method in ("ridge", "lda"):
            fn = ridge_probe if method == "ridge" else lda_probe
            accs = [fn(ftr[n], ds.y_train, fte[n], ds.y_test, val_fraction=val_fraction,
                                seed=seed, what=f"{what} layer '{n}'").accuracy
                    for n in names]  # fmt: skip
        else:
            if method == "lda-logistic":  # its Gram matrices and factorisations on ``device``
                res = lda_logistic_probes(ftr, ds.y_train, fte, ds.y_test,
                                          val_fraction=val_fraction, seed=seed, what=what,
                                          device=device)  # fmt: skip
            else:
                res = logistic_probes(ftr, ds.y_train, fte, ds.y_test, val_fraction=val_fraction,
                                      seed=seed, what=what)  # fmt: skip
            accs = [res[n].accuracy for n in names]
        return np.asarray(accs), names, ftr

    id_acc, names, id_feats = probe(id_ds, f"ID set '{id_ds.name}'")
    ood_acc, n_cls = {}, {}
    for name, ds in oods.items():
        ood_acc[name], _, _ = probe(ds, f"OOD set '{name}'")
        n_cls[name] = int(max(ds.y_train.max(), ds.y_test.max())) + 1
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.permutation(len(id_ds.y_train))[:rank_samples])
    nr, er, c1 = [], [], []
    for n in names:
        f = np.asarray(id_feats[n][rows], dtype=np.float64)
        nr.append(numerical_rank(f))
        er.append(effective_rank(f))
        c1.append(nc1(f, id_ds.y_train[rows]))
    meta = {
        "model": type(model).__name__, "model_hash": m_id, "method": method, "pool": pool,
        "seed": seed, "val_fraction": val_fraction,
        "data": {id_ds.name: id_ds.hash, **{k: d.hash for k, d in oods.items()}},
        "hooked": {p.name: p.hooked for p in points if p.name in names},
    }  # fmt: skip
    return ProbeReport(
        layers=names,
        id_name=id_ds.name,
        id_acc=id_acc,
        ood=ood_acc,
        n_classes_id=int(max(id_ds.y_train.max(), id_ds.y_test.max())) + 1,
        n_classes_ood=n_cls,
        numerical_rank=np.asarray(nr),
        effective_rank=np.asarray(er),
        nc1=np.asarray(c1),
        meta=meta,
    )
