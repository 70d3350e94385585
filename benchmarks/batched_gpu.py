"""Batched training on a GPU (ablab.batched, device="cuda") against one run after another on it.

The 40 digits models of benchmarks/batched.py (8 variants x 5 seeds, 30 epochs by default),
all on one CUDA device, in one warm process:

a. solo: ``examples/digits/train.py`` with ``device = "cuda"``, one model after another, each
   after ``seed_everything(seed, threads=1)`` as the runtime does;
b. batched: ``examples/digits/train_batched.py`` with ``device = "cuda"``, one batch per
   architecture (35 models with hidden=128, 5 with hidden=16); also with ``fused_adam = true``.

It reports wall time per model, models per second and the throughput ratio, and the largest
difference in final accuracy / test loss (and saved weights) between each batched model and its
solo GPU run. These are not expected to be 0 on a GPU: the batched products (``bmm``/``baddbmm``)
and the optimiser's single-tensor operations round differently from the solo run's ``mm`` and
``torch.optim.Adam`` (foreach on CUDA); TF32 is switched off for both sides. Then a K sweep of
the batched side alone (hidden=128 baseline models with seeds 0..K-1, default K = 40, 200, 1000
and ``--sweep-epochs`` epochs; and the same without augmentation and dropout, whose per-model
draws run on the CPU model by model) to show where throughput stops growing.
Writes benchmarks/results/batched_gpu.md (``--out`` to change it), naming the GPU.
About 3 minutes on an H100 with the defaults (an earlier version of this script: 178 s in all,
of which the solo runs 94 s and the sweep most of the rest).

Run: PYTHONPATH=src python benchmarks/batched_gpu.py [--epochs 30] [--sweep 40,200,1000]
[--sweep-epochs 10] [--out PATH]; ``--quick`` is a plumbing check (4 models, 1 epoch, tiny sweep,
written to benchmarks/.work/ unless --out). Without CUDA it exits 2 with a message;
``--device cpu`` runs the same code on the CPU (for testing the script, not for its numbers).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault(
    "CUBLAS_WORKSPACE_CONFIG", ":4096:8"
)  # before CUDA starts: deterministic cuBLAS

HERE = Path(__file__).resolve().parent
DIGITS = HERE.parent / "examples" / "digits"
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(DIGITS))

from batched import BASE, SEEDS, VARIANTS, groups, models  # noqa: E402  (the CPU benchmark's 40 models)


def _run(key: str, seed: int, cfg: dict, root: str):
    from ablab.runtime.run import Run

    return Run(
        key=key, variant=key, seed=seed, config=cfg, run_dir=Path(root) / key, split_seed=seed
    )


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def solo(items: list, root: str, device: str) -> tuple[float, dict]:
    """Train each model with train.py, one after another; (wall s, key -> (metrics, run))."""
    from train import train

    from ablab.runtime.seeding import seed_everything

    out = {}
    wall = 0.0
    for key, seed, cfg in items:
        seed_everything(seed, threads=1)
        run = _run(key, seed, cfg, root)
        _sync(device)
        t0 = time.perf_counter()
        metrics = train(dict(cfg), run)
        _sync(device)
        wall += time.perf_counter() - t0
        out[key] = (metrics, run)
    return wall, out


def batched(batches: list, root: str, device: str, **extra) -> tuple[float, dict]:
    """Train each batch with train_batched.py; (wall s, key -> (metrics, run))."""
    from train_batched import train_batched

    from ablab.runtime.seeding import seed_everything

    seed_everything(0, threads=1)
    out = {}
    wall = 0.0
    for group in batches:
        runs = [_run(key, seed, cfg, root) for key, seed, cfg in group]
        _sync(device)
        t0 = time.perf_counter()
        metrics = train_batched([dict(c, **extra) for _, _, c in group], runs)
        _sync(device)
        wall += time.perf_counter() - t0
        out.update({key: (m, r) for (key, _, _), m, r in zip(group, metrics, runs, strict=True)})
    return wall, out


def differences(ref: dict, got: dict) -> tuple[float, float, int]:
    """(largest |difference| in accuracy or test_loss, largest in saved weights, models with a
    different accuracy) between runs of the same keys."""
    import torch

    metric = weight = 0.0
    moved = 0
    for key, (m, r) in ref.items():
        mb, rb = got[key]
        metric = max(metric, *(abs(m[k] - mb[k]) for k in ("accuracy", "test_loss")))
        moved += m["accuracy"] != mb["accuracy"]
        sa = torch.load(r.artifacts["model"], weights_only=True)
        sb = torch.load(rb.artifacts["model"], weights_only=True)
        weight = max(weight, *((sa[k] - sb[k]).abs().max().item() for k in sa))
    return metric, weight, moved


def sweep(ks: list[int], epochs: int, root: str, device: str, plain: bool) -> list[dict]:
    """Batched hidden=128 models with seeds 0..K-1 (baseline config; ``plain``: no augmentation
    and no dropout), one batch per K: wall time and peak GPU memory per K."""
    import torch

    over = {"augment": False, "dropout": 0.0} if plain else {}
    rows = []
    for k in ks:
        cfg = {**BASE, **over, "epochs": epochs, "device": device}
        items = [(f"{'plain' if plain else 'base'}-k{k}-s{s}", s, cfg) for s in range(k)]
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        wall, _ = batched([items], f"{root}/sweep", device)
        peak = (
            torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else float("nan")
        )
        rows.append({"k": k, "wall": wall, "per_s": k / wall, "peak_gib": peak})
        print(
            f"  sweep {'plain' if plain else 'baseline'} K={k}: {wall:.2f} s, {k / wall:.1f} models/s",
            flush=True,
        )
    return rows


def step_costs(k: int, device: str, reps: int = 20) -> dict[str, float]:
    """ms of one training step of K hidden-128 models on a fixed [K, 64, 64] batch (dropout
    masks, loss and gradients, Adam; no data or augmentation), without dropout and with
    dropout 0.1, and of the dropout masks alone; each timed over ``reps`` steps after 3
    untimed ones, synchronised."""
    from functools import partial

    import torch
    from train_batched import make_mlp

    from ablab.batched import BatchedAdam, BatchedModels, cross_entropy, smoothing_weights

    g = torch.Generator().manual_seed(0)
    x = torch.randn(k, 64, 64, generator=g).to(device)
    y = torch.randint(0, 10, (k, 64), generator=g).to(device)
    w = smoothing_weights(0.1, k, 10, device=device)
    out = {}
    for p in (0.0, 0.1):
        bm = BatchedModels([partial(make_mlp, 128, p)] * k, list(range(k)), device=device)
        opt = BatchedAdam(bm.params, lr=0.002, weight_decay=1e-4)

        def step(bm=bm, opt=opt) -> None:
            opt.step(bm.loss_and_grad(cross_entropy, x, y, w, masks=bm.dropout_masks(x))[1])

        for fn, name in (
            (step, f"step p={p}"),
            (lambda bm=bm: bm.dropout_masks(x), f"masks p={p}"),
        ):
            for _ in range(3):
                fn()
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            _sync(device)
            out[name] = (time.perf_counter() - t0) / reps * 1e3
        del bm, opt
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument(
        "--device", default="cuda", help="cuda (default), cuda:N, or cpu to test the script"
    )
    ap.add_argument(
        "--sweep", default="40,200,1000", help="K values of the batched sweep ('' to skip)"
    )
    ap.add_argument("--sweep-epochs", type=int, default=10)
    ap.add_argument(
        "--quick", action="store_true", help="4 models, 1 epoch, tiny sweep: plumbing only"
    )
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(
            f"batched_gpu.py: --device {args.device} but no CUDA device is available here "
            f"(torch {torch.__version__}); run it on a GPU machine, or pass --device cpu --quick "
            "to test the script",
            file=sys.stderr,
        )
        sys.exit(2)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    epochs = 1 if args.quick else args.epochs
    ks = [4, 8] if args.quick else [int(k) for k in args.sweep.split(",") if k.strip()]
    sweep_epochs = 1 if args.quick else args.sweep_epochs
    out_path = args.out or (
        HERE / ".work" / "batched_gpu_quick.md"
        if args.quick
        else HERE / "results" / "batched_gpu.md"
    )
    items = [(k, s, {**c, "device": args.device}) for k, s, c in models(epochs)]
    if args.quick:
        items = [
            it for it in items if it[0].split("-s")[0] in ("baseline", "small") and it[1] in (0, 1)
        ]
    batches = groups(items, 1)
    gpu = (
        torch.cuda.get_device_name(torch.device(args.device))
        if args.device.startswith("cuda")
        else "none (CPU run)"
    )
    print(f"device {args.device} ({gpu}), {len(items)} models, {epochs} epochs", flush=True)

    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as root:
        # warm-up, untimed: CUDA context, cuBLAS handles, kernels of both paths
        warm = [(f"warm-s{s}", s, dict(items[0][2], epochs=1)) for s in (0, 1)]
        solo(warm[:1], root + "/warm", args.device)
        batched([warm], root + "/warm", args.device)
        batched([warm], root + "/warm", args.device, fused_adam=True)

        wall_solo, res_solo = solo(items, root + "/solo", args.device)
        print(f"  solo: {wall_solo:.2f} s", flush=True)
        wall_b, res_b = batched(batches, root + "/batched", args.device)
        print(f"  batched: {wall_b:.2f} s", flush=True)
        wall_f, res_f = batched(batches, root + "/fused", args.device, fused_adam=True)
        print(f"  batched, fused Adam: {wall_f:.2f} s", flush=True)
        diff_b, diff_f = differences(res_solo, res_b), differences(res_solo, res_f)

        ref_per_s = {}  # solo models per second at the sweep's epochs, for each sweep config
        for name, over in (
            ("baseline", {}),
            ("no augmentation, no dropout", {"augment": False, "dropout": 0.0}),
        ):
            ref = [
                (
                    f"ref-{len(ref_per_s)}-s{s}",
                    s,
                    {**BASE, **over, "epochs": sweep_epochs, "device": args.device},
                )
                for s in range(3)
            ]
            ref_per_s[name] = len(ref) / solo(ref, root + "/ref", args.device)[0]
        rows = (
            {
                "baseline": sweep(ks, sweep_epochs, root, args.device, plain=False),
                "no augmentation, no dropout": sweep(
                    ks, sweep_epochs, root, args.device, plain=True
                ),
            }
            if ks
            else {}
        )
        costs = {k: step_costs(k, args.device) for k in ks}
    total = time.perf_counter() - t_start

    n = len(items)
    sizes = " + ".join(str(len(b)) for b in batches)
    lines = [
        "# Batched training on a GPU vs one run after another on it (digits MLP)",
        "",
        f"GPU: **{gpu}**. {n} models = {len(VARIANTS) if not args.quick else 2} variants x "
        f"{len(SEEDS) if not args.quick else 2} seeds of examples/digits, {epochs} epochs each, all on "
        f"`{args.device}` in one warm process (one untimed warm-up run of each mode first). Solo: "
        f'`train.py` with `device = "{args.device}"` after `seed_everything(seed, threads=1)`, one model '
        f"after another. Batched: `train_batched.py` with the same device, one batch per architecture ({sizes} "
        "models). Both draw data order and augmentation from the runs' CPU generators; dropout draws "
        "from the CUDA generator seeded with the run's seed (solo: the default one; batched: one "
        "per model, same masks). TF32 off (`torch.backends.cuda.matmul.allow_tf32 = False`, "
        "`cudnn.allow_tf32 = False`), deterministic algorithms on, `torch.cuda.synchronize()` "
        "around each timed call.",
        "",
        "| mode | wall s | s per model | models per s | throughput vs solo |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, wall in (
        ("solo (train.py, one after another)", wall_solo),
        ("batched (train_batched.py)", wall_b),
        ("batched, fused Adam", wall_f),
    ):
        lines.append(
            f"| {name} | {wall:.2f} | {wall / n:.4f} | {n / wall:.1f} | {wall_solo / wall:.2f}x |"
        )
    lines += [
        "",
        "Largest |batched - solo GPU run| over all models (float rounding, not expected to be 0 on a "
        "GPU: batched products and single-tensor Adam operations round differently from the solo "
        "run's `mm` and foreach Adam):",
        "",
        f"- batched: final accuracy/test loss {diff_b[0]:.3g}, saved weights {diff_b[1]:.3g}; "
        f"{diff_b[2]} of {n} models end with a different test accuracy",
        f"- batched, fused Adam: final accuracy/test loss {diff_f[0]:.3g}, saved weights {diff_f[1]:.3g}; "
        f"{diff_f[2]} of {n} models end with a different test accuracy",
        "",
    ]
    if rows:
        lines += [
            f"## K sweep (batched only, hidden=128, {sweep_epochs} epochs, seeds 0..K-1)",
            "",
            "Solo reference at the same epochs (3 runs of `train.py` of each config, one after "
            "another): "
            + "; ".join(f"{name} {v:.2f} models per s" for name, v in ref_per_s.items())
            + ".",
            "",
            "| models | K | wall s | models per s | vs solo | peak GPU memory GiB |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, rs in rows.items():
            for r in rs:
                lines.append(
                    f"| {name} | {r['k']} | {r['wall']:.2f} | {r['per_s']:.1f} | "
                    f"{r['per_s'] / ref_per_s[name]:.1f}x | {r['peak_gib']:.2f} |"
                )
        lines += [
            "",
            "The wall times include what every model costs once, batched or not: its data split "
            "(every seed has its own), building it on the CPU, and saving it. One training step alone "
            "(a fixed [K, 64, 64] batch: masks, loss and gradients, Adam; synchronised, mean of 20):",
            "",
            "| K | step ms, no dropout | step ms, dropout 0.1 | of which mask draws ms | "
            "µs per model (dropout) |",
            "|---:|---:|---:|---:|---:|",
        ]
        for k, c in costs.items():
            lines.append(
                f"| {k} | {c['step p=0.0']:.2f} | {c['step p=0.1']:.2f} | {c['masks p=0.1']:.2f} | "
                f"{c['step p=0.1'] / k * 1e3:.1f} |"
            )
        lines += [
            "",
            "Without dropout the step is a few batched products, the loss and Adam's passes over "
            "the [K, P] parameters, whose per-model work the GPU does in parallel (compare how the "
            "first column grows with K). With dropout every model draws its masks from its own CUDA generator, one kernel "
            "launch per model and layer (the price of masks equal to the solo runs'), and the "
            "augmentation draws each model's shift and noise from its own CPU generator: host work "
            "that grows linearly with K whatever the GPU, and sets the ceiling of the baseline rows.",
            "",
        ]
    from _machine import describe

    lines += [f"Machine: {describe()}. Whole script: {total:.0f} s.", ""]
    text = "\n".join(lines)
    print(text)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(text)
    print(f"written to {out_path}")


if __name__ == "__main__":
    main()
