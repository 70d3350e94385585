"""Smoke test of ablab's GPU paths: probes, Hessian metrics and the ``ablab probe`` CLI on cuda.

Three checks, each timed, each compared with the same computation on the CPU:

a. ``ablab.probe.probe_model`` on a small CNN (glyph digits at 12 px, held-out fonts as the
   OOD set) with the model on the device and ``device=...``: features (``extract``) within
   round-off of the CPU's, per-layer probe accuracies close to the CPU call's (max difference
   printed), model inputs seen on the device.
b. ``ablab.landscape.hessian_top_eigenvalue`` (one ``(X, y)`` pair) and ``hessian_trace``
   (a DataLoader of CPU batches, which ablab moves to the model's device) on the device model
   vs the same model on the CPU: within 1%.
c. ``python -m ablab probe ENTRY ... --device DEVICE -o DIR`` in a subprocess: exit code 0,
   probe.json/.csv/.png/.svg written, and the model's forward saw inputs on the device.

Run: ``python benchmarks/gpu_smoke.py`` (default ``--device cuda``). Without a CUDA device it
prints "no CUDA device" and exits 0 having run nothing (exit 1 with ``--require-cuda``);
``--device cpu`` runs every check on the CPU against the CPU, to test the script itself.
Exits 1 with a FAIL line per failed check. About 30 s on a GPU machine (mostly imports,
dataset generation and the CPU side of the comparisons).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
sys.path.insert(0, str(SRC))

RES = 12
SMALL = {"resolution": RES, "n_train_per_class": 40, "n_test_per_class": 20}
ACC_TOL = 0.05  # probe accuracy, absolute (20 test images per class: one image = 0.5 points)
FEAT_TOL = 1e-2  # feature difference relative to the layer's largest |feature| (TF32 convs)
HESS_TOL = 0.01  # relative

CLI_MODEL = textwrap.dedent("""
    import os

    import torch
    from torch import nn

    SEEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "devices.txt")


    def _record(_module, inputs):
        with open(SEEN, "a") as f:
            f.write(inputs[0].device.type + "\\n")


    def model():
        torch.manual_seed(0)
        m = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 144, 16), nn.ReLU(), nn.Linear(16, 10))
        m[0].register_forward_pre_hook(_record)
        return m
""")


def small_cnn():
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1, stride=2), nn.ReLU(),
        nn.Flatten(), nn.Linear(16 * 36, 32), nn.ReLU(), nn.Linear(32, 10),
    )  # fmt: skip


def trained_cnn(ds):
    """The small CNN trained on the CPU (deterministic), in eval mode."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    m = small_cnn()
    opt = torch.optim.Adam(m.parameters(), 3e-3)
    x, y = torch.tensor(ds.x_train), torch.tensor(ds.y_train)
    g = torch.Generator().manual_seed(0)
    for _ in range(8):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 50):
            b = perm[i : i + 50]
            opt.zero_grad()
            nn.functional.cross_entropy(m(x[b]), y[b]).backward()
            opt.step()
    return m.eval()


class Smoke:
    def __init__(self, device: str) -> None:
        self.device = device
        self.failures: list[str] = []

    def sync(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()

    def timed(self, fn: Callable[[], object]) -> tuple[object, float]:
        self.sync()
        t0 = time.perf_counter()
        out = fn()
        self.sync()
        return out, time.perf_counter() - t0

    def check(self, ok: bool, what: str) -> None:
        print(f"  {'ok  ' if ok else 'FAIL'} {what}", flush=True)
        if not ok:
            self.failures.append(what)

    # a. probe_model
    def probe(self, ds, model) -> None:
        import numpy as np
        import torch

        from ablab.probe import probe_model
        from ablab.probe.features import extract, select_points

        dev_model = copy.deepcopy(model).to(self.device)
        seen: set[str] = set()
        dev_model[0].register_forward_pre_hook(lambda _m, i: seen.add(i[0].device.type))
        args = ("glyphs-digits", ["glyphs-heldout-fonts"])
        ref, t_cpu = self.timed(lambda: probe_model(model, *args, device="cpu",
                                                    data_options=SMALL))  # fmt: skip
        got, t_dev = self.timed(lambda: probe_model(dev_model, *args, device=self.device,
                                                    data_options=SMALL))  # fmt: skip
        print(f"  probe_model: cpu {t_cpu:.2f}s, {self.device} {t_dev:.2f}s (datasets built "
              "inside each call; probes run on the CPU)")  # fmt: skip
        self.check(seen == {self.device}, f"model inputs seen on {sorted(seen)}")
        self.check(
            next(dev_model.parameters()).device.type == self.device,
            f"model still on {self.device} after probe_model",
        )
        self.check(got.layers == ref.layers, f"same probe points: {got.layers}")
        diffs = {"ID": np.abs(np.asarray(got.id_acc) - np.asarray(ref.id_acc))}
        for k in ref.ood:
            diffs[k] = np.abs(np.asarray(got.ood[k]) - np.asarray(ref.ood[k]))
        worst = max(float(d.max()) for d in diffs.values())
        for k, d in diffs.items():
            print(f"  |acc {self.device} - acc cpu| {k}: " + " ".join(f"{v:.3f}" for v in d))
        self.check(worst <= ACC_TOL, f"probe accuracies: max difference {worst:.3f} "
                   f"(<= {ACC_TOL})")  # fmt: skip

        points = select_points(model)
        f_cpu, t_cpu = self.timed(lambda: extract(model, ds.x_test, points, device="cpu"))
        f_dev, t_dev = self.timed(lambda: extract(dev_model, ds.x_test, points,
                                                  device=self.device))  # fmt: skip
        rel = max(
            float(np.abs(f_dev[n] - f_cpu[n]).max() / max(np.abs(f_cpu[n]).max(), 1e-12))
            for n in f_cpu
        )
        print(f"  extract {len(ds.x_test)} images x {len(points)} points: cpu {t_cpu:.3f}s, "
              f"{self.device} {t_dev:.3f}s")  # fmt: skip
        self.check(f_dev.keys() == f_cpu.keys(), "same feature layers")
        self.check(rel <= FEAT_TOL, f"features: max difference {rel:.1e} of the layer's "
                   f"largest value (<= {FEAT_TOL})")  # fmt: skip
        if self.device == "cuda":
            print(f"  (TF32: cudnn.allow_tf32={torch.backends.cudnn.allow_tf32}, "
                  f"matmul.allow_tf32={torch.backends.cuda.matmul.allow_tf32})")  # fmt: skip

    # b. Hessian metrics
    def hessian(self, ds, model) -> None:
        import torch
        from torch import nn

        from ablab.landscape import hessian_top_eigenvalue, hessian_trace

        dev_model = copy.deepcopy(model).to(self.device)
        x, y = torch.tensor(ds.x_train), torch.tensor(ds.y_train)
        loss = nn.CrossEntropyLoss()

        def loader():  # CPU batches: ablab moves them to the model's device
            return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y),
                                               batch_size=100, shuffle=False)  # fmt: skip

        for name, fn in (
            ("hessian_top_eigenvalue (X, y)", lambda m: hessian_top_eigenvalue(m, loss, (x, y))),
            ("hessian_trace (DataLoader)", lambda m: hessian_trace(m, loss, loader())),
        ):
            ref, t_cpu = self.timed(lambda fn=fn: fn(model))
            fn(dev_model)  # warm-up (kernels, cuDNN plans)
            got, t_dev = self.timed(lambda fn=fn: fn(dev_model))
            rel = abs(float(got) - float(ref)) / abs(float(ref))
            print(f"  {name}: cpu {float(ref):.6g} ({ref.iterations} it, {t_cpu:.3f}s), "
                  f"{self.device} {float(got):.6g} ({got.iterations} it, {t_dev:.3f}s)")  # fmt: skip
            self.check(rel < HESS_TOL, f"{name}: relative difference {rel:.1e} (< {HESS_TOL})")
        self.check(
            next(dev_model.parameters()).device.type == self.device,
            f"model still on {self.device} after the Hessian metrics",
        )

    # c. the CLI
    def cli(self) -> None:
        with tempfile.TemporaryDirectory(prefix="ablab_gpu_smoke_") as tmp:
            d = Path(tmp)
            (d / "m.py").write_text(CLI_MODEL)
            out = d / "out"
            cmd = [sys.executable, "-m", "ablab", "probe", "m.py:model", "--id", "glyphs-digits",
                   "--ood", "glyphs-heldout-fonts,glyphs-letters", "--resolution", str(RES),
                   "--n-train-per-class", "12", "--n-test-per-class", "6",
                   "--device", self.device, "-o", str(out)]  # fmt: skip
            env = dict(os.environ, MPLBACKEND="Agg")
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(SRC), os.environ.get("PYTHONPATH", "")) if p
            )
            print("  $ " + " ".join(cmd[1:]), flush=True)
            t0 = time.perf_counter()
            try:
                proc = subprocess.run(cmd, cwd=d, env=env, capture_output=True, text=True,
                                      timeout=300)  # fmt: skip
            except subprocess.TimeoutExpired:
                self.check(False, "CLI finished within 300 s")
                return
            dt = time.perf_counter() - t0
            print(f"  CLI exit code {proc.returncode} in {dt:.1f}s (process start and imports "
                  "included)")  # fmt: skip
            if proc.returncode != 0:
                print(textwrap.indent((proc.stdout + proc.stderr)[-3000:], "  | "))
            self.check(proc.returncode == 0, f"CLI exit code {proc.returncode}")
            for f in ("probe.json", "probe.csv", "probe.png", "probe.svg"):
                p = out / f
                size = p.stat().st_size if p.is_file() else 0
                self.check(size > 0, f"CLI wrote {f} ({size} bytes)")
            if (out / "probe.json").is_file():
                rep = json.loads((out / "probe.json").read_text())
                self.check(
                    set(rep.get("ood_acc", {})) == {"glyphs-heldout-fonts", "glyphs-letters"},
                    f"probe.json: layers {rep.get('layers')}, OOD sets "
                    f"{sorted(rep.get('ood_acc', {}))}",
                )
            seen = (
                set((d / "devices.txt").read_text().split())
                if (d / "devices.txt").is_file()
                else set()
            )
            self.check(seen == {self.device}, f"CLI model inputs seen on {sorted(seen)}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--device",
        choices=("cuda", "cpu"),
        default="cuda",
        help="device under test, compared with the CPU (default cuda)",
    )
    ap.add_argument(
        "--require-cuda",
        action="store_true",
        help="exit 1 instead of 0 when --device cuda finds no CUDA device",
    )
    ap.add_argument(
        "--parts", default="probe,hessian,cli", help="comma-separated subset of probe,hessian,cli"
    )
    args = ap.parse_args(argv)  # fmt: skip
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    bad = [p for p in parts if p not in ("probe", "hessian", "cli")]
    if bad or not parts:
        ap.error(f"unknown part(s) {bad}; choose from probe,hessian,cli")

    t_start = time.perf_counter()
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device (torch.cuda.is_available() is False): nothing run")
        return 1 if args.require_cuda else 0
    torch.set_num_threads(min(4, os.cpu_count() or 1))
    print(f"torch {torch.__version__}, device {args.device}"
          + (f" ({torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda})"
             if args.device == "cuda" else ""), flush=True)  # fmt: skip
    if args.device == "cuda":
        t0 = time.perf_counter()
        torch.zeros(1, device="cuda")
        torch.cuda.synchronize()
        print(f"CUDA context in {time.perf_counter() - t0:.2f}s", flush=True)

    smoke = Smoke(args.device)
    ds = model = None
    if {"probe", "hessian"} & set(parts):
        try:
            from ablab import data

            t0 = time.perf_counter()
            ds = data.load("glyphs-digits", seed=0, **SMALL)
            model = trained_cnn(ds)
            acc = (model(torch.tensor(ds.x_test)).argmax(1).numpy() == ds.y_test).mean()
            print(f"small CNN trained on the CPU in {time.perf_counter() - t0:.1f}s "
                  f"(test accuracy {acc:.3f})")  # fmt: skip
        except Exception:
            traceback.print_exc()
            smoke.check(False, "setup: dataset and small CNN")
            parts = [p for p in parts if p == "cli"]
    for part in parts:
        print(f"\n[{part}]", flush=True)
        t0 = time.perf_counter()
        try:
            if part == "cli":
                smoke.cli()
            else:
                getattr(smoke, part)(ds, model)
        except Exception as exc:
            traceback.print_exc()
            smoke.check(False, f"{part}: {type(exc).__name__}: {exc}")
        print(f"[{part}] {time.perf_counter() - t0:.1f}s", flush=True)

    total = time.perf_counter() - t_start
    if smoke.failures:
        print(f"\nGPU SMOKE FAILED on {args.device} ({len(smoke.failures)} failure(s), "
              f"{total:.1f}s):")  # fmt: skip
        for f in smoke.failures:
            print(f"  - {f}")
        return 1
    print(f"\nGPU SMOKE OK on {args.device}: {', '.join(parts)} ({total:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
