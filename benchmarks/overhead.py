"""Per-run overhead of ablab against a plain Python loop and Hydra multirun (basic launcher).

200 runs of an entry that returns at once; then 200 runs of an argparse script that returns at
once, as an ablab command entry and under Hydra multirun (a Hydra app that runs the same script
with the same arguments for each job). Writes benchmarks/results/overhead.md.
Run: .venv/bin/python benchmarks/overhead.py [--runs 200]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

ENTRY = """
def train(config, run):
    return {"score": config["x"] * 0.5}
"""

HYDRA_APP = """
import hydra
from omegaconf import DictConfig

def train(config):
    return {"score": config["x"] * 0.5}

@hydra.main(version_base=None, config_path=".", config_name="config")
def main(cfg: DictConfig) -> float:
    return train(cfg)["score"]

if __name__ == "__main__":
    main()
"""


SCRIPT = """
import argparse
ap = argparse.ArgumentParser()
ap.add_argument("--x", type=float, required=True)
a = ap.parse_args()
print(f"score: {a.x * 0.5}")
"""

HYDRA_SCRIPT_APP = """
import re, subprocess, sys
import hydra
from omegaconf import DictConfig

@hydra.main(version_base=None, config_path=".", config_name="config")
def main(cfg: DictConfig) -> float:
    out = subprocess.run([sys.executable, "script.py", "--x", str(cfg.x)], capture_output=True,
                         text=True, check=True).stdout
    return float(re.search(r"score: (\\S+)", out).group(1))

if __name__ == "__main__":
    main()
"""


def plain_loop(n: int) -> float:
    ns: dict = {}
    exec(ENTRY, ns)
    train = ns["train"]
    t0 = time.perf_counter()
    for i in range(n):
        train({"x": i}, None)
    return time.perf_counter() - t0


def ablab_run(n: int, work: Path, jobs: int, command: bool = False) -> tuple[float, float]:
    """Total wall time, and the warm per-run time (first to last completion / (n - 1))."""
    import ablab
    from ablab.store.db import Store

    d = work / f"ablab_j{jobs}{'_cmd' if command else ''}"
    d.mkdir()
    (d / "entry.py").write_text(ENTRY)
    (d / "script.py").write_text(SCRIPT)
    entry = (
        'entry = { command = "python script.py --x {x}" }'
        if command
        else 'entry = "entry.py:train"'
    )
    metric = "{ direction = \"max\", pattern = 'score: (\\S+)' }" if command else '"max"'
    (d / "study.toml").write_text(
        textwrap.dedent(f"""
        name = "overhead"
        {entry}
        seeds = {n}
        [metrics]
        score = {metric}
        [baseline]
        x = 1
    """)
    )
    t0 = time.perf_counter()
    s = ablab.run(d / "study.toml", jobs=jobs)
    total = time.perf_counter() - t0
    assert s.done == n, s
    with Store(d / ".ablab") as st:
        rows = st.runs(st.study("overhead")["id"])
    ends = sorted(r["ended_at"] for r in rows)
    warm = (ends[-1] - ends[0]) / (n - 1)  # first completion to last: worker start-up excluded
    return total, warm


def hydra_multirun(n: int, work: Path, command: bool = False) -> tuple[float, float]:
    d = work / ("hydra_cmd" if command else "hydra")
    d.mkdir()
    (d / "app.py").write_text(HYDRA_SCRIPT_APP if command else HYDRA_APP)
    (d / "script.py").write_text(SCRIPT)
    (d / "config.yaml").write_text("x: 1\n")
    py = sys.executable
    t0 = time.perf_counter()
    subprocess.run([py, "app.py", "hydra.run.dir=single"], cwd=d, check=True, capture_output=True)
    single = time.perf_counter() - t0
    t0 = time.perf_counter()
    subprocess.run(
        [py, "app.py", "-m", f"x=range(0,{n})", "hydra.sweep.dir=multi"],
        cwd=d,
        check=True,
        capture_output=True,
    )
    total = time.perf_counter() - t0
    return total, (total - single) / (n - 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()
    n = args.runs
    from _machine import describe

    load0 = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="ablab-overhead-"))
    try:
        loop = plain_loop(n)
        ab1_total, ab1_warm = ablab_run(n, work, 1)
        ab2_total, ab2_warm = ablab_run(n, work, 2)
        hy_total, hy_per = hydra_multirun(n, work)
        cmd1_total, cmd1_warm = ablab_run(n, work, 1, command=True)
        cmd2_total, cmd2_warm = ablab_run(n, work, 2, command=True)
        hyc_total, hyc_per = hydra_multirun(n, work, command=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    loop_per = loop / n
    rows = [
        ("plain Python loop", loop, loop_per),
        ("ablab run -j 1", ab1_total, ab1_warm),
        ("ablab run -j 2", ab2_total, ab2_warm),
        ("Hydra multirun (basic launcher)", hy_total, hy_per),
    ]
    cmd_rows = [
        ("ablab run -j 1, command entry", cmd1_total, cmd1_warm),
        ("ablab run -j 2, command entry", cmd2_total, cmd2_warm),
        ("Hydra multirun running the script", hyc_total, hyc_per),
    ]
    lines = [
        "# Per-run overhead: ablab vs a plain loop vs Hydra multirun",
        "",
        f"{n} runs of an entry that returns at once, measured in one invocation of `benchmarks/overhead.py`.",
        "",
        f"Machine: {describe()}",
        "",
        f"1-minute load average at the start: {load0:.1f}, at the end: {os.getloadavg()[0]:.1f}.",
        "",
        "| runner | total wall (s) | per run, warm (ms) | per run vs ablab -j 1 |",
        "|---|---:|---:|---:|",
    ]
    for name, total, per in rows:
        lines.append(f"| {name} | {total:.2f} | {per * 1000:.3f} | {per / ab1_warm:.2f}x |")
    lines += [
        "",
        f"## An argparse script that returns at once ({n} runs)",
        "",
        'ablab: `entry = { command = "python script.py --x {x}" }`, the metric read from the output by',
        "pattern; Hydra: a `@hydra.main` app whose job runs the same `python script.py --x X` and parses",
        "the same line. Both start one Python process per run.",
        "",
        "| runner | total wall (s) | per run, warm (ms) | per run vs ablab -j 1 command |",
        "|---|---:|---:|---:|",
    ]
    for name, total, per in cmd_rows:
        lines.append(f"| {name} | {total:.2f} | {per * 1000:.3f} | {per / cmd1_warm:.2f}x |")
    lines += [
        "",
        "*per run, warm*: for ablab, (last run's end - first run's end) / (runs - 1), read from the store, so",
        "worker start-up (spawn + importing torch) is excluded; it includes claiming the run in SQLite,",
        "sending it to the worker, seeding, executing, measuring resources and recording the result in one",
        "transaction. For Hydra, (multirun time - one single-run time) / (runs - 1): Hydra's own start-up",
        "is excluded the same way. For the loop, total / runs.",
        "",
        f"ablab warm overhead: {ab1_warm * 1000:.2f} ms per run (target <= 15 ms); "
        f"Hydra multirun / ablab -j 1 = {hy_per / ab1_warm:.1f}x; "
        f"Hydra total / ablab -j 1 total = {hy_total / ab1_total:.1f}x.",
        "",
        f"Command entry: {cmd1_warm * 1000:.1f} ms per run with -j 1, "
        f"Hydra multirun of the same script / ablab -j 1 = {hyc_per / cmd1_warm:.1f}x per run, "
        f"{hyc_total / cmd1_total:.1f}x in total.",
    ]
    out = HERE / "results" / "overhead.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
