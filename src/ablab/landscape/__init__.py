"""Loss-landscape metrics of a trained model (a plain library: torch, NumPy, SciPy only).

``data`` is a pair ``(X, y)`` of tensors or an iterable of such batches (e.g. a DataLoader);
``loss_fn(model(X), y)`` returns the batch-mean loss. Every scalar metric returns a
:class:`Measured` float that records ``n_samples`` (and, for iterative estimators,
``iterations`` and ``converged``), so the sample count can be logged with the value::

    from ablab.landscape import hessian_trace
    tr = hessian_trace(model, nn.CrossEntropyLoss(), (X[:200], y[:200]), seed=0)
    print(float(tr), tr.n_samples)          # the paper used 200 samples; ~4096 is steadier

Features of MD tree (Zhou et al., ICML 2024): :func:`train_error`, :func:`train_loss`,
:func:`hessian_top_eigenvalue`, :func:`hessian_trace`, :func:`mode_connectivity`
(:func:`linear_barrier` as the cheap alternative), :func:`cka` and :func:`model_cka`.
"""

from ablab.landscape._data import Measured
from ablab.landscape.basic import train_error, train_loss
from ablab.landscape.connectivity import ModeConnectivity, linear_barrier, mode_connectivity
from ablab.landscape.hessian import HessianOperator, hessian_top_eigenvalue, hessian_trace
from ablab.landscape.similarity import cka, model_cka

__all__ = [
    "HessianOperator",
    "Measured",
    "ModeConnectivity",
    "cka",
    "hessian_top_eigenvalue",
    "hessian_trace",
    "linear_barrier",
    "mode_connectivity",
    "model_cka",
    "train_error",
    "train_loss",
]
