"""Batched training (ablab.batched) against one run per worker, on the digits MLP.

40 models = 8 variants x 5 seeds of examples/digits. Solo: a spawn pool of 2 worker processes,
each training models one by one with ``examples/digits/train.py`` exactly as the runtime runs it
(``seed_everything(seed, threads=1)`` then ``train(config, run)``). Batched: the models grouped by
architecture (35 with hidden=128, 5 with hidden=16), each group trained as one vectorised
computation by ``examples/digits/train_batched.py``; measured as 2 single-thread processes
splitting each group in two (what ``[run] batch = "auto"`` does with ``-j 2``) and in one
single-thread process. Wall time and CPU time (summed over processes) are both reported: on a
shared machine the CPU ratio is the one that carries over to 2 dedicated cores. Workers are
warmed up (imports) before timing. Also checks that every batched model's metrics equal its solo run.
Writes benchmarks/results/batched.md.
Run: .venv/bin/python benchmarks/batched.py [--epochs 30]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DIGITS = HERE.parent / "examples" / "digits"
sys.path.insert(0, str(HERE))

BASE = dict(hidden=128, dropout=0.1, augment=True, label_smoothing=0.1, normalize=True, lr=0.002,
            weight_decay=0.0001, batch_size=64, epochs=30)
VARIANTS = {"baseline": {}, "no-augment": {"augment": False}, "no-dropout": {"dropout": 0.0},
            "no-label-smoothing": {"label_smoothing": 0.0}, "no-normalize": {"normalize": False},
            "lr-high": {"lr": 0.005}, "wd-high": {"weight_decay": 0.001}, "small": {"hidden": 16}}
SEEDS = [0, 1, 2, 3, 4]


def _init(threads: int) -> None:
    import torch
    import torch._inductor.config  # noqa: F401  (what the runtime's warm_up does)

    sys.path.insert(0, str(DIGITS))
    import train  # noqa: F401
    import train_batched  # noqa: F401

    torch.set_num_threads(threads)


def _run(key: str, seed: int, cfg: dict, root: str):
    from ablab.runtime.run import Run

    return Run(key=key, variant=key, seed=seed, config=cfg, run_dir=Path(root) / key, split_seed=seed)


def solo_task(args: tuple) -> tuple[str, dict]:
    key, seed, cfg, root = args
    from train import train

    from ablab.runtime.seeding import seed_everything

    seed_everything(seed, threads=1)
    c0 = time.process_time()
    out = train(dict(cfg), _run(key, seed, cfg, root))
    return key, out, time.process_time() - c0


def batched_task(args: tuple) -> list[tuple[str, dict]]:
    group, root, threads = args
    import torch
    from train_batched import train_batched

    from ablab.runtime.seeding import seed_everything

    seed_everything(0, threads=threads)
    torch.set_num_threads(threads)
    runs = [_run(key, seed, cfg, root) for key, seed, cfg in group]
    c0 = time.process_time()
    out = train_batched([dict(c) for _, _, c in group], runs)
    cpu = time.process_time() - c0
    return [(key, m, cpu / len(group)) for (key, _, _), m in zip(group, out, strict=True)]


def verdict(wall: float, cpu: float) -> str:
    head = (f"Batched on 2 processes: {wall:.2f}x the solo throughput by wall time, {cpu:.2f}x by CPU "
            f"time (target 3x: {'met' if min(wall, cpu) >= 3 else 'met by CPU time only' if cpu >= 3 else 'missed'}). ")
    return head + (
        "Where the time goes (one process, 35 models per step): the vectorised forward/backward "
        "(batched matrix products), the per-model random draws and the optimiser. Every model must "
        "draw exactly the random numbers its solo run draws (data order, augmentation shifts and "
        "noise, dropout masks) from its own generator, element by element (torch's CPU Bernoulli and "
        "normal draws cost about 7-12 ns per element, the same for solo and batched), so these draws "
        "are a floor that batching cannot shrink; the rest (Python and autograd overhead per step, "
        "small-matrix products, Adam's elementwise passes) is what batching removes. The optimiser "
        "updates all parameters of all models as one [K, P] tensor with reused buffers "
        "(allocating fresh [K, P] temporaries every step cost as much as the arithmetic).")


SOLO = "solo: 2 worker processes, one model at a time"
BATCHED_2 = "batched: 2 processes x 1 thread, each kind of model split in two (18 + 17, 3 + 2)"
BATCHED_1 = "batched: 1 process x 1 thread, 2 groups (35 + 5 models)"


def step_costs(ks: tuple[int, ...] = (1, 18, 35), reps: int = 60) -> tuple[dict[int, float], float]:
    """CPU ms of one batched training step (dropout masks + loss_and_grad + Adam) of the digits
    MLP for K models, and of one solo step (forward, backward, torch.optim.Adam), in this process."""
    from functools import partial

    import torch
    from train_batched import make_mlp

    from ablab.batched import BatchedAdam, BatchedModels, cross_entropy, smoothing_weights

    torch.set_num_threads(1)

    def cpu_ms(fn) -> float:
        fn()
        c0 = time.process_time()
        for _ in range(reps):
            fn()
        return (time.process_time() - c0) / reps * 1e3

    out = {}
    for k in ks:
        bm = BatchedModels([partial(make_mlp, 128, 0.1)] * k, list(range(k)))
        opt = BatchedAdam(bm.params, lr=0.002, weight_decay=1e-4)
        w = smoothing_weights(0.1, k, 10)
        x, y = torch.randn(k, 64, 64), torch.randint(0, 10, (k, 64))

        def step(bm=bm, opt=opt, w=w, x=x, y=y) -> None:
            opt.step(bm.loss_and_grad(cross_entropy, x, y, w, masks=bm.dropout_masks(x))[1])
        out[k] = cpu_ms(step)
    model = make_mlp(128, 0.1)
    adam = torch.optim.Adam(model.parameters(), lr=0.002, weight_decay=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    x, y = torch.randn(64, 64), torch.randint(0, 10, (64,))

    def solo_step() -> None:
        loss = loss_fn(model(x), y)
        adam.zero_grad()
        loss.backward()
        adam.step()
    return out, cpu_ms(solo_step)


def _batched_all(tasks: list) -> list:
    return [kv for t in tasks for kv in batched_task(t)]


def models(epochs: int) -> list[tuple[str, int, dict]]:
    return [(f"{v}-s{s}", s, {**BASE, **over, "epochs": epochs}) for v, over in VARIANTS.items() for s in SEEDS]


def groups(items: list, split: int) -> list[list]:
    """Group by hidden size; split each group into ``split`` nearly equal parts."""
    out = []
    for h in sorted({c["hidden"] for _, _, c in items}, reverse=True):
        g = [it for it in items if it[2]["hidden"] == h]
        size = -(-len(g) // split)
        out += [g[i:i + size] for i in range(0, len(g), size)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=2, help="rounds in alternating order; best of each mode")
    args = ap.parse_args()
    items = models(args.epochs)
    load0 = tuple(round(x, 2) for x in os.getloadavg())
    n = len(items)
    ctx = mp.get_context("spawn")
    res: dict[str, tuple[float, float]] = {}  # mode -> (wall s, CPU s summed over processes)
    metrics: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as root:
        with ctx.Pool(2, initializer=_init, initargs=(1,)) as pool:
            pool.map(_init, [1, 1])

            def solo_mode() -> list:
                return pool.map(solo_task, [(k, s, c, root + "/solo") for k, s, c in items], chunksize=1)

            def b2_mode() -> list:
                parts = pool.map(batched_task, [(g, root + "/b2", 1) for g in groups(items, 2)], chunksize=1)
                return [kv for part in parts for kv in part]

            def b1_mode() -> list:  # in a pool worker too, so the other core stays idle
                return pool.apply(_batched_all, ([(g, root + "/b1", 1) for g in groups(items, 1)],))

            costs, solo_step = pool.apply(step_costs)
            modes = {SOLO: solo_mode, BATCHED_2: b2_mode, BATCHED_1: b1_mode}
            order = list(modes)
            for r in range(args.rounds):  # alternate the order so a changing load favours no mode
                for name in (order if r % 2 == 0 else order[::-1]):
                    t0 = time.perf_counter()
                    out = modes[name]()
                    wall, cpu = time.perf_counter() - t0, sum(c for _, _, c in out)
                    best = res.get(name)
                    res[name] = (min(wall, best[0]), min(cpu, best[1])) if best else (wall, cpu)
                    metrics[name] = {k: m for k, m, _ in out}
    solo = metrics.pop(SOLO)
    diffs = {name: max(abs(solo[k][m] - got[k][m]) for k in solo for m in ("accuracy", "test_loss"))
             for name, got in metrics.items()}
    wall0, cpu0 = res[SOLO]
    kmax = max(costs)
    per_model = (costs[kmax] - costs[1]) / (kmax - 1)
    fixed = costs[1] - per_model
    from _machine import describe

    lines = ["# Batched training vs one run per worker (digits MLP)", "",
             f"{n} models = {len(VARIANTS)} variants x {len(SEEDS)} seeds, {args.epochs} epochs each "
             "(examples/digits). Solo: `train.py` under `seed_everything(seed, threads=1)` in a spawn pool "
             "of 2 warm workers. Batched: `train_batched.py` (ablab.batched), models grouped by "
             f"architecture. Times exclude process start and imports; each mode's best of {args.rounds} "
             "rounds, run in alternating order (solo, 2 processes, 1 process; then reversed) so a "
             f"changing load favours none. Load average at the start: {load0}.", "",
             "| mode | wall s | ratio vs solo (wall) | CPU s | ratio vs solo (CPU) |", "|---|---:|---:|---:|---:|"]
    for name, (wall, cpu) in res.items():
        lines.append(f"| {name} | {wall:.2f} | {wall0 / wall:.2f}x | {cpu:.2f} | {cpu0 / cpu:.2f}x |")
    lines += ["", "CPU s: processor time spent training, summed over the processes (time.process_time in "
              "each task). On a machine shared with other jobs the wall times depend on how much of the "
              "2 cores each mode got; the CPU ratio is the throughput ratio on 2 dedicated cores, where "
              "both modes keep both cores busy."]
    lines += ["", "Largest |batched - solo| difference in final accuracy/test_loss over all 40 models: "
              + ", ".join(f"{k}: {v:.3g}" for k, v in diffs.items()) + " (bit-identical expected at 1 thread).",
              "", verdict(wall0 / res[BATCHED_2][0], cpu0 / res[BATCHED_2][1]),
              "", "## Why: a per-step cost that does not shrink with K", "",
              "CPU ms of one training step (dropout masks, loss and gradients, Adam; no data loading or "
              "augmentation), measured in one worker process: "
              + ", ".join(f"K = {k}: {v:.2f} ms ({v / k:.3f} ms per model)" for k, v in costs.items())
              + f"; one solo step of the same MLP (nn.Module, torch.optim.Adam): {solo_step:.2f} ms. "
              "A batched step costs about F + K c: a fixed part F (the vmap/functional_call dispatch of "
              "every operation, autograd, the optimiser's calls) and a per-model part c (the arithmetic, "
              "and the per-model random draws, which cannot be shared because every model draws exactly "
              "what its solo run draws, element by element at 7-12 ns). "
              f"From K = 1 and K = {max(costs)}: F = {fixed:.2f} ms, c = {per_model:.3f} ms, so a step "
              f"of K models beats K solo steps by K x {solo_step:.2f} / (F + K c): "
              + ", ".join(f"{k * solo_step / (fixed + k * per_model):.2f}x at K = {k}" for k in (18, 35, 100))
              + f", at most {solo_step / per_model:.1f}x. With 40 models and 2 workers each process holds "
              "at most 18 of one kind, so F is paid twice as often as in one process with K = 35: the "
              "2-process mode spends more CPU time than the 1-process mode for the same models "
              f"({res[BATCHED_2][1]:.1f} s vs {res[BATCHED_1][1]:.1f} s): `-j 1` with `batch = \"auto\"` "
              f"uses the processor best ({cpu0 / res[BATCHED_1][1]:.2f}x solo's CPU time per model, one core "
              f"left free), `-j 2` finishes soonest ({wall0 / res[BATCHED_2][0]:.2f}x by wall time). The gain "
              "grows with the number of seeds x variants per batch; the per-step dispatch cost F is what a "
              "GPU would hide, and where a compiled step (torch.compile) could help, at the price of "
              "bit-identity with the solo runs.",
              "", f"Machine: {describe()}. The machine was shared with other engineers' processes while "
              "measuring (load average printed below); ratios from one invocation.",
              f"Load average at the end: {tuple(round(x, 2) for x in os.getloadavg())}.", ""]
    text = "\n".join(lines)
    print(text)
    out_path = HERE / "results" / "batched.md"
    out_path.parent.mkdir(exist_ok=True)
    out_path.write_text(text)


if __name__ == "__main__":
    main()
