"""The engine and the store, in this process with an executor that answers at once: periodic
WAL checkpoints, and exit codes beside another driver."""

from __future__ import annotations

from ablab.execute.base import Event
from ablab.execute.engine import RunSummary, execute, prepare_study
from ablab.plan.designs_bridge import plan_for
from ablab.spec import parse_study
from ablab.store.db import Store


class InstantExecutor:
    """Every submitted run is done at once with score 1."""

    slots = 2

    def __init__(self) -> None:
        self.queue: list[str] = []

    def start(self) -> None:
        pass

    def free_slots(self) -> int:
        return self.slots - len(self.queue)

    def submit(self, task):
        self.queue.append(task["key"])

    def running(self):
        return list(self.queue)

    def poll(self, timeout):
        out = [
            Event(
                "result",
                k,
                outcome={
                    "key": k,
                    "status": "done",
                    "metrics": {"score": 1.0},
                    "series": [("loss", 0, float("nan"))],
                    "data": {},
                    "artifacts": {},
                    "resources": {},
                    "error": None,
                    "traceback": None,
                },
            )
            for k in self.queue
        ]
        self.queue = []
        return out

    def shutdown(self, kill=False):
        pass


def test_the_log_is_checkpointed_every_n_finished_runs(tmp_path, monkeypatch):
    import ablab.execute.engine as engine

    (tmp_path / "e.py").write_text("def f(config, run):\n    return {'score': 1.0}\n")
    (tmp_path / "study.toml").write_text("")
    spec = parse_study(
        {
            "name": "s",
            "entry": "e.py:f",
            "seeds": 5,
            "metrics": {"score": "max"},
            "baseline": {"h": 1},
            "ablations": {"b": {"h": 2}},
        },
        source=tmp_path / "study.toml",
    )
    calls = []
    monkeypatch.setattr(engine, "CHECKPOINT_EVERY", 4)
    with Store(tmp_path / ".ablab") as st:
        monkeypatch.setattr(st, "checkpoint", lambda mode="PASSIVE": calls.append(mode))
        study = prepare_study(spec, st)
        summary = execute(spec, plan_for(spec), st, study, InstantExecutor())
    assert summary.done == 10 and summary.exit_code == 0
    assert calls[:2] == ["PASSIVE", "PASSIVE"]  # after runs 4 and 8, then TRUNCATE on close


def test_exit_code_beside_another_driver():
    base = dict(study="s", revision="main", store=None, total=4, skipped=0)
    assert RunSummary(done=3, failed=0, elsewhere=1, **base).exit_code == 0
    assert RunSummary(done=2, failed=1, elsewhere=1, **base).exit_code == 1
    assert RunSummary(done=2, failed=0, elsewhere=1, **base).exit_code == 1  # one never ran
    assert RunSummary(done=2, failed=0, interrupted=True, signal=15, **base).exit_code == 143


def test_imported_revision_never_becomes_the_one_ablab_run_continues(tmp_path):
    """A revision imported from a bundle (recorded from another machine's study file) is newer
    than the local one, but `ablab run` on the local file keeps writing to its own (issue 14)."""
    from ablab.execute.engine import _latest_revision
    from ablab.spec.model import MetricSpec, StudySpec
    from ablab.store.db import Store

    study = tmp_path / "study.toml"
    spec = StudySpec(
        name="s", entry="e.py:f", seeds=(0,), metrics=(MetricSpec("m"),), baseline={"a": 1},
        variants={"baseline": {}}, source=study,
    )  # fmt: skip
    with Store(tmp_path / ".ablab") as st:
        env = st.environment_id({}, "h")
        assert _latest_revision(st, spec) == "main"
        st.create_study("s", "main", str(study), {}, {"digest": "x", "files": {}}, env)
        st.create_study("s", "theirs", "/elsewhere/study.toml", {}, {"digest": "y"}, env)
        assert _latest_revision(st, spec) == "main"
        other = StudySpec(**{**spec.__dict__, "source": tmp_path / "copy.toml"})
        assert _latest_revision(st, other) == "theirs"  # not recorded from here: the newest
