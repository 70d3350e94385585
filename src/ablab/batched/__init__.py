"""Batched training of many small models as one vectorised computation (``torch.func``).

K models of one architecture (different seeds and/or numeric hyperparameters such as learning
rate, weight decay, dropout or label smoothing) are trained together: their parameters are
stacked along a leading model axis of size K, the forward/backward pass is ``vmap``-ed over that
axis (chains of Linear/ReLU/Dropout take a faster path with the same kernels: batched products
and a written-out backward), and a functional optimiser updates all K models at once with
per-model hyperparameters.
Each model keeps its own initialisation (built under ``torch.manual_seed(seed)`` as a solo run
seeded by ``ablab.seed_everything(seed)`` would), its own data order and augmentation (from its
own ``torch.Generator``) and its own dropout masks (from a per-model copy of the global RNG stream
that a solo run's ``nn.Dropout`` would draw from). On CPU with a fixed thread count each model
then matches the same seed trained alone, up to float rounding (bit-identical in our tests).
``BatchedModels(..., device="cuda")`` trains them on a GPU: same initialisation, data and
dropout masks as a solo GPU run of each seed, the rest equal up to float rounding (see
:mod:`ablab.batched.device`).

Building blocks::

    from ablab.batched import BatchedModels, BatchedAdam, cross_entropy, smoothing_weights
    bm = BatchedModels(lambda: make_mlp(), seeds=[0, 1, 2, 3])
    opt = BatchedAdam(bm.params, lr=[1e-3, 1e-3, 3e-3, 3e-3], weight_decay=1e-4)
    loss, grads = bm.loss_and_grad(cross_entropy, xb, yb, w, masks=bm.dropout_masks(xb))
    opt.step(grads)
    models = bm.unstack()          # K ordinary nn.Modules

The batched entry contract (``[run] batch = K`` in a study file) is documented in
:mod:`ablab.batched.contract`; ``examples/digits/train_batched.py`` implements it.
Importing this package does not import torch; its members load on first use.
"""

from __future__ import annotations

from ablab._lazy import lazy_getattr

_LAZY = {
    "BatchedModels": "ablab.batched.models",
    "BatchedSGD": "ablab.batched.optim",
    "BatchedAdam": "ablab.batched.optim",
    "per_model": "ablab.batched.optim",
    "cross_entropy": "ablab.batched.data",
    "smoothing_weights": "ablab.batched.data",
    "permutations": "ablab.batched.data",
    "gather": "ablab.batched.data",
    "evaluate": "ablab.batched.data",
    "BatchedError": "ablab.batched.errors",
    "resolve_device": "ablab.batched.device",
    "check_batch": "ablab.batched.contract",
    "shared_value": "ablab.batched.contract",
}

__all__ = list(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
