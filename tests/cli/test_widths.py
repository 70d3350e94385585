"""Issue 16 through the real CLI: piped `ablab runs`/`status`/`report` are not cut at 80
columns, `report --wide` keeps every column, and variants whose runs all failed stay in the
Markdown report."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ABLAB = Path(sys.executable).with_name("ablab")


def piped(*args, columns: int = 80) -> subprocess.CompletedProcess:
    """The console script with its stdout piped (not a terminal) in an 80-column setting."""
    env = {k: v for k, v in os.environ.items() if k != "ABLAB_STORE"}
    env["COLUMNS"] = str(columns)
    return subprocess.run(
        [str(ABLAB), *map(str, args)], capture_output=True, text=True, env=env, timeout=240
    )


def test_piped_runs_and_status_are_not_cut_at_80_columns(failure_study):
    res = piped("runs", failure_study["path"])
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert "…" not in res.stdout
    for variant, run in failure_study["runs"].items():
        # each run is one line holding its whole key and the start of its error
        line = next((ln for ln in lines if run["key"] in ln), None)
        assert line is not None, (variant, res.stdout)
        if run["error"]:
            assert run["error"][:40].split("\n")[0] in line, (variant, line)
    assert max(len(ln) for ln in lines) > 80  # it did use the room
    res = piped("status", failure_study["path"])
    assert res.returncode == 0 and "interrupted" in res.stdout and "…" not in res.stdout


def test_report_table_piped_and_wide(failure_study):
    res = piped("report", failure_study["path"])
    assert res.returncode == 0, res.stderr
    header = next(ln for ln in res.stdout.splitlines() if ln.startswith("┃"))
    for col in ("variant", "score", "95% CI", "Δ (%)", "Δ 95% CI", "p (Holm)", "verdict"):
        assert col in header, header
    assert "1/1 failed" in res.stdout and "no result" in res.stdout and "…" not in res.stdout
    wide = piped("report", failure_study["path"], "--wide")
    assert wide.returncode == 0 and "Not shown at this width" not in wide.stdout


def test_all_failed_variants_stay_in_the_markdown_report(failure_study):
    res = piped("report", failure_study["path"], "--format", "md")
    assert res.returncode == 0, res.stderr
    md = res.stdout
    summary = md[: md.index("\n## ")]
    for variant in ("raise", "exit", "sigkill", "hang", "nometric", "nan"):
        assert f"{variant} 1/1 failed (no result)" in summary, variant
        assert f"| {variant} | 0 (1/1 failed) |" in md, variant
    assert "baseline (baseline)" not in md


def test_report_in_an_80_column_terminal_fits(failure_study, monkeypatch, capsys):
    """A real terminal of 80 columns: the table fits, no header is cut to 'verdi…'."""
    import io

    from rich.cells import cell_len
    from rich.console import Console

    import ablab.cli.common as common
    import ablab.cli.reportcmd as reportcmd
    from ablab.cli.main import main

    buf = io.StringIO()
    term = Console(file=buf, width=80, force_terminal=True, color_system=None)
    monkeypatch.setattr(common, "console", term)
    monkeypatch.setattr(reportcmd, "console", term)
    assert main(["report", str(failure_study["path"])]) == 0
    text = buf.getvalue()
    lines = text.splitlines()
    assert lines and max(cell_len(ln) for ln in lines) <= 80 and "…" not in text
    header = next(ln for ln in lines if ln.startswith("┃"))
    for col in ("variant", "score", "Δ (%)", "p (Holm)", "verdict"):
        assert col in header, header
    wide = io.StringIO()
    monkeypatch.setattr(term, "file", wide)
    assert main(["report", str(failure_study["path"]), "--wide"]) == 0
    assert "Not shown at this width" not in capsys.readouterr().out + wide.getvalue()


def test_runs_table_prints_counts_with_separators():
    from ablab.cli.common import fmt_num

    assert fmt_num(205_000.0) == "205,000" and fmt_num(1_230_400) == "1,230,400"
    assert fmt_num(12345.678) == "12,346" and fmt_num(0.912345) == "0.9123"
    assert fmt_num(None) == "-" and fmt_num(float("nan")) == "-"
