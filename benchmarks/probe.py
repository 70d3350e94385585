"""Benchmark: ablab's layer-wise probes vs scikit-learn LogisticRegression per layer.

A VGG-like CNN is trained briefly on glyph digits (32 px); features of every probe point are
extracted once for the ID set and two OOD sets, then probed by

* ablab lda-logistic (the default: logistic regression in each layer's shrinkage-LDA
  discriminant subspace, batched across layers; strengths chosen on a validation split),
* ablab ridge and lda (closed form, strength chosen on a validation split; per layer),
* ablab logistic (full-width multinomial L-BFGS, batched across layers),
* scikit-learn ``LogisticRegression`` (lbfgs, C=1, standardised features), one fit per layer.

Both sides get identical features and run single-threaded (one torch thread; scikit-learn's
BLAS limited to one thread by threadpoolctl: unlimited, two OpenBLAS threads on a shared
2-core machine made scikit-learn 10-30x slower and inflated earlier speed-ups). Timings cover
the whole probing step (fit + strength selection + refit + scoring) of all layers of all
three datasets; after an untimed warm-up, methods are interleaved over ``ROUNDS`` rounds
and the best round is reported (wall and process CPU time), with the load average. A size
sweep then probes the letters set (26 classes) at 1x, 4x and 16x the training images per
class on the same model, timing scikit-learn and lda-logistic (interleaved, best of
``SWEEP_ROUNDS``), to show how the speed-up changes once fixed costs stop dominating. Run:
``python benchmarks/probe.py``; writes ``benchmarks/results/probe.md``.

``--device cuda`` trains the model and extracts the features on the GPU (after an untimed
warm-up extraction) and writes ``benchmarks/results/probe_gpu.md`` (``--out`` to change);
the probes themselves always run on the CPU (ablab's probes are NumPy/torch-CPU code,
scikit-learn is CPU-only), single-threaded as above. ``--quick`` shrinks every dataset, runs
one round and a 2-step sweep: a check of the plumbing in well under a minute, whose numbers
mean nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from threadpoolctl import threadpool_limits

from ablab import data
from ablab.probe.features import extract, select_points
from ablab.probe.lda_logistic import lda_logistic_probes
from ablab.probe.linear import lda_probe, logistic_probes, ridge_probe

RES = 32
ROUNDS = 3
SWEEP = (1, 4, 16)  # x the letters' 80 training images per class
SWEEP_ROUNDS = 2
LETTERS = (80, 30)  # glyphs-letters training / test images per class
ID_SIZES = (200, 60)  # ID and held-out-font sets: training / test images per class
NOTES = [
    "Notes. The full-width logistic probe is slow because it needs as many L-BFGS iterations "
    "as scikit-learn (40-150 on these layers; 5-20 leave it several points short on the "
    "letters layers), over all d dimensions padded to the widest layer, for 3 penalties plus "
    "a refit. Warm-starting it from the LDA solution did not help (LDA's scores are "
    "over-confident and the first steps undo them). lda-logistic runs its iterations in the "
    "C-dimensional LDA subspace instead. Its closed-form part is one Gram matrix and one "
    "Cholesky factorisation per layer (Ledoit-Wolf shrinkage, no search); the rest is the "
    "batched L-BFGS iterations. "
    "Earlier versions of this file reported 26x for ridge: scikit-learn then ran with two "
    "OpenBLAS threads on the shared 2-core machine, which made it 10-30x slower than "
    "single-threaded.",
]
OUT = Path(__file__).parent / "results" / "probe.md"


def _loadavg() -> tuple[float, float, float]:
    """os.getloadavg(), or NaNs where the platform (a sandboxed GPU machine) has none."""
    try:
        return os.getloadavg()
    except OSError:
        return (float("nan"),) * 3


def vgg() -> nn.Module:
    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]

    return nn.Sequential(
        *block(1, 32), *block(32, 32), nn.MaxPool2d(2),
        *block(32, 64), *block(64, 64), nn.MaxPool2d(2),
        *block(64, 128), *block(128, 128), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(128 * 16, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
        nn.Linear(128, 10),
    )  # fmt: skip


def machine() -> str:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (f"CPU {cpu}, {os.cpu_count()} cores, GPU {gpu}, Python {platform.python_version()}, "
            f"torch {torch.__version__}, torch threads {torch.get_num_threads()}")  # fmt: skip


def size_sweep(model, points, base, methods, device: str = "cpu") -> list[dict]:
    """Letters at ``SWEEP`` x 80 training images per class: scikit-learn vs lda-logistic."""
    rows = []
    for mult in SWEEP:
        t_ext = 0.0
        if mult == 1:
            tr, te, ds = base
        else:
            t0 = time.perf_counter()
            ds = data.load("glyphs-letters", seed=0, resolution=RES,
                           n_train_per_class=LETTERS[0] * mult,
                           n_test_per_class=LETTERS[1])  # fmt: skip
            t1 = time.perf_counter()
            tr = extract(model, ds.x_train, points, drop_output=True, device=device)
            te = extract(model, ds.x_test, points, drop_output=True, device=device)
            t_ext = time.perf_counter() - t1
            print(f"sweep {mult}x: {len(ds.y_train)} rows built in {time.perf_counter() - t0:.1f}s "
                  f"(extraction on {device} {t_ext:.2f}s)")  # fmt: skip
        wall: dict[str, list[float]] = {"sklearn": [], "lda-logistic": []}
        cpu: dict[str, list[float]] = {"sklearn": [], "lda-logistic": []}
        acc: dict[str, dict[str, float]] = {}
        for _ in range(SWEEP_ROUNDS):
            for key in wall:
                t0, c0 = time.perf_counter(), time.process_time()
                acc[key] = methods[key][1](tr, ds.y_train, te, ds.y_test)
                wall[key].append(time.perf_counter() - t0)
                cpu[key].append(time.process_time() - c0)
                print(f"sweep {mult}x {key}: {wall[key][-1]:.2f}s wall, {cpu[key][-1]:.2f}s cpu")
        d = np.array([acc["lda-logistic"][n] - acc["sklearn"][n] for n in tr]) * 100
        rows.append({
            "per_class": LETTERS[0] * mult, "rows": len(ds.y_train), "extract": t_ext,
            "sk_wall": min(wall["sklearn"]), "ll_wall": min(wall["lda-logistic"]),
            "sk_cpu": min(cpu["sklearn"]), "ll_cpu": min(cpu["lda-logistic"]),
            "within": int((np.abs(d) <= 2.0).sum()), "pairs": len(d),
            "maxdiff": float(np.abs(d).max()),
        })  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> None:
    global ROUNDS, SWEEP, SWEEP_ROUNDS, LETTERS, ID_SIZES
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="where the model is trained and the features are extracted (the "
        "probes always run on the CPU)",
    )
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results file (default benchmarks/results/probe.md on cpu, "
        "benchmarks/results/probe_gpu.md on cuda)",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="tiny datasets, 1 round, sweep 1x/2x: checks the plumbing only",
    )
    args = ap.parse_args(argv)
    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("probe.py: --device cuda but torch.cuda.is_available() is False")
    out_path = args.out or OUT.with_name("probe.md" if device == "cpu" else "probe_gpu.md")
    if args.quick:
        ROUNDS, SWEEP, SWEEP_ROUNDS, LETTERS, ID_SIZES = 1, (1, 2), 1, (10, 5), (20, 10)

    import sklearn
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    # one torch thread: on a shared 2-core machine two threads oversubscribe and small linear
    # algebra slows down by an order of magnitude, which made timings swing between runs
    torch.set_num_threads(1)
    torch.manual_seed(0)
    t_start = time.perf_counter()
    opts = {"resolution": RES, "n_train_per_class": ID_SIZES[0], "n_test_per_class": ID_SIZES[1]}
    id_ds = data.load("glyphs-digits", seed=0, **opts)
    sets = {
        "glyphs-digits (ID)": id_ds,
        "glyphs-heldout-fonts": data.load("glyphs-heldout-fonts", seed=0, **opts),
        "glyphs-letters": data.load("glyphs-letters", seed=0, resolution=RES,
                                    n_train_per_class=LETTERS[0], n_test_per_class=LETTERS[1]),
    }  # fmt: skip
    model = vgg().to(device)  # initialised on the CPU (same weights on both devices)
    optim = torch.optim.Adam(model.parameters(), 2e-3)
    x, y = torch.tensor(id_ds.x_train).to(device), torch.tensor(id_ds.y_train).to(device)
    t0 = time.perf_counter()
    for _ in range(3):
        perm = torch.randperm(len(x))  # CPU generator: the same batches on both devices
        for i in range(0, len(x), 64):
            b = perm[i : i + 64].to(device)
            optim.zero_grad()
            nn.functional.cross_entropy(model(x[b]), y[b]).backward()
            optim.step()
    if device == "cuda":
        torch.cuda.synchronize()
    t_train = time.perf_counter() - t0
    print(f"trained VGG-like in {t_train:.1f}s on {device}")
    points = select_points(model)

    if device == "cuda":  # untimed warm-up: inference-mode kernels, cuDNN plans
        extract(model, id_ds.x_train[:512], points, drop_output=True, device=device)
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    feats = {}
    for name, ds in sets.items():
        tr = extract(model, ds.x_train, points, drop_output=True, device=device)
        te = extract(model, ds.x_test, points, drop_output=True, device=device)
        feats[name] = (tr, te, ds)
    t_extract = time.perf_counter() - t0  # extract() returns NumPy arrays: already synced
    layers = list(next(iter(feats.values()))[0])
    dims = {n: next(iter(feats.values()))[0][n].shape[1] for n in layers}
    print(f"extracted {len(layers)} layers x {len(sets)} sets in {t_extract:.1f}s; dims {dims}")

    def per_layer(fn):
        def run(tr, y, te, yt):
            return {n: fn(tr[n], y, te[n], yt).accuracy for n in layers}

        return run

    def sklearn_lr(tr, y, te, yt):
        out = {}
        for n in layers:
            sc = StandardScaler().fit(tr[n])
            clf = LogisticRegression(C=1.0, max_iter=1000).fit(sc.transform(tr[n]), y)
            out[n] = float((clf.predict(sc.transform(te[n])) == yt).mean())
        return out

    def batched(fn):
        def run(tr, y, te, yt):
            return {n: r.accuracy for n, r in fn(tr, y, te, yt).items()}

        return run

    methods = {
        "sklearn": ("scikit-learn LogisticRegression per layer", sklearn_lr, ROUNDS),
        "lda-logistic": ("ablab lda-logistic (default; batched)", batched(lda_logistic_probes),
                         ROUNDS),
        "ridge": ("ablab ridge (per layer)", per_layer(ridge_probe), ROUNDS),
        "lda": ("ablab lda (per layer)", per_layer(lda_probe), ROUNDS),
        "logistic": ("ablab logistic (full-width batched L-BFGS)", batched(logistic_probes), 1),
    }  # fmt: skip
    load_before = _loadavg()
    with threadpool_limits(1):
        tiny = {n: f[:200] for n, f in next(iter(feats.values()))[0].items()}
        ytiny = next(iter(feats.values()))[2].y_train[:200]
        for _, fn, _ in methods.values():  # warm-up: first-call allocations, lazy imports
            fn(tiny, ytiny, tiny, ytiny)
        wall = {k: [] for k in methods}
        cpu = {k: [] for k in methods}
        acc: dict[str, dict[tuple[str, str], float]] = {k: {} for k in methods}
        per_set: dict[tuple[str, str], list[float]] = {}
        for rnd in range(ROUNDS):
            for key, (_, fn, rounds) in methods.items():
                if rnd >= rounds:
                    continue
                t0, c0 = time.perf_counter(), time.process_time()
                for name, (tr, te, ds) in feats.items():
                    c1 = time.process_time()
                    for n, a in fn(tr, ds.y_train, te, ds.y_test).items():
                        acc[key][(name, n)] = a
                    per_set.setdefault((key, name), []).append(time.process_time() - c1)
                wall[key].append(time.perf_counter() - t0)
                cpu[key].append(time.process_time() - c0)
                print(f"round {rnd} {key}: {wall[key][-1]:.2f}s wall, {cpu[key][-1]:.2f}s cpu")
        sweep_rows = size_sweep(model, points, feats["glyphs-letters"], methods, device)
    load_after = _loadavg()

    keys = [(name, n) for name in feats for n in layers]
    sk = np.array([acc["sklearn"][k] for k in keys])
    t_sk, c_sk = min(wall["sklearn"]), min(cpu["sklearn"])
    cores = "the machine is shared; 2 cores" if device == "cpu" else f"{os.cpu_count()} cores"
    lines = [
        "# Layer-wise probes: ablab vs scikit-learn LogisticRegression",
        "",
        f"Machine: {machine()}; scikit-learn {sklearn.__version__} with BLAS limited to 1 "
        "thread (threadpoolctl).",
        f"Load average (1, 5, 15 min) before: {', '.join(f'{v:.2f}' for v in load_before)}; "
        f"after: {', '.join(f'{v:.2f}' for v in load_after)} ({cores}).",
        "",
    ]  # fmt: skip
    if args.quick:
        lines += ["**Quick run (--quick): tiny datasets, 1 round; the numbers mean nothing.**", ""]
    if device == "cuda":
        t_sweep = sum(r["extract"] for r in sweep_rows)
        lines += [
            f"Device: cuda, {torch.cuda.get_device_name(0)} (torch {torch.__version__}, CUDA "
            f"{torch.version.cuda}). On this GPU: the model's training (3 epochs, "
            f"{t_train:.2f}s) and every feature extraction (ID and OOD sets, train and test "
            f"splits: {t_extract:.2f}s after an untimed warm-up extraction; the size sweep's "
            f"larger letters sets: {t_sweep:.2f}s). On the CPU: every probe, ablab's (NumPy and "
            "torch-CPU code) and scikit-learn's alike, single-threaded (one torch thread, BLAS "
            "limited by threadpoolctl), on "
            "the features copied back from the GPU; all probe timings below are CPU timings. "
            "The model is initialised and its batches drawn as in the CPU run, but GPU "
            "round-off in training (cuDNN, TF32 convolutions) changes it slightly, so "
            "accuracies can differ a little from probe.md.",
            "",
        ]  # fmt: skip
    lines += [
        f"Model: VGG-like CNN (6 conv blocks + 2 hidden linear), 3 epochs on glyph digits "
        f"{RES}px; {len(layers)} probe points (head dropped); 3 datasets "
        "(ID digits, held-out fonts, letters with a new 26-class head): "
        f"{len(keys)} layer-dataset pairs.",
        "",
        "Timings cover the whole probing step (all layers of all datasets: fits, strength "
        "selection on a validation split of the training data, refit, test scoring) on "
        f"identical features (extraction, shared, took {t_extract:.2f}s). Best of {ROUNDS} "
        "interleaved rounds after an untimed warm-up (the full-width logistic: 1 round). "
        "ablab picks strengths on the validation split (lda-logistic: Ledoit-Wolf LDA "
        "shrinkage in closed form, then 3 logistic penalties on a warm-started path; "
        "ridge/lda: 15 strengths; logistic: 3 "
        "penalties); scikit-learn fits one C=1 model per layer.",
        "",
        "| method | wall (s) | speed-up (wall) | CPU (s) | speed-up (CPU) | within 2 pts | "
        "max abs diff (pts) | mean abs diff (pts) | worst signed diff (pts) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    summary = {}

    def ratio(v: float) -> str:
        return f"{v:.1f}x" if v >= 1 else f"{v:.2f}x"

    for key, (label, _, _) in methods.items():
        t, c = min(wall[key]), min(cpu[key])
        if key == "sklearn":
            lines.append(f"| {label} | {t:.2f} | 1.0x | {c:.2f} | 1.0x | - | - | - | - |")
            continue
        d = (np.array([acc[key][k] for k in keys]) - sk) * 100
        within = int((np.abs(d) <= 2.0).sum())
        summary[key] = (t_sk / t, c_sk / c, within)
        lines.append(f"| {label} | {t:.2f} | {ratio(t_sk / t)} | {c:.2f} | {ratio(c_sk / c)} | "
                     f"{within}/{len(keys)} | {np.abs(d).max():.1f} | {np.abs(d).mean():.2f} | "
                     f"{d[np.abs(d).argmax()]:+.1f} |")  # fmt: skip
    order = ["lda-logistic", "ridge", "lda", "logistic", "sklearn"]
    lines += [
        "",
        "| dataset | layer | dim | " + " | ".join(order) + " | lda-logistic - sklearn (pts) |",
        "|---|---|---|" + "---|" * len(order) + "---|",
    ]
    for name, n in keys:
        vals = " | ".join(f"{acc[k][(name, n)]:.3f}" for k in order)
        diff = 100 * (acc["lda-logistic"][(name, n)] - acc["sklearn"][(name, n)])
        lines.append(f"| {name} | {n} | {dims[n]} | {vals} | {diff:+.1f} |")
    lines += [
        "",
        "CPU time per dataset (best round, s):",
        "",
        "| dataset | classes | training rows | scikit-learn | lda-logistic | speed-up (CPU) |",
        "|---|---|---|---|---|---|",
    ]
    for name, (_, _, ds) in feats.items():
        a, b = min(per_set[("sklearn", name)]), min(per_set[("lda-logistic", name)])
        lines.append(f"| {name} | {int(ds.y_train.max()) + 1} | {len(ds.y_train)} | {a:.2f} | "
                     f"{b:.2f} | {ratio(a / b)} |")  # fmt: skip
    lines += [
        "",
        "Size sweep (glyphs-letters, 26 classes, the same model's 8 layers; "
        f"{LETTERS[1]} test images per "
        f"class; best of {SWEEP_ROUNDS} interleaved rounds; the 1x row is a separate timing of "
        "the set above):",
        "",
        "| training images per class | training rows | scikit-learn wall (s) | lda-logistic "
        "wall (s) | speed-up (wall) | scikit-learn CPU (s) | lda-logistic CPU (s) | "
        "speed-up (CPU) | within 2 pts | max abs diff (pts) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sweep_rows:
        lines.append(f"| {r['per_class']} | {r['rows']} | {r['sk_wall']:.2f} | {r['ll_wall']:.2f} "
                     f"| {ratio(r['sk_wall'] / r['ll_wall'])} | {r['sk_cpu']:.2f} | "
                     f"{r['ll_cpu']:.2f} | {ratio(r['sk_cpu'] / r['ll_cpu'])} | "
                     f"{r['within']}/{r['pairs']} | {r['maxdiff']:.1f} |")  # fmt: skip
    lines += [""] + [
        f"- {k}: {w}/{len(keys)} layer-dataset pairs within 2 points of scikit-learn; "
        f"{ratio(s)} faster (wall), {ratio(c)} (CPU)."
        for k, (s, c, w) in summary.items()
    ]
    lines += ["", *NOTES, "",
              f"Whole benchmark (training, extraction, all timings): "
              f"{time.perf_counter() - t_start:.0f}s wall."]  # fmt: skip
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nwrote {out_path}")


if __name__ == "__main__":
    sys.exit(main())
