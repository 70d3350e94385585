"""Throughput of a 40-run digits study (8 variants x 5 seeds) under seven runners, on 2 workers.

Runners (each one a fresh process, timed from launch to exit, so interpreter start-up, imports and
cluster start-up count, as they do for a user):

1. plain loop: one process calling ``train(config, run)`` 40 times in a row, after
   ``seed_everything(seed, threads=1)``, with a bare ``ablab.Run`` as the run handle;
2. ``ablab run study.toml -j 2`` (local executor, fresh store);
3. ``ablab run study.toml --executor ray -j 2`` (starts a local 2-CPU Ray cluster, fresh store);
4. ``ablab run study_batched.toml -j 2`` (``[run] batch = "auto"``, ``batch_by``
   hidden/batch_size/epochs: the 35 hidden=128 runs go in batches of 18 and 17, the 5 ``small``
   runs in batches of 3 and 2);
   and the same with ``-j 1`` (one batch of each kind: 35 + 5);
5. Hydra multirun with the joblib launcher, ``n_jobs=2`` (the app calls the same ``train``);
6. Ray Tune: ``tune.grid_search`` over variant index x seed, 2 CPUs, 1 CPU per trial.

The study is examples/digits with 8 variants (baseline, the 5 ablations of study.toml, ``lr-high``,
``wd0``), built in a temporary directory. Every runner seeds each run the same way, so the final
accuracies must agree run for run; the script checks that and reports the largest difference.
Writes benchmarks/results/throughput.md.

Run: .venv/bin/python benchmarks/throughput.py [--epochs 10]
Needs: ray[tune], hydra-joblib-launcher (see the results file for the versions used).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DIGITS = REPO / "examples" / "digits"
sys.path.insert(0, str(HERE))

BASE = dict(
    hidden=128,
    dropout=0.1,
    augment=True,
    label_smoothing=0.1,
    normalize=True,
    lr=0.002,
    weight_decay=0.0001,
    batch_size=64,
    epochs=30,
)
VARIANTS = {
    "baseline": {},
    "no-augment": {"augment": False},
    "no-dropout": {"dropout": 0.0},
    "small": {"hidden": 16},
    "no-label-smoothing": {"label_smoothing": 0.0},
    "no-normalize": {"normalize": False},
    "lr-high": {"lr": 0.005},
    "wd0": {"weight_decay": 0.0},
}
SEEDS = [0, 1, 2, 3, 4]
BATCH = "auto"  # each kind of run split evenly over the workers: 18 + 17 hidden=128, 3 + 2 small
JOBS = 2


def config_of(variant: str, epochs: int) -> dict:
    return {**BASE, **VARIANTS[variant], "epochs": epochs}


def one_run(study_dir: str, variant: str, seed: int, epochs: int, run_dir: str) -> dict:
    """What every non-ablab runner does per run: seed, build a bare run handle, call train."""
    if study_dir not in sys.path:
        sys.path.insert(0, study_dir)
    from train import train

    import ablab

    ablab.seed_everything(seed, threads=1)
    cfg = config_of(variant, epochs)
    run = ablab.Run(
        key=f"{variant}-s{seed}",
        variant=variant,
        seed=seed,
        config=dict(cfg),
        run_dir=Path(run_dir),
        split_seed=seed,
    )
    return train(cfg, run)


# ---------------------------------------------------------------- study files


def _toml_value(v) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else repr(v)


def write_study(d: Path, epochs: int) -> None:
    for f in ("train.py", "train_batched.py"):
        shutil.copy(DIGITS / f, d / f)
    base = "\n".join(f"{k} = {_toml_value(v)}" for k, v in {**BASE, "epochs": epochs}.items())
    abl = "\n".join(
        f"{name} = {{ {', '.join(f'{k} = {_toml_value(v)}' for k, v in over.items())} }}"
        for name, over in VARIANTS.items()
        if over
    )
    head = textwrap.dedent("""\
        seeds = 5

        [metrics]
        accuracy = "max"
        test_loss = "min"
        val_acc = { direction = "max", reduce = "best" }
        train_seconds = "min"
        """)
    body = f"\n[baseline]\n{base}\n\n[ablations]\n{abl}\n"
    (d / "study.toml").write_text(
        f'name = "digits-throughput"\nentry = "train.py:train"\n{head}{body}'
        '\n[run]\ntimeout = "10m"\nretries = 0\n'
    )
    (d / "study_batched.toml").write_text(
        f'name = "digits-throughput-batched"\nentry = "train_batched.py:train_batched"\n{head}{body}'
        f'\n[run]\nbatch = "{BATCH}"\nbatch_by = ["hidden", "batch_size", "epochs"]\ntimeout = "10m"\nretries = 0\n'
    )


HYDRA_APP = """
import json, sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

sys.path.insert(0, {bench!r})
from throughput import VARIANTS, one_run

NAMES = list(VARIANTS)


@hydra.main(version_base=None, config_path=".", config_name="config")
def main(cfg: DictConfig) -> float:
    out = Path(HydraConfig.get().runtime.output_dir)
    variant = NAMES[int(cfg.variant)]
    metrics = one_run({study!r}, variant, int(cfg.seed), int(cfg.epochs), str(out))
    (out / "result.json").write_text(json.dumps({{"variant": variant, "seed": int(cfg.seed), **metrics}}))
    return metrics["accuracy"]


if __name__ == "__main__":
    main()
"""


# ---------------------------------------------------------------- worker modes (run in subprocesses)


def mode_loop(study: str, epochs: int, out: str) -> None:
    res = []
    with tempfile.TemporaryDirectory() as tmp:
        for v in VARIANTS:
            for s in SEEDS:
                m = one_run(study, v, s, epochs, f"{tmp}/{v}-s{s}")
                res.append({"variant": v, "seed": s, **m})
    Path(out).write_text(json.dumps(res))


def mode_tune(study: str, epochs: int, out: str, reuse: bool = False) -> None:
    import ray
    from ray import tune

    names = list(VARIANTS)

    def trainable(config: dict) -> None:
        sys.path.insert(0, config["bench"])
        from throughput import one_run as _one

        v = config["names"][config["variant"]]
        m = _one(
            config["study"], v, config["seed"], config["epochs"], tune.get_context().get_trial_dir()
        )
        tune.report({"variant": v, "seed": config["seed"], **m})

    ray.init(num_cpus=JOBS, include_dashboard=False, log_to_driver=False)
    space = {
        "variant": tune.grid_search(list(range(len(names)))),
        "seed": tune.grid_search(SEEDS),
        "names": names,
        "study": study,
        "epochs": epochs,
        "bench": str(HERE),
    }
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space=space,
        tune_config=tune.TuneConfig(reuse_actors=reuse),
        run_config=tune.RunConfig(
            storage_path=str(Path(out).parent / "tune"),
            name="digits-reuse" if reuse else "digits",
            verbose=0,
        ),
    )
    grid = tuner.fit()
    res = [{k: r.metrics[k] for k in ("variant", "seed", "accuracy")} for r in grid]
    errors = [str(r.error) for r in grid if r.error]
    Path(out).write_text(json.dumps(res if not errors else {"errors": errors}))
    ray.shutdown()


# ---------------------------------------------------------------- driver


def timed(cmd: list[str], log: Path, env: dict | None = None, cwd: Path | None = None) -> float:
    t0 = time.perf_counter()
    with open(log, "w") as f:
        p = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    t = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} exited {p.returncode}; last lines of {log}:\n"
            + "\n".join(log.read_text().splitlines()[-15:])
        )
    return t


def store_results(store: Path, name: str) -> list[dict]:
    from ablab.store.db import Store

    with Store(store) as st:
        rows = st.runs(st.study(name)["id"])
    return [
        {"variant": r["variant"], "seed": r["seed"], "status": r["status"], **r["metrics"]}
        for r in rows
    ]


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "missing"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--mode", choices=["loop", "tune"], help=argparse.SUPPRESS)
    ap.add_argument("--study", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--reuse", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument(
        "--only",
        nargs="*",
        help="run only these runner ids (loop local ray batched batched-j1 hydra tune tune-reuse)",
    )
    args = ap.parse_args()
    if args.mode == "loop":
        return mode_loop(args.study, args.epochs, args.out)
    if args.mode == "tune":
        return mode_tune(args.study, args.epochs, args.out, args.reuse)

    py = sys.executable
    ablab_cli = [py, "-m", "ablab"]
    n = len(VARIANTS) * len(SEEDS)
    rows: list[tuple[str, str, float | None, str, str]] = []  # id, label, seconds, note, load avg
    results: dict[str, list[dict]] = {}
    logdir = Path(tempfile.mkdtemp(prefix="ablab_throughput_logs_"))
    with tempfile.TemporaryDirectory(prefix="ablab_throughput_") as tmp:
        d = Path(tmp) / "study"
        d.mkdir()
        write_study(d, args.epochs)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        want = set(
            args.only
            or ["loop", "local", "ray", "batched", "batched-j1", "hydra", "tune", "tune-reuse"]
        )

        def attempt(rid: str, label: str, fn) -> None:
            if rid not in want:
                return
            print(f"[{time.strftime('%H:%M:%S')}] {label} ...", flush=True)
            load0 = os.getloadavg()[0]
            try:
                t, res = fn()
            except Exception as e:  # noqa: BLE001  (reported in the results file, not hidden)
                print(f"  FAILED: {e}", flush=True)
                rows.append((rid, label, None, f"not run: {str(e).splitlines()[0][:200]}", ""))
                return
            results[rid] = res
            ok = sum(1 for r in res if r.get("status", "done") == "done" and "accuracy" in r)
            note = "" if ok == n else f"only {ok}/{n} runs finished"
            print(f"  {t:.1f} s ({ok}/{n} runs)  load avg {os.getloadavg()[0]:.2f}", flush=True)
            rows.append((rid, label, t, note, f"{load0:.1f} -> {os.getloadavg()[0]:.1f}"))

        def loop():
            out = Path(tmp) / "loop.json"
            t = timed(
                [
                    py,
                    __file__,
                    "--mode",
                    "loop",
                    "--study",
                    str(d),
                    "--epochs",
                    str(args.epochs),
                    "--out",
                    str(out),
                ],
                logdir / "loop.log",
                env,
            )
            return t, json.loads(out.read_text())

        def ablab_local():
            st = Path(tmp) / "store_local"
            t = timed(
                [
                    *ablab_cli,
                    "run",
                    str(d / "study.toml"),
                    "-j",
                    str(JOBS),
                    "-q",
                    "--store",
                    str(st),
                ],
                logdir / "local.log",
                env,
            )
            return t, store_results(st, "digits-throughput")

        def ablab_ray():
            st = Path(tmp) / "store_ray"
            t = timed(
                [
                    *ablab_cli,
                    "run",
                    str(d / "study.toml"),
                    "--executor",
                    "ray",
                    "-j",
                    str(JOBS),
                    "-q",
                    "--store",
                    str(st),
                ],
                logdir / "ray.log",
                env,
            )
            return t, store_results(st, "digits-throughput")

        def ablab_batched(jobs: int = JOBS):
            st = Path(tmp) / f"store_batched_j{jobs}"
            t = timed(
                [
                    *ablab_cli,
                    "run",
                    str(d / "study_batched.toml"),
                    "-j",
                    str(jobs),
                    "-q",
                    "--store",
                    str(st),
                ],
                logdir / f"batched_j{jobs}.log",
                env,
            )
            return t, store_results(st, "digits-throughput-batched")

        def hydra():
            import importlib.util

            if importlib.util.find_spec("hydra_plugins.hydra_joblib_launcher") is None:
                raise RuntimeError("hydra-joblib-launcher is not installed")
            app = Path(tmp) / "hydra_app"
            app.mkdir()
            (app / "app.py").write_text(HYDRA_APP.format(bench=str(HERE), study=str(d)))
            (app / "config.yaml").write_text(f"variant: 0\nseed: 0\nepochs: {args.epochs}\n")
            sweep = Path(tmp) / "hydra_multirun"
            t = timed(
                [
                    py,
                    str(app / "app.py"),
                    "-m",
                    f"variant={','.join(map(str, range(len(VARIANTS))))}",
                    f"seed={','.join(map(str, SEEDS))}",
                    "hydra/launcher=joblib",
                    f"hydra.launcher.n_jobs={JOBS}",
                    f"hydra.sweep.dir={sweep}",
                ],
                logdir / "hydra.log",
                env,
                cwd=app,
            )
            return t, [json.loads(p.read_text()) for p in sweep.rglob("result.json")]

        def ray_tune(reuse: bool = False):
            out = Path(tmp) / f"tune{'_reuse' if reuse else ''}.json"
            t = timed(
                [
                    py,
                    __file__,
                    "--mode",
                    "tune",
                    "--study",
                    str(d),
                    "--epochs",
                    str(args.epochs),
                    "--out",
                    str(out),
                    *(["--reuse"] if reuse else []),
                ],
                logdir / f"tune{'_reuse' if reuse else ''}.log",
                env,
            )
            res = json.loads(out.read_text())
            if isinstance(res, dict):
                raise RuntimeError("trials failed: " + "; ".join(res["errors"])[:300])
            return t, res

        attempt("loop", "plain sequential Python loop (1 process)", loop)
        attempt("local", f"ablab local executor, `-j {JOBS}`", ablab_local)
        attempt(
            "ray", f"ablab Ray executor, local 2-CPU cluster, `--executor ray -j {JOBS}`", ablab_ray
        )
        attempt("batched", f'ablab batched, `[run] batch = "{BATCH}"`, `-j {JOBS}`', ablab_batched)
        attempt(
            "batched-j1",
            f'ablab batched, `[run] batch = "{BATCH}"`, `-j 1`',
            lambda: ablab_batched(1),
        )
        attempt("hydra", f"Hydra multirun, joblib launcher, `n_jobs={JOBS}`", hydra)
        attempt(
            "tune", "Ray Tune grid (variant x seed), 2 CPUs, 1 CPU per trial (defaults)", ray_tune
        )
        attempt(
            "tune-reuse",
            "Ray Tune, same grid, `TuneConfig(reuse_actors=True)`",
            lambda: ray_tune(True),
        )

    write_report(rows, results, args.epochs, n, logdir)


DOES = {
    "loop": "Trains the 40 models one after another in one process; records nothing but the returned "
    "metrics (here dumped to JSON by the script), no isolation between runs.",
    "local": "Plans the 40 runs, then 2 spawned worker processes run them (1 torch thread each); the driver "
    "writes config, metrics, logged series, data hashes, code fingerprint, environment, seeds, "
    "timings and artifacts of every run to its SQLite store; resumable, each run isolated.",
    "ray": "Same plan and store as the local executor (the driver alone writes the store), but each run is a "
    "Ray task; the time includes starting a local Ray cluster (`ray.init(num_cpus=2)`).",
    "batched": "Same store records per run, but compatible runs are grouped (`batch_by`) and each group is "
    "trained as one vectorised `torch.func` computation by `train_batched.py` (bit-identical to "
    "the solo runs at 1 thread): 4 tasks (18 + 17 + 3 + 2 models) on 2 workers.",
    "batched-j1": "The same batched study with one worker: 2 tasks (35 + 5 models), one core busy; a larger "
    "batch pays the per-step fixed cost of the vectorised step once for 35 models "
    "(benchmarks/results/batched.md).",
    "hydra": "Hydra composes a config per job and the joblib (loky) launcher runs jobs in 2 worker processes; "
    "each job gets an output dir with its config, overrides and log; no metrics store, code or "
    "environment provenance (the app writes result.json itself).",
    "tune": "Ray Tune starts a local Ray cluster and runs each grid point as a trial actor (1 CPU); it writes "
    "params, results and progress per trial plus experiment state; no code/environment/data "
    "provenance; built for search (schedulers, early stopping) rather than ablations. With Tune's "
    "default `reuse_actors=False` every trial starts a fresh actor process (new interpreter, "
    "torch import).",
    "tune-reuse": "The same grid with Tune's documented `reuse_actors=True`: trial actors are kept and "
    "reused, so process start-up is paid about twice rather than 40 times.",
}


def write_report(rows, results, epochs: int, n: int, logdir: Path) -> None:
    from _machine import describe

    base = next((t for rid, _, t, _, _ in rows if rid == "loop" and t is not None), None)
    lines = [
        "# Throughput: a 40-run digits study under seven runners (ablab batched and Ray Tune twice each)",
        "",
        f"{n} runs = {len(VARIANTS)} variants ({', '.join(VARIANTS)}) x {len(SEEDS)} seeds of "
        f"examples/digits (MLP on sklearn digits), {epochs} epochs each, 2 workers where the runner "
        "has workers. Each wall time is one fresh process from launch to exit (interpreter start-up, "
        "imports, worker or cluster start-up included), all measured in one invocation of "
        "`benchmarks/throughput.py`. Ratio = runner's throughput / the plain loop's (above 1 is faster).",
        "",
        "| runner | wall s | runs/s | ratio vs plain loop | load avg (1 min) before -> after | notes |",
        "|---|---:|---:|---:|---|---|",
    ]
    for _rid, label, t, note, load in rows:
        if t is None:
            lines.append(f"| {label} | - | - | - | {load} | {note} |")
        else:
            ratio = f"{base / t:.2f}x" if base else "-"
            lines.append(f"| {label} | {t:.1f} | {n / t:.2f} | {ratio} | {load} | {note} |")
    lines += [
        "",
        "Caution: the 2 cores were shared with other engineers' processes (see the load column; a "
        "load above 2 means the runners got less than the 2 cores). The plain loop needs one core, "
        "the parallel runners two, so heavy load penalises them most; differences of a few tens of "
        "percent between rows are within the noise of this machine. Ray Tune's default row is the "
        "exception: its cost is per-trial actor start-up, which no load explains.",
    ]
    ref = {(r["variant"], r["seed"]): r["accuracy"] for r in results.get("loop", [])}
    diffs = []
    for rid, res in results.items():
        if rid == "loop" or not ref:
            continue
        got = {(r["variant"], r["seed"]): r.get("accuracy") for r in res}
        common = [k for k in ref if got.get(k) is not None]
        if common:
            diffs.append(
                f"{rid}: {max(abs(ref[k] - got[k]) for k in common):.3g} over {len(common)} runs"
            )
    lines += [
        "",
        "Largest |accuracy - plain loop's accuracy| per run: "
        + ("; ".join(diffs) or "n/a")
        + " (every runner seeds each run with `seed_everything(seed, threads=1)`, so 0 is expected).",
        "",
        "What each runner does:",
        "",
    ]
    labels = {rid: label for rid, label, _, _, _ in rows}
    for rid, text in DOES.items():
        if rid in labels:
            lines.append(f"- **{labels[rid]}**: {text}")
    lines += [
        "",
        f"Machine: {describe()}. Peers: ray {_version('ray')}, hydra-core {_version('hydra-core')}, "
        f"hydra-joblib-launcher {_version('hydra-joblib-launcher')}, joblib {_version('joblib')}, "
        f"pyarrow {_version('pyarrow')} (for ray.tune). The machine was shared with other engineers' "
        f"processes while measuring; load average at the end: "
        f"{tuple(round(x, 2) for x in os.getloadavg())}. Ratios from one invocation; absolute times "
        "vary with load.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    print(f"(logs in {logdir})")
    out_path = HERE / "results" / "throughput.md"
    out_path.parent.mkdir(exist_ok=True)
    out_path.write_text(text)


if __name__ == "__main__":
    main()
