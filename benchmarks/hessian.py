"""Hessian top eigenvalue and trace: ablab.landscape against PyHessian (the `pyhessian` package).

The top eigenvalue is measured twice for ablab: with its default Lanczos iteration and with
``method="power"`` (PyHessian's algorithm); the table also gives each estimate's relative error
against a tightly converged value (ablab Lanczos, tol=1e-9), so "fewer iterations" can be
checked not to mean "less accurate".

Same model, data, tolerance and random probes for both: PyHessian draws its start vector and
Rademacher probes from the global torch RNG, ablab from a generator seeded with ``seed``; we
seed the global RNG with the same number, so both run the very same estimator and the values
must agree to float round-off (we require < 1%). Times include setup (building the gradient
graph). Each measurement is repeated and the best (minimum) time kept, which is the most robust figure
on a shared machine; the calls of the two libraries are interleaved.

Configurations:
- ``paper``: an MLP on scikit-learn digits, one batch of 200 samples (MD tree's setting).
- ``recommended``: a 1-D CNN with BatchNorm on MNIST-1D (mnist1d.make_dataset, no download),
  its 4000 training samples as a DataLoader of batches of 256 (PyHessian's advice is ~4096).
- ``recommended-1batch``: the same CNN and 4000 samples passed as one batch.
- ``digits-loader``: the digits MLP on all 1797 samples as a DataLoader of batches of 128.
- ``recommended-1batch-x8`` (default on cuda only): the CNN's 4000 samples repeated 8 times
  (32000 rows, the same mean loss and Hessian) as one batch: a larger batch for the GPU.

Run: .venv/bin/python benchmarks/hessian.py [--repeats 5] [--threads 1] [--device cpu|cuda]
[--configs paper,recommended,...] [--out PATH]
Writes benchmarks/results/hessian.md (cpu) or benchmarks/results/hessian_gpu.md (cuda).

With ``--device cuda`` the models are trained on the CPU exactly as for the CPU run, then
model and data are moved to the GPU (the DataLoaders are built on GPU tensors, so batches
land there), PyHessian is called with ``cuda=True``, every function gets one untimed warm-up
call before timing, and every timed call is followed by ``torch.cuda.synchronize()`` before
the clock is read.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from ablab.landscape import hessian_top_eigenvalue, hessian_trace  # noqa: E402

MAX_ITER, TOL = 100, 1e-3


def _train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> nn.Module:
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, x.shape[0], (128,))
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    return model.eval()


def digits_setup() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10)
    )
    return _train(model, x, y, 600), x, y


def mnist1d_setup() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = 5000
    d = make_dataset(args)
    x = torch.tensor(d["x"], dtype=torch.float32)[:, None, :]
    y = torch.tensor(d["y"])
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv1d(1, 16, 5, padding=2), nn.BatchNorm1d(16), nn.ReLU(),
        nn.Conv1d(16, 32, 5, padding=2, stride=2), nn.BatchNorm1d(32), nn.ReLU(),
        nn.Flatten(), nn.Linear(32 * 20, 10),
    )  # fmt: skip
    return _train(model, x, y, 800), x, y


CONFIGS = ("paper", "recommended", "recommended-1batch", "digits-loader",
           "recommended-1batch-x8")  # fmt: skip
DEFAULT_CONFIGS = {"cpu": CONFIGS[:4], "cuda": CONFIGS}
DEVICE = "cpu"  # set by main(); "cuda" moves model and data to the GPU and syncs the clock


def _loadavg() -> tuple[float, float, float]:
    """os.getloadavg(), or NaNs where the platform (a sandboxed GPU machine) has none."""
    try:
        return os.getloadavg()
    except OSError:
        return (float("nan"),) * 3


def _sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def _pyhessian(model, loss_fn, single, loader):
    from pyhessian import hessian

    cuda = DEVICE == "cuda"
    if single is not None:
        return hessian(model, loss_fn, data=single, cuda=cuda)
    return hessian(model, loss_fn, dataloader=loader, cuda=cuda)


def measure(name: str, model: nn.Module, x, y, batch: int | None, repeats: int) -> list[dict]:
    loss_fn = nn.CrossEntropyLoss()
    model = model.to(DEVICE)
    x, y = x.to(DEVICE), y.to(DEVICE)
    if batch is None:
        single, loader, data = (x, y), None, (x, y)
    else:
        ds = torch.utils.data.TensorDataset(x, y)
        loader = torch.utils.data.DataLoader(
            ds, batch_size=batch, shuffle=False, generator=torch.Generator()
        )
        single, data = None, loader

    def ph_eig() -> float:
        torch.manual_seed(0)
        h = _pyhessian(model, loss_fn, single, loader)
        value = h.eigenvalues(maxIter=MAX_ITER, tol=TOL)[0][0]
        model.zero_grad(set_to_none=True)  # PyHessian leaves graph-carrying .grad behind
        return value

    def ph_tr() -> float:
        torch.manual_seed(0)
        h = _pyhessian(model, loss_fn, single, loader)
        value = statistics.fmean(h.trace(maxIter=MAX_ITER, tol=TOL))
        model.zero_grad(set_to_none=True)
        return value

    def ab_eig() -> float:
        return hessian_top_eigenvalue(model, loss_fn, data, max_iter=MAX_ITER, tol=TOL, seed=0)

    def ab_pow() -> float:
        return hessian_top_eigenvalue(
            model, loss_fn, data, max_iter=MAX_ITER, tol=TOL, seed=0, method="power"
        )

    def ab_tr() -> float:
        return hessian_trace(model, loss_fn, data, max_iter=MAX_ITER, tol=TOL, seed=0)

    ref_eig = float(hessian_top_eigenvalue(model, loss_fn, data, max_iter=300, tol=1e-9, seed=0))
    rows = []
    metrics = (
        ("top eigenvalue (Lanczos)", ab_eig, ph_eig, ref_eig),
        ("top eigenvalue (power)", ab_pow, ph_eig, ref_eig),
        ("trace", ab_tr, ph_tr, None),
    )
    if DEVICE == "cuda":  # untimed warm-up of each function: CUDA context, kernels, cuDNN plans
        for fn in (ab_eig, ab_pow, ab_tr, ph_eig, ph_tr):
            fn()
        _sync()
    for metric, ours, peer, ref in metrics:
        times: dict[str, list[float]] = {"ablab": [], "pyhessian": []}
        values: dict[str, float] = {}
        for _ in range(repeats):
            for who, fn in (("pyhessian", peer), ("ablab", ours)):
                t, v = _timed(fn)
                times[who].append(t)
                values[who] = v
        a, p = min(times["ablab"]), min(times["pyhessian"])
        rel = abs(values["ablab"] - values["pyhessian"]) / abs(values["pyhessian"])
        iters = getattr(values["ablab"], "iterations", None)
        err = (
            "-"
            if ref is None
            else (
                f"{abs(values['ablab'] - ref) / abs(ref):.1e} / {abs(values['pyhessian'] - ref) / abs(ref):.1e}"
            )
        )
        rows.append(dict(config=name, n=x.shape[0], metric=metric, ablab=float(values["ablab"]),
                         pyhessian=values["pyhessian"], rel=rel, err=err, iters=iters, t_ablab=a,
                         t_peer=p, speedup=p / a))  # fmt: skip
        print(f"{name:14s} {metric:24s} ablab={float(values['ablab']):.5g} "
              f"pyhessian={values['pyhessian']:.5g} rel.diff={rel:.1e} err={err} iters={iters} "
              f"time ablab={a:.3f}s pyhessian={p:.3f}s speedup={p / a:.2f}x", flush=True)  # fmt: skip
    return rows


def _timed(fn: Callable[[], float]) -> tuple[float, float]:
    _sync()
    t0 = time.perf_counter()
    v = fn()
    _sync()
    return time.perf_counter() - t0, v


def main() -> None:
    global DEVICE
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="where model, data and both libraries' Hessian-vector products run",
    )
    ap.add_argument(
        "--configs",
        default=None,
        help=f"comma-separated subset of {', '.join(CONFIGS)} (default: the first 4 "
        "on cpu, all 5 on cuda)",
    )
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results file (default benchmarks/results/hessian.md on cpu, "
        "benchmarks/results/hessian_gpu.md on cuda)",
    )
    args = ap.parse_args()
    default_configs = DEFAULT_CONFIGS[args.device]
    configs = (
        default_configs
        if args.configs is None
        else tuple(c.strip() for c in args.configs.split(",") if c.strip())
    )
    bad = [c for c in configs if c not in CONFIGS]
    if bad or not configs:
        ap.error(f"unknown config(s) {', '.join(bad) or '(none given)'}; choose from "
                 f"{', '.join(CONFIGS)}")  # fmt: skip
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("hessian.py: --device cuda but torch.cuda.is_available() is False")
    DEVICE = args.device
    out = args.out or HERE / "results" / ("hessian.md" if DEVICE == "cpu" else "hessian_gpu.md")
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message="Using backward\\(\\) with create_graph")
    from _machine import describe

    load = _loadavg()
    rows = []
    small = args.repeats * 8  # calls of ~10-100 ms: more repeats make best-of-N robust to load
    setups: dict[str, tuple[nn.Module, torch.Tensor, torch.Tensor]] = {}
    for c in CONFIGS:  # the table keeps this order whatever the order of --configs
        if c not in configs:
            continue
        kind = "mnist1d" if c.startswith("recommended") else "digits"
        if kind not in setups:  # built on first use, in the order of the original script
            setups[kind] = mnist1d_setup() if kind == "mnist1d" else digits_setup()
        if kind == "digits":
            mlp, xd, yd = setups[kind]
        else:
            cnn, xm, ym = setups[kind]
        if c == "paper":
            rows += measure("paper", mlp, xd[:200], yd[:200], None, small)
        elif c == "recommended":
            rows += measure("recommended", cnn, xm, ym, 256, args.repeats)
        elif c == "recommended-1batch":
            rows += measure("recommended-1batch", cnn, xm, ym, None, args.repeats)
        elif c == "digits-loader":
            rows += measure("digits-loader", mlp, xd, yd, 128, args.repeats * 2)
        elif c == "recommended-1batch-x8":
            rows += measure("recommended-1batch-x8", cnn, xm.repeat(8, 1, 1), ym.repeat(8),
                            None, args.repeats)  # fmt: skip

    cuda = DEVICE == "cuda"
    # on the GPU PyHessian's trace probes come from the CUDA generator (see the notes below)
    checked = [r for r in rows if not (cuda and r["metric"] == "trace")]
    ok = all(r["rel"] < 0.01 for r in checked)
    missed = ", ".join(f"{r['config']} {r['metric']}" for r in rows if r["speedup"] < 2)
    cmd = f"benchmarks/hessian.py --repeats {args.repeats} --threads {args.threads}"
    if cuda:
        cmd += " --device cuda"
    if tuple(configs) != tuple(default_configs):
        cmd += f" --configs {','.join(configs)}"
    lines = [
        "# Hessian top eigenvalue and trace: ablab vs PyHessian",
        "",
        f"Machine: {describe()}; torch threads: {args.threads}; load average during the run "
        f"{load[0]:.1f} -> {_loadavg()[0]:.1f} (a shared machine: times are best-of-N).",
        "",
    ]
    if cuda:
        lines += [
            f"Device: cuda, {torch.cuda.get_device_name(0)} (torch {torch.__version__}, CUDA "
            f"{torch.version.cuda}). All times are on this GPU: model, data (DataLoaders built "
            "on GPU tensors) and every Hessian-vector product of both libraries ran there "
            "(PyHessian with cuda=True); the models were trained on the CPU as in hessian.md, "
            "then moved. Each function had one untimed warm-up call, and each timed call is "
            "followed by torch.cuda.synchronize() before the clock is read.",
            "",
        ]
    lines += [
        f"Same model, data, probes and tolerance (max_iter={MAX_ITER}, tol={TOL}); best of "
        f"{args.repeats} interleaved repeats for the CNN, {args.repeats * 8} for paper and "
        f"{args.repeats * 2} for digits-loader (cheaper calls); times include setup. Generated by "
        f"`{cmd}`.",
        "",
        "| config | samples | metric | ablab | PyHessian | rel. diff | error ablab / PyHessian | "
        "iterations (ablab) | ablab s | PyHessian s | speedup |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['config']} | {r['n']} | {r['metric']} | {r['ablab']:.5g} | {r['pyhessian']:.5g} "
            f"| {r['rel']:.1e} | {r['err']} | {r['iters']} | {r['t_ablab']:.3f} | {r['t_peer']:.3f} "
            f"| {r['speedup']:.2f}x |"
        )
    if cuda:
        tr = [r["rel"] for r in rows if r["metric"] == "trace"]
        lines += [
            "",
            f"Eigenvalues agree within 1%: {'yes' if ok else 'NO'}. Traces: largest relative "
            f"difference {max(tr) if tr else float('nan'):.1e} (different probes, see below).",
            "",
            f"Rows at or above the 2x target: {sum(r['speedup'] >= 2 for r in rows)} of "
            f"{len(rows)}; below: {missed or 'none'}.",
            "",
            "Notes on the GPU run:",
            "",
            "- Trace: on the GPU PyHessian draws its Rademacher probes with",
            "  torch.randint_like(p, device='cuda'), i.e. from the CUDA generator, while ablab",
            "  draws them from a CPU generator seeded with `seed` and moves them to the GPU. The",
            "  probes therefore differ and the two traces agree only within the Hutchinson",
            "  estimator's sampling error, not to round-off as on the CPU. Eigenvalue start",
            "  vectors are drawn on the CPU by both libraries, as in the CPU run.",
            f"- TF32: torch's defaults were left as they are (cudnn.allow_tf32="
            f"{torch.backends.cudnn.allow_tf32}, cuda.matmul.allow_tf32="
            f"{torch.backends.cuda.matmul.allow_tf32}), the same for both libraries.",
            "- recommended-1batch-x8 repeats the CNN's 4000 samples 8 times (the same mean loss,",
            "  so the same Hessian). On a GPU ablab concatenates batches and never splits them",
            "  (its 1024-sample chunks are a CPU cache setting), so both libraries run one batch",
            "  of 32000 here; ablab's trace takes 4 probes per reverse pass on a GPU",
            "  (hessian_trace(probe_block=...)), with the same probes and stopping rule.",
            "- Before those two GPU settings (same day, same machine kind), ablab's single-batch",
            "  rows ran at 0.22-0.64x PyHessian and 6 of 15 rows reached 2x: on 32000 samples",
            "  the top eigenvalue took 0.47-0.69 s and the trace 1.6 s in 1024-sample chunks.",
            "- Where the speed comes from on the CPU (loader re-use, Lanczos, chunking,",
            "  the BatchNorm rewrite) is explained in benchmarks/results/hessian.md.",
        ]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(lines) + "\n")
        print(f"wrote {out}")
        return
    lines += [
        "",
        f"Values agree within 1%: {'yes' if ok else 'NO'}.",
        "",
        f"Rows at or above the 2x target: {sum(r['speedup'] >= 2 for r in rows)} of {len(rows)}; "
        f"below: {missed or 'none'}.",
        "",
        "Where the speed comes from:",
        "",
        "1. Several batches (digits-loader, recommended): PyHessian re-runs forward and backward",
        "   (create_graph) for every batch at every Hessian-vector product (HVP); ablab builds the",
        "   gradient graph once and each HVP is one reverse pass through the retained graph.",
        "2. Top eigenvalue: ablab's default is a Lanczos iteration from the same kind of start",
        "   vector and with the same stopping rule (relative change of the estimate < tol, at most",
        "   max_iter HVPs). Power iteration's Rayleigh quotient lies in the same Krylov space and",
        "   Lanczos' Ritz value is the best one there, so it stops after fewer HVPs (the",
        "   'iterations' column, against the power rows) and, as the error column shows, closer",
        "   to the converged value than PyHessian's power iteration at the same tol. The",
        "   'power' rows run PyHessian's own algorithm in ablab, for a like-for-like comparison.",
        "3. Chunk size: batches are re-cut into chunks of up to 1024 samples (merge small, split",
        "   large; the same mean loss). Measured per HVP: the digits MLP on 1797 samples 11 ms as",
        "   one chunk vs 16 ms in chunks of 256 (the old cap); the CNN on 4000 samples 0.18 s in",
        "   chunks of 1000 vs 0.27 s as one batch (activations stay in cache).",
        "4. Eval-mode BatchNorm enters ablab's gradient graph as the per-channel affine map",
        "   x*s + t it is (same function and Hessian, within float round-off). The profiler put",
        "   native_batch_norm's double backward at 35% of a CNN HVP; the measured saving per HVP",
        "   was smaller, ~8% (0.200 -> 0.185 s on one 4000-sample batch).",
        "",
        "Why 2x is missed where it is: with a single batch both libraries keep the graph and the",
        "trace takes the same number of probes (same probes, same stopping rule), so ablab can",
        "only save per-probe overhead: in the MLP HVP ~60% of the time is already in 14",
        "matrix products near the core's peak, and PyHessian's extra cost per probe (per-tensor",
        "random draws, list arithmetic) is the rest. In the CNN the double backward through the",
        "convolutions dominates for both (conv double backward, ~2-3x a forward+backward), so",
        "even with a loader the per-probe ratio is bounded by (F+B+HVP)/HVP, about 1.3-1.5x;",
        "ablab's edge there is the chunking and the BatchNorm rewrite. Measured and rejected on",
        "this CPU, per",
        "probe: several probes per pass with autograd.grad(is_grads_batched=True) (1.3x slower",
        "on the MLP, 1.2-1.7x slower on the CNN), torch.func forward-over-reverse",
        "jvp(grad(f)) (slower; linearize() has seconds of tracing setup), forward-over-forward",
        "second directional derivatives under vmap (slower), conv as unfold+matmul (no clear",
        "gain), a custom conv autograd.Function whose double backward uses mkldnn's",
        "convolution_backward (no gain: the CNN HVP is 4 convolutions and 2 convolution",
        "backwards per chunk, the minimum). Chunked probes only pay off where a batched pass is",
        "cheaper per probe, which it was not here.",
        "",
        "Trace values agree to round-off because both draw the same Rademacher probes from the",
        "same seed (the DataLoader gets its own generator so it does not consume the global",
        "RNG); eigenvalue start vectors differ (per-tensor vs flat normal draws).",
        "The machine is shared (see the load average): in repeated runs under load the ratios",
        "below 2x moved by about +-0.3x; the Lanczos and loader gains are stable.",
        "No GPU was available for these figures.",
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
