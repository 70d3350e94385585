"""The linear model behind factorial effects: which terms the runs can estimate, which terms
share one contrast (alias chains), which model is fitted and its ANOVA table.

Terms are tuples of factor indices (``(0, 2)`` = the interaction of factors 0 and 2). A
two-level factor is coded ``-1`` (first declared level) / ``+1`` (second), so every term of
two-level factors is one column, the product of its factors' codes; a factor with more levels
is sum-coded (``C(f, Sum)``) and a term is the row-wise Kronecker product of its factors'
blocks. Terms are taken in hierarchical order (main effects, then two-way, three-way, ...);
a term whose columns lie in the span of the terms kept before it is *aliased*: with two-level
factors its column equals +/- one kept column (a clean alias chain, as in a regular fraction:
Box & Hunter 1961; Montgomery, *Design and Analysis of Experiments*, ch. 8) or +/- the
intercept (a word of the defining relation); otherwise it is partially confounded (missing
cells). Written by hand because patsy/statsmodels drop nothing and name no aliases: they fit
a rank-deficient model silently; pyDOE3 names aliases of a planned design, not of the runs
that finished.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as _st

from ablab.analysis.stats import holm

MAX_CANDIDATES = 5000  # terms enumerated to find aliases
MAX_FIT_TERMS = 128  # terms in the fitted model (type-II ANOVA refits once per term)
ZERO_REL = 1e-10  # sums of squares below this share of the total are rounding noise


@dataclass
class TermSelection:
    """Result of :func:`select_terms`: ``kept`` terms (hierarchical order), ``chains``: kept
    term -> the other terms with the same contrast (up to sign), ``words``: terms constant over
    the runs (the observed defining relation), ``partial``: dropped term -> kept terms it is
    confounded with (missing cells), ``order``: the highest order enumerated."""

    kept: list[tuple[int, ...]]
    chains: dict[tuple[int, ...], list[tuple[int, ...]]]
    words: list[tuple[int, ...]]
    partial: dict[tuple[int, ...], list[tuple[int, ...]]]
    order: int


def _blocks(cells: pd.DataFrame, cols: list[str], nlev: list[int]) -> list[np.ndarray]:
    """Per factor, its coded block over the rows of ``cells`` (codes 0..L-1)."""
    out = []
    for c, L in zip(cols, nlev, strict=True):
        codes = cells[c].to_numpy(int)
        if L == 2:
            out.append((2.0 * codes - 1.0)[:, None])
        else:
            contrast = np.vstack([np.eye(L - 1), -np.ones(L - 1)])
            out.append(contrast[codes])
    return out


def _term_block(blocks: list[np.ndarray], term: tuple[int, ...]) -> np.ndarray:
    X = blocks[term[0]]
    for i in term[1:]:
        B = blocks[i]
        X = (X[:, :, None] * B[:, None, :]).reshape(X.shape[0], -1)
    return X


def select_terms(
    cells: pd.DataFrame, cols: list[str], nlev: list[int], max_order: int | None = None
) -> TermSelection:
    """Estimable terms and alias structure over the distinct observed ``cells`` (one row per
    cell, factor codes 0..L-1 in ``cols``). Orders are enumerated up to ``max_order`` (default:
    all factors) while at most :data:`MAX_CANDIDATES` terms have been seen."""
    k = len(cols)
    top = k if max_order is None else min(k, max_order)
    blocks = _blocks(cells, cols, nlev)
    n = len(cells)
    one = np.ones((n, 1))
    Q = one / math.sqrt(n)
    cols_kept: list[np.ndarray] = [one]
    owners: list[tuple[int, ...]] = [()]
    ones = np.ones(n, dtype=np.int8)
    sig: dict[bytes, tuple[int, ...]] = {ones.tobytes(): (), (-ones).tobytes(): ()}
    kept: list[tuple[int, ...]] = []
    chains: dict[tuple[int, ...], list[tuple[int, ...]]] = {}
    words: list[tuple[int, ...]] = []
    partial: dict[tuple[int, ...], list[tuple[int, ...]]] = {}
    seen = 0
    order = 0
    for r in range(1, top + 1):
        if seen + math.comb(k, r) > MAX_CANDIDATES and r > 2:
            break
        order = r
        for term in itertools.combinations(range(k), r):
            seen += 1
            multi = any(nlev[i] > 2 for i in term)
            if multi and any(s not in kept for s in itertools.combinations(term, r - 1) if s):
                partial[term] = [s for s in itertools.combinations(term, r - 1) if s in kept]
                continue  # a sum-coded term needs its margins (else patsy re-codes it)
            B = _term_block(blocks, term)
            R = B - Q @ (Q.T @ B)
            sv = np.linalg.svd(R, compute_uv=False) if R.size else np.array([])
            tol = 1e-9 * max(1.0, math.sqrt(n))
            rank = int((sv > tol).sum())
            if rank == B.shape[1]:
                U, _, _ = np.linalg.svd(R, full_matrices=False)
                Q = np.hstack([Q, U[:, :rank]])
                kept.append(term)
                cols_kept.append(B)
                owners.extend([term] * B.shape[1])
                if B.shape[1] == 1:
                    s = np.sign(B[:, 0]).astype(np.int8)
                    sig.setdefault(s.tobytes(), term)
                    sig.setdefault((-s).tobytes(), term)
                continue
            if B.shape[1] == 1:
                s = np.sign(B[:, 0]).astype(np.int8).tobytes()
                if s in sig:
                    rep = sig[s]
                    if rep == ():
                        words.append(term)
                    else:
                        chains.setdefault(rep, []).append(term)
                    continue
            X = np.hstack(cols_kept)
            coef, *_ = np.linalg.lstsq(X, B, rcond=None)
            nz = np.abs(coef).max(axis=1) > 1e-8
            partial[term] = list(dict.fromkeys(owners[j] for j in np.flatnonzero(nz) if owners[j]))
    return TermSelection(kept, chains, words, partial, order)


@dataclass
class ModelFit:
    """The fitted model: ``terms`` in it, ``pooled`` kept terms left out (their sums of squares
    go to the residual), why, the ANOVA rows and the statsmodels fit."""

    terms: list[tuple[int, ...]]
    pooled: list[tuple[int, ...]]
    pooled_reason: str | None
    order: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    fit: Any = None
    formula: str = ""
    exact: bool = False


def _variable(i: int, nlev: list[int]) -> str:
    return f"x{i}" if nlev[i] == 2 else f"C(f{i}, Sum)"


def _name(t: tuple[int, ...], nlev: list[int]) -> str:
    return ":".join(_variable(i, nlev) for i in t)


def _formula(terms: list[tuple[int, ...]], nlev: list[int]) -> str:
    rhs = " + ".join(_name(t, nlev) for t in terms)
    return "_y ~ " + (rhs or "1")


def fit_model(
    data: pd.DataFrame,
    nlev: list[int],
    sel: TermSelection,
    *,
    max_order: int | None = None,
) -> ModelFit:
    """OLS (statsmodels) with the kept terms up to ``max_order`` (default: every order: the
    full model of a replicated factorial) and its type-II ANOVA (``anova_lm(typ=2)``).

    When the model leaves no residual degrees of freedom (an unreplicated design), the highest
    order is pooled into the residual, then the next, until one error df remains; the pooled
    terms and the reason are returned. With no variation left over (noise-free data, residual
    SS below ``1e-10`` of the total, or at the rounding level of the values) F is undefined: terms with zero SS get F = p = NaN, terms
    with a nonzero SS F = inf, p = 0 (an exact fit), instead of ratios of rounding noise.
    """
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    top = sel.order if max_order is None else min(max_order, sel.order)
    reason = None
    if max_order is not None and any(len(t) > max_order for t in sel.kept):
        reason = f"interactions of order > {max_order} pooled into the residual on request"
    while top > 1 and sum(len(t) <= top for t in sel.kept) > MAX_FIT_TERMS:
        top -= 1
        reason = f"interactions of order > {top} pooled: more than {MAX_FIT_TERMS} terms"
    n = len(data)
    while top > 1 and n - 1 - sum(_df(t, nlev) for t in sel.kept if len(t) <= top) < 1:
        top -= 1
        reason = (
            f"no replication leaves no error df for the full model: interactions of order "
            f"> {top} pooled into the residual (assumed negligible)"
        )
    terms = [t for t in sel.kept if len(t) <= top]
    pooled = [t for t in sel.kept if len(t) > top]
    formula = _formula(terms, nlev)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = smf.ols(formula, data).fit()
        table = anova_lm(fit, typ=2) if terms and fit.df_resid > 0 else None
    out = ModelFit(terms, pooled, reason if pooled else None, top, fit=fit, formula=formula)
    if table is None:
        out.rows = [_row(t, _df(t, nlev), math.nan, math.nan, math.nan, math.nan) for t in terms]
        return out
    y = data["_y"].to_numpy(float)
    total = float(((y - y.mean()) ** 2).sum())
    # rounding noise of a sum of squares is ~ n (eps |y|)^2; anything that small is zero
    zero = max(ZERO_REL * total, y.size * (1e-12 * float(np.abs(y).max())) ** 2, 1e-300)
    ss_res = float(table.loc["Residual", "sum_sq"])
    df_res = float(table.loc["Residual", "df"])
    out.exact = ss_res <= zero
    if out.exact:
        ss_res = 0.0
    rows = []
    for t in terms:
        r = table.loc[_name(t, nlev)]
        ss = float(r["sum_sq"])
        if ss <= zero:
            ss = 0.0
        df = float(r["df"])
        if out.exact:
            F, p = (math.inf, 0.0) if ss > 0 else (math.nan, math.nan)
        else:
            F = (ss / df) / (ss_res / df_res)
            p = float(_st.f.sf(F, df, df_res))
        eta = ss / (ss + ss_res) if ss + ss_res > 0 else math.nan
        rows.append(_row(t, df, ss, F, p, eta))
    adj = holm([r["p"] for r in rows])
    for r, a in zip(rows, adj, strict=True):
        r["p_adjusted"] = float(a)
    rows.append(_row(None, df_res, ss_res, math.nan, math.nan, math.nan))
    out.rows = rows
    return out


def _df(t: tuple[int, ...], nlev: list[int]) -> int:
    return math.prod(nlev[i] - 1 for i in t)


def _row(t, df, ss, F, p, eta) -> dict[str, Any]:
    return {"_term": t, "df": df, "sum_sq": ss, "F": F, "p": p, "partial_eta_sq": eta}


def gf2_generators(words: list[int], k: int) -> list[int]:
    """A reduced basis of the defining relation (bit masks over ``k`` factors): each basis word
    has its own pivot factor (its highest), absent from the other basis words, so it reads as
    a generator ``pivot = product of the rest``. Gaussian elimination over GF(2)."""
    basis: dict[int, int] = {}
    for w in words:
        for bit in range(k - 1, -1, -1):
            if not w >> bit & 1:
                continue
            if bit in basis:
                w ^= basis[bit]
            else:
                basis[bit] = w
                break
    for bit in sorted(basis):
        for other in basis:
            if other != bit and basis[other] >> bit & 1:
                basis[other] ^= basis[bit]
    return [basis[b] for b in sorted(basis)]
