"""`ablab run` in a real terminal (a pseudo-terminal): the rich progress bar renders and the run succeeds."""

import os
import pty
import subprocess
import sys
import textwrap
from pathlib import Path

ABLAB = Path(sys.executable).with_name("ablab")


def test_progress_bar_in_a_terminal(tmp_path):
    (tmp_path / "entry.py").write_text(
        "def train(config, run):\n    return {'score': float(config['x'])}\n"
    )
    (tmp_path / "study.toml").write_text(
        textwrap.dedent("""
        name = "tty"
        entry = "entry.py:train"
        seeds = 2
        [metrics]
        score = "max"
        [baseline]
        x = 1
    """)
    )
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "120", "TERM": "xterm"}
    proc = subprocess.Popen(
        [str(ABLAB), "run", str(tmp_path / "study.toml"), "-j", "1"],
        stdout=slave,
        stderr=slave,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    rc = proc.wait(timeout=120)
    os.close(master)
    out = b"".join(chunks).decode(errors="replace")
    assert rc == 0, out
    assert "2/2" in out and "2 done" in out  # the bar's counts
    assert "Traceback" not in out
