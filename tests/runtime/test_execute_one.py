"""One run executed in this process: seeding, bit-identical determinism, metric validation,
failures recorded with their traceback."""

from __future__ import annotations

import random
import sys

import numpy as np
import pytest
import torch

from ablab.runtime.execute_one import execute_task

METRICS = [{"name": "score", "direction": "max"}]


@pytest.fixture(autouse=True)
def _restore_torch_state():
    """execute_task switches torch to deterministic kernels and one thread; undo it for the
    tests that share this process."""
    det, threads, path = (
        torch.are_deterministic_algorithms_enabled(),
        torch.get_num_threads(),
        list(sys.path),
    )
    py, npy, tt = random.getstate(), np.random.get_state(), torch.get_rng_state()
    yield
    torch.use_deterministic_algorithms(det)
    torch.set_num_threads(threads)
    sys.path[:] = path
    random.setstate(py)
    np.random.set_state(npy)
    torch.set_rng_state(tt)


@pytest.fixture
def task(tmp_path, tools):
    tools.write_study(tmp_path)

    def make(seed=0, metrics=METRICS, entry="entry.py:train", **config):
        cfg = {**tools.BASELINE, **config}
        return {
            "key": f"k{seed}",
            "variant": "baseline",
            "seed": seed,
            "config": cfg,
            "entry": entry,
            "root": str(tmp_path),
            "run_dir": str(tmp_path / "runs" / f"k{seed}"),
            "metrics": metrics,
        }

    return make


def test_same_run_twice_is_bit_identical(task):
    a = execute_task(task(seed=0, steps=30, hidden=16))
    b = execute_task(task(seed=0, steps=30, hidden=16))
    assert a["status"] == b["status"] == "done", a["traceback"]
    assert a["metrics"] == b["metrics"]  # exact float equality, every metric
    assert a["series"] == b["series"] and len(a["series"]) == 30
    assert a["data"] == b["data"]
    sa = torch.load(a["artifacts"]["model"], weights_only=True)
    assert all(
        torch.equal(v, torch.load(b["artifacts"]["model"], weights_only=True)[k])
        for k, v in sa.items()
    )


def test_unseeded_global_generators_follow_the_run_seed(task):
    """The entry draws from random, numpy.random and torch without seeding them."""
    first = execute_task(task(seed=0))["metrics"]
    other = execute_task(task(seed=1))["metrics"]
    random.random(), np.random.rand(), torch.rand(3)  # disturb the global state between runs
    again = execute_task(task(seed=0))["metrics"]
    assert first == again
    for name in ("py", "np", "torch", "score"):
        assert first[name] != other[name], name
    assert first["py"] == random.Random(0).random()


def test_outcome_records_series_data_artifacts_resources(task, tmp_path):
    o = execute_task(task(seed=2))
    assert o["status"] == "done" and o["error"] is None and o["traceback"] is None
    assert set(o["metrics"]) == {"score", "py", "np", "torch"}
    assert [n for n, _, _ in o["series"]] == ["loss"] * 10
    kind, digest = o["data"]["x"]
    assert kind == "array" and len(digest) == 64
    assert o["artifacts"]["model"] == str(tmp_path / "runs" / "k2" / "model.pt")
    r = o["resources"]
    assert r["wall_seconds"] > 0 and r["cpu_seconds"] >= 0 and r["peak_rss_mb"] > 10
    assert r["threads"] == 1 and r["host"] and r["pid"] > 0 and r["peak_gpu_mb"] is None


def test_a_raising_run_fails_with_its_traceback(task):
    o = execute_task(task(mode="raise"))
    assert o["status"] == "failed" and o["metrics"] == {}
    assert o["error"] == "ValueError: boom in baseline"
    assert (
        "Traceback" in o["traceback"]
        and "entry.py" in o["traceback"]
        and "raise ValueError" in o["traceback"]
    )


def test_missing_and_nan_metrics_fail_clearly(task):
    o = execute_task(task(mode="nometric"))
    assert o["status"] == "failed"
    assert "did not return declared metric(s) score" in o["error"] and "['other']" in o["error"]
    o = execute_task(task(mode="nan"))
    assert o["status"] == "failed" and "non-finite metric(s): score=nan" in o["error"]


def test_reduced_metrics_come_from_the_logged_series(task):
    from ablab.analysis.derive import derive_metrics

    metrics = [*METRICS, {"name": "loss", "direction": "min", "reduce": "best"}]
    o = execute_task(task(metrics=metrics, steps=20))
    losses = [v for n, _, v in o["series"] if n == "loss"]
    # the worker keeps what the entry returned and the series; reports derive the rest (issue 16)
    assert "loss" not in o["metrics"]
    assert derive_metrics(metrics, o["metrics"], o["series"])["loss"] == min(losses)
    last = [*METRICS, {"name": "loss", "direction": "min", "reduce": "last"}]
    o = execute_task(task(metrics=last, steps=20))
    assert derive_metrics(last, o["metrics"], o["series"])["loss"] == losses[-1]
    metrics = [*METRICS, {"name": "acc", "direction": "max", "reduce": "last"}]
    o = execute_task(task(metrics=metrics))
    assert o["status"] == "failed" and "logged no 'acc' series" in o["error"]


def test_bad_entries_fail_with_a_clear_error(task):
    o = execute_task(task(entry="missing.py:train"))
    assert o["status"] == "failed" and "entry file 'missing.py' not found" in o["error"]
    o = execute_task(task(entry="entry.py:trian"))
    assert o["status"] == "failed" and "has no function 'trian'" in o["error"]


def test_module_entries_import_relative_to_the_root(task, tmp_path):
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "mod.py").write_text(
        "def fit(config, run):\n    return {'score': config['hidden'] + run.seed}\n"
    )
    o = execute_task(task(seed=1, entry="mypkg.mod:fit"))
    assert o["status"] == "done" and o["metrics"] == {"score": 5.0}
    o = execute_task(task(entry="mypkg.nope:fit"))
    assert o["status"] == "failed" and "cannot be imported" in o["error"]


def test_split_seed_zero_is_kept_not_replaced_by_the_seed(tmp_path):
    """A study crossing split seeds gives split_seed 0 to half its runs; it must not fall back to run.seed."""
    from ablab.runtime.execute_one import execute_task

    (tmp_path / "split_entry.py").write_text(
        "def train(config, run):\n    return {'split': float(run.split_seed), 'seed': float(run.seed)}\n"
    )
    task = {
        "key": "k",
        "variant": "baseline",
        "seed": 3,
        "split_seed": 0,
        "config": {},
        "attempt": 1,
        "entry": "split_entry.py:train",
        "root": str(tmp_path),
        "run_dir": str(tmp_path / "rd"),
        "metrics": [{"name": "split", "direction": "max", "reduce": "value"}],
        "threads": 1,
        "deterministic": True,
    }
    out = execute_task(task)
    assert out["status"] == "done", out["error"]
    assert out["metrics"]["split"] == 0.0 and out["metrics"]["seed"] == 3.0
    out = execute_task({**task, "split_seed": None})
    assert out["metrics"]["split"] == 3.0  # without crossed split seeds, split_seed is the seed


def test_log_refuses_steps_the_store_cannot_hold_and_keeps_non_finite_values(tmp_path):
    from ablab.errors import MetricError
    from ablab.runtime.run import Run

    run = Run(key="k", variant="v", seed=0, config={}, run_dir=tmp_path)
    run.log(step=2**63 - 1, loss=float("nan"))
    run.log(step=np.int64(3), loss=float("inf"))
    for step in (2**70, -(2**63) - 1, 1.5, float("nan"), "3", True):
        with pytest.raises(MetricError):
            run.log(step=step, loss=1.0)
    with pytest.raises(MetricError, match="too large"):
        run.log(step=0, loss=10**400)
    assert run.series[1] == ("loss", 3, float("inf")) and len(run.series) == 2
