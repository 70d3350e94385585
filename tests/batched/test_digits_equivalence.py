"""examples/digits/train_batched.py against examples/digits/train.py run solo, seed by seed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from ablab.batched import BatchedError
from ablab.runtime.run import Run
from ablab.runtime.seeding import seed_everything

DIGITS = Path(__file__).resolve().parents[2] / "examples" / "digits"
BASE = dict(
    hidden=32,
    dropout=0.1,
    augment=True,
    label_smoothing=0.1,
    normalize=True,
    lr=0.002,
    weight_decay=1e-4,
    batch_size=64,
    epochs=2,
)


def _load(name: str):
    key = f"_test_batched_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, DIGITS / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[key] = mod
        spec.loader.exec_module(mod)
    return sys.modules[key]


def _run(tmp_path: Path, tag: str, seed: int, cfg: dict) -> Run:
    return Run(
        key=f"{tag}{seed}",
        variant="v",
        seed=seed,
        config=cfg,
        run_dir=tmp_path / f"{tag}{seed}",
        split_seed=seed,
    )


def test_each_batched_model_equals_its_solo_run(tmp_path, report_diff):
    cfgs = [
        dict(BASE),
        dict(BASE, lr=0.005, weight_decay=1e-3),
        dict(BASE, dropout=0.0, augment=False),
        dict(BASE, label_smoothing=0.0, weight_decay=0.0, normalize=False, dropout=0.3),
    ]
    seeds = [0, 1, 2, 0]
    train = _load("train").train
    solo = []
    for cfg, s in zip(cfgs, seeds, strict=True):
        seed_everything(s, threads=1)  # what the runtime does before calling a solo entry
        r = _run(tmp_path, f"solo{len(solo)}-", s, cfg)
        solo.append((train(dict(cfg), r), r))
    seed_everything(123, threads=1)  # the batched entry must not depend on the global stream
    runs = [
        _run(tmp_path, f"batch{i}-", s, c) for i, (c, s) in enumerate(zip(cfgs, seeds, strict=True))
    ]
    out = _load("train_batched").train_batched([dict(c) for c in cfgs], runs)
    metric_diff = series_diff = param_diff = 0.0
    for (m, r), mb, rb in zip(solo, out, runs, strict=True):
        assert set(mb) == set(m)
        metric_diff = max(metric_diff, *(abs(m[k] - mb[k]) for k in ("accuracy", "test_loss")))
        assert [s[:2] for s in r.series] == [s[:2] for s in rb.series]
        series_diff = max(
            series_diff, *(abs(a[2] - b[2]) for a, b in zip(r.series, rb.series, strict=True))
        )
        assert r.data == rb.data
        sa = torch.load(r.artifacts["model"], weights_only=True)
        sb = torch.load(rb.artifacts["model"], weights_only=True)
        assert sa.keys() == sb.keys()
        param_diff = max(param_diff, *((sa[k] - sb[k]).abs().max().item() for k in sa))
    report_diff("digits train_batched vs train.py: final metrics", metric_diff)
    report_diff("digits train_batched vs train.py: logged series", series_diff)
    report_diff("digits train_batched vs train.py: saved parameters", param_diff)
    assert metric_diff < 1e-5 and series_diff < 1e-5 and param_diff < 1e-5
    # runs with equal seeds but different configs really did train differently
    assert out[0]["test_loss"] != out[3]["test_loss"]


def test_fused_adam_matches_solo_runs_up_to_rounding(tmp_path, report_diff):
    """``fused_adam = true``: torch's fused Adam kernel instead of the default path's operations;
    the models then match train.py's (default Adam) only up to float rounding."""
    cfgs = [dict(BASE), dict(BASE, lr=0.005, weight_decay=1e-3)]
    seeds = [0, 1]
    train = _load("train").train
    solo = []
    for i, (cfg, s) in enumerate(zip(cfgs, seeds, strict=True)):
        seed_everything(s, threads=1)
        r = _run(tmp_path, f"solo{i}-", s, cfg)
        solo.append((train(dict(cfg), r), r))
    seed_everything(0, threads=1)
    runs = [
        _run(tmp_path, f"fused{i}-", s, c) for i, (c, s) in enumerate(zip(cfgs, seeds, strict=True))
    ]
    out = _load("train_batched").train_batched([dict(c, fused_adam=True) for c in cfgs], runs)
    metric_diff = param_diff = 0.0
    for (m, r), mb, rb in zip(solo, out, runs, strict=True):
        metric_diff = max(metric_diff, *(abs(m[k] - mb[k]) for k in ("accuracy", "test_loss")))
        sa = torch.load(r.artifacts["model"], weights_only=True)
        sb = torch.load(rb.artifacts["model"], weights_only=True)
        param_diff = max(param_diff, *((sa[k] - sb[k]).abs().max().item() for k in sa))
    report_diff("digits train_batched (fused_adam) vs train.py: final metrics", metric_diff)
    report_diff("digits train_batched (fused_adam) vs train.py: saved parameters", param_diff)
    assert 0.0 < param_diff < 1e-5 and metric_diff < 1e-5


def test_batched_entry_rejects_bad_batches(tmp_path):
    tb = _load("train_batched").train_batched
    with pytest.raises(BatchedError, match="2 configs but 1 runs"):
        tb([dict(BASE), dict(BASE)], [_run(tmp_path, "x", 0, BASE)])
    with pytest.raises(BatchedError, match="'hidden' must be the same"):
        tb(
            [dict(BASE), dict(BASE, hidden=16)],
            [_run(tmp_path, "x", 0, BASE), _run(tmp_path, "y", 1, BASE)],
        )
    with pytest.raises(BatchedError, match=r"lr\[1\] must be a number"):
        tb(
            [dict(BASE), dict(BASE, lr="fast")],
            [_run(tmp_path, "x", 0, BASE), _run(tmp_path, "y", 1, BASE)],
        )


def test_device_key_cpu_is_the_default(tmp_path, monkeypatch):
    """``device = "cpu"`` in the configs is today's path: the same metrics, series and weights
    as configs without the key; a device that this machine lacks is a BatchedError, as are
    configs of one batch that name different devices."""
    cfgs = [dict(BASE, epochs=1), dict(BASE, epochs=1, lr=0.005, dropout=0.3, augment=False)]
    tb = _load("train_batched").train_batched
    out = {}
    for tag, extra in (("none", {}), ("cpu", {"device": "cpu"})):
        seed_everything(0, threads=1)
        runs = [
            _run(tmp_path, f"{tag}{i}-", s, c)
            for i, (c, s) in enumerate(zip(cfgs, [0, 1], strict=True))
        ]
        metrics = tb([dict(c, **extra) for c in cfgs], runs)
        out[tag] = [
            (
                {k: v for k, v in m.items() if k != "train_seconds"},
                r.series,
                torch.load(r.artifacts["model"], weights_only=True),
            )
            for m, r in zip(metrics, runs, strict=True)
        ]
    for (ma, sa, wa), (mb, sb, wb) in zip(out["none"], out["cpu"], strict=True):
        assert ma == mb and sa == sb and all(torch.equal(wa[k], wb[k]) for k in wa)
    runs = [_run(tmp_path, "x", 0, BASE), _run(tmp_path, "y", 1, BASE)]
    with pytest.raises(BatchedError, match="'device' must be the same"):
        tb([dict(BASE, device="cpu"), dict(BASE, device="cuda")], runs)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(BatchedError, match="CUDA is not available"):
        tb([dict(BASE, device="cuda"), dict(BASE, device="cuda")], runs)
