"""Diagnose one trained model: compute its landscape metrics and apply fitted MD trees.

``diagnose(model, data, loss_fn)`` measures train error and loss and the Hessian trace and top
eigenvalue on ``data`` (the training data). Connectivity (``mc_peak``, ``mu``) and CKA need a
second model of the same architecture trained from another seed (``second_model``); without
one they are listed in ``Diagnosis.missing`` and each tree goes as far as it can without them:
it answers when its path does not need them (e.g. Q1 with a low train error) and otherwise
says it cannot decide.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablab.errors import DataError
from ablab.mdtree.structure import ADVICE
from ablab.mdtree.tree import FEATURES, MDTree

TREES_DIR = Path(__file__).resolve().parent / "trees"
QUESTIONS = ("q1", "q2", "q2_data")
PAIR_REASON = "needs a second model of the same architecture trained from another seed"


@dataclass
class Diagnosis:
    """Metrics of a model and the answer of each question (``None``: cannot decide)."""

    metrics: dict[str, float]
    n_samples: dict[str, int]
    missing: dict[str, str] = field(default_factory=dict)
    answers: dict[str, str | None] = field(default_factory=dict)
    explanations: dict[str, str] = field(default_factory=dict)

    @property
    def advice(self) -> dict[str, str]:
        """``{question: advice}`` for each question that was decided."""
        return {q: ADVICE[(q, a)] for q, a in self.answers.items() if a is not None}

    def as_dict(self) -> dict[str, Any]:
        return {
            "metrics": self.metrics,
            "n_samples": self.n_samples,
            "missing": self.missing,
            "answers": self.answers,
            "advice": self.advice,
            "explanations": self.explanations,
        }

    def __str__(self) -> str:
        lines = ["Landscape metrics:"]
        for k, v in self.metrics.items():
            n = self.n_samples.get(k)
            lines.append(f"  {k:24s} {v:12.6g}" + (f"   ({n} samples)" if n else ""))
        for k, why in self.missing.items():
            lines.append(f"  {k:24s} {'-':>12s}   not computed: {why}")
        lines.append("Diagnosis:")
        if not self.explanations:
            lines.append("  no fitted MD tree was given; pass tree= (see `ablab mdtree fit`)")
        for q, text in self.explanations.items():
            answer = self.answers.get(q)
            lines.append(f"  {q}: {answer if answer is not None else 'cannot decide'}")
            lines += [f"    {line}" for line in text.splitlines()]
        return "\n".join(lines)


def default_trees() -> list[MDTree]:
    """The trees shipped with ablab (``ablab/mdtree/trees/*.json``), in file-name order."""
    if not TREES_DIR.is_dir():
        return []
    return [MDTree.load(p) for p in sorted(TREES_DIR.glob("*.json"))]


def _as_trees(tree: Any) -> list[MDTree]:
    if tree is None:
        return default_trees()
    if isinstance(tree, MDTree):
        return [tree]
    if isinstance(tree, (str, Path)):
        return [MDTree.load(tree)]
    if isinstance(tree, Mapping):
        return _as_trees(list(tree.values()))
    if isinstance(tree, Iterable):
        out: list[MDTree] = []
        for t in tree:
            out += _as_trees(t)
        return out
    raise DataError(
        f"tree is a {type(tree).__name__}; expected an MDTree, a JSON path or a list of them"
    )


def landscape_metrics(
    model: Any,
    data: Any,
    loss_fn: Any,
    second_model: Any = None,
    *,
    hessian_samples: int | None = None,
    mc_epochs: int = 10,
    seed: int = 0,
) -> tuple[dict[str, float], dict[str, int], dict[str, str]]:
    """``(metrics, n_samples, missing)`` for one model (and optionally its second seed)."""
    from ablab.landscape import (
        hessian_top_eigenvalue,
        hessian_trace,
        mode_connectivity,
        model_cka,
        train_error,
        train_loss,
    )

    data = _reusable(data)
    values: dict[str, Any] = {
        "train_error": train_error(model, data),
        "train_loss": train_loss(model, loss_fn, data),
        "hessian_trace": hessian_trace(model, loss_fn, data, seed=seed, n_samples=hessian_samples),
        "hessian_top_eigenvalue": hessian_top_eigenvalue(
            model, loss_fn, data, seed=seed, n_samples=hessian_samples
        ),
    }
    missing: dict[str, str] = {}
    if second_model is not None:
        mc = mode_connectivity(model, second_model, loss_fn, data, epochs=mc_epochs, seed=seed)
        values["mc_peak"], values["mu"] = mc.mc_peak, mc.mu
        values["cka"] = model_cka(model, second_model, data, seed=seed)
        counts = {"mc_peak": mc.n_samples, "mu": mc.n_samples}
    else:
        missing = {name: PAIR_REASON for name, spec in FEATURES.items() if spec.needs_pair}
        counts = {}
    metrics = {k: float(v) for k, v in values.items()}
    counts |= {k: v.n_samples for k, v in values.items() if hasattr(v, "n_samples")}
    return metrics, counts, missing


def _reusable(data: Any) -> Any:
    """Batches that can be iterated several times (a generator is consumed once)."""
    if isinstance(data, (tuple, list)) or hasattr(data, "__len__"):
        return data
    return list(data)


def apply_trees(
    trees: list[MDTree], metrics: Mapping[str, float], missing: Mapping[str, str]
) -> tuple[dict[str, str | None], dict[str, str]]:
    """Answer each question with the first of its trees that decides; explain the path."""
    answers: dict[str, str | None] = {}
    texts: dict[str, str] = {}
    for q in QUESTIONS:
        candidates = [t for t in trees if t.question == q]
        if not candidates:
            continue
        x = {k: v for k, v in metrics.items() if k not in missing}
        decided = [(t, t.decide(x)[0]) for t in candidates]
        chosen = next(((t, a) for t, a in decided if a is not None), decided[0])
        answers[q] = chosen[1]
        text = chosen[0].explain(x)
        if chosen[1] is None:
            need = chosen[0].decide(x)[1][-1].feature
            text += f"\n  ({need}: {missing.get(need, 'not available')})"
        texts[q] = text
    return answers, texts


def diagnose(
    model: Any,
    data: Any,
    loss_fn: Any,
    second_model: Any = None,
    tree: Any = None,
    *,
    hessian_samples: int | None = None,
    mc_epochs: int = 10,
    seed: int = 0,
) -> Diagnosis:
    """Compute the MD tree features of ``model`` on its training ``data`` and apply the trees.

    ``tree`` is an :class:`MDTree`, a JSON path, or a list/dict of them (default: the trees
    shipped with ablab, if any). ``hessian_samples`` limits the samples for the Hessian
    (default: all of ``data``); ``mc_epochs`` is the Bezier-curve training length.
    """
    trees = _as_trees(tree)
    metrics, counts, missing = landscape_metrics(
        model,
        data,
        loss_fn,
        second_model,
        hessian_samples=hessian_samples,
        mc_epochs=mc_epochs,
        seed=seed,
    )
    answers, texts = apply_trees(trees, metrics, missing)
    return Diagnosis(metrics, counts, missing, answers, texts)
