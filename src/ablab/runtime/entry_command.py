"""Command entries: run any program, unmodified, once per run.

``entry = { command = "python train.py --lr {lr} --seed {seed} --out {run_dir}" }``. The command
was split into words when the study was loaded (``shlex``, no shell); here each word's
placeholders are filled in (a value never becomes more than one word, so a configuration value
cannot inject options or shell syntax). A leading ``python`` is the interpreter ablab runs
under. The program runs in the study's folder, in its own session (process group), with
``ABLAB_SEED``, ``ABLAB_RUN_DIR``, ``ABLAB_CONFIG`` (the resolved configuration as JSON),
``ABLAB_VARIANT``, ``ABLAB_KEY`` and ``PYTHONHASHSEED`` set, and ``OMP/MKL/OPENBLAS_NUM_THREADS``
set to ``[run] threads`` unless already set; its output goes to ``stdout.log`` and
``stderr.log`` in the run folder.

Metrics, in order of precedence: a metric's ``pattern`` (a regex on the program's stdout, else
its stderr: the last match is the value, all matches the series), what the program reported
with ``ablab.client.result`` / ``ablab.client.log``, and ``{run_dir}/metrics.json``.

The whole process group is killed on timeout, on Ctrl-C (KeyboardInterrupt) and when the local
executor stops the worker (SIGTERM, handled while the program runs); the program's direct
process also gets SIGKILL from the kernel if the worker dies any other way.

Written by hand rather than with a process library: what is needed is ``subprocess`` plus the
Linux parent-death signal, and none of the peers (submitit, Guild) exposes that as a library.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ablab.errors import EntryError, MetricError

CLIENT_FILE = "ablab_client.jsonl"  # what ablab.client appends to (see ablab/client.py)
_FIELD_RE = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
_TAIL_LINES = 15
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_PR_SET_PDEATHSIG, _PR_GET_PDEATHSIG = 1, 2


def command_entry(
    entry: dict[str, Any],
    root: Path,
    metrics: list[dict[str, Any]],
    timeout: float | None,
    threads: int = 1,
) -> Callable[[dict[str, Any], Any], dict[str, float]]:
    """The ``(config, run) -> metrics`` callable of a command entry (as carried by a task)."""

    def call(config: dict[str, Any], run: Any) -> dict[str, float]:
        return run_command(entry, root, metrics, timeout, config, run, threads)

    return call


def build_argv(entry: dict[str, Any], config: dict[str, Any], run: Any) -> list[str]:
    """The program's argument vector for one run."""
    from ablab.spec.model import flatten

    flat = flatten(config)
    special = {"seed": run.seed, "run_dir": str(run.run_dir), "variant": run.variant}

    def value(name: str) -> str:
        if name in special:
            return str(special[name])
        if name not in flat:
            raise EntryError(f"entry.command: {{{name}}} is not a key of this run's configuration")
        return fmt_value(flat[name])

    def fill(tok: str) -> str:
        return _FIELD_RE.sub(
            lambda m: {"{{": "{", "}}": "}"}.get(m.group(0)) or value(m.group(1)), tok
        )

    argv = [fill(t) for t in entry["tokens"]]
    if argv and argv[0] in ("python", "python3"):
        argv[0] = sys.executable
    if entry.get("args") == "flags":
        for key, v in flat.items():
            flag = "--" + key.replace("_", "-")
            if v is True:
                argv.append(flag)
            elif v is False or v is None or v == {}:
                continue
            elif isinstance(v, list):
                argv += [flag, *(fmt_value(x) for x in v)]
            else:
                argv += [flag, fmt_value(v)]
    return argv


def fmt_value(v: Any) -> str:
    """A configuration value as one command-line word: numbers as Python writes them (shortest
    round trip), booleans as true/false, lists and tables as JSON."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float, str)):
        return str(v)
    return json.dumps(v, sort_keys=True)


def run_command(
    entry: dict[str, Any],
    root: Path,
    metrics: list[dict[str, Any]],
    timeout: float | None,
    config: dict[str, Any],
    run: Any,
    threads: int = 1,
) -> dict[str, float]:
    argv = build_argv(entry, config, run)
    run_dir = Path(run.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("metrics.json", CLIENT_FILE):  # a retry must not read its predecessor's numbers
        (run_dir / stale).unlink(missing_ok=True)
    (run_dir / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    env = dict(os.environ)
    for var in _THREAD_VARS:  # [run] threads, unless the user set them: results independent of -j
        env.setdefault(var, str(threads))
    env.update(
        ABLAB_SEED=str(run.seed),
        ABLAB_RUN_DIR=str(run_dir),
        ABLAB_CONFIG=str(run_dir / "config.json"),
        ABLAB_VARIANT=str(run.variant),
        ABLAB_KEY=str(run.key),
        PYTHONHASHSEED=str(run.seed % 2**32),
    )
    out_path, err_path = run_dir / "stdout.log", run_dir / "stderr.log"
    # the worker's own limit comes a little before the executor's, so the group is killed here
    limit = None if not timeout else max(0.1, timeout - min(1.0, 0.05 * timeout))
    _libc()  # loaded before the fork: the child only calls it
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        try:
            proc = subprocess.Popen(
                argv,
                cwd=root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                preexec_fn=_child_setup,
            )
        except OSError as e:
            raise EntryError(
                f"entry.command: cannot start {argv[0]!r}: {e.strerror or e}",
                hint="check the program name (relative paths are from the study's folder)",
            ) from None
        with _kill_group_on_term(proc.pid):
            try:
                rc = _wait(proc, limit)
            except BaseException:  # Ctrl-C in this process, or the timeout below
                _killpg(proc.pid)
                proc.wait()
                raise
            finally:
                _killpg(proc.pid)  # whatever the program left behind in its group
            if rc is None:
                proc.wait()  # reap the killed program
    if rc is None:
        raise EntryError(
            f"timed out after {timeout:g} s: the command's process group was killed"
            + _tail_note(out_path, err_path)
        )
    if rc != 0:
        how = f"was killed by {_signame(-rc)}" if rc < 0 else f"exited with code {rc}"
        log = "stderr.log" if _tail(err_path, 1) else "stdout.log"
        tail = _tail(run_dir / log)
        last = tail[-1] if tail else "(no output)"
        raise EntryError(
            f"the command {how}: {last}\n--- last lines of {log} ---\n" + "\n".join(tail)
        )
    return collect_metrics(run_dir, metrics, run, out_path, err_path)


def collect_metrics(
    run_dir: Path, metrics: list[dict[str, Any]], run: Any, out_path: Path, err_path: Path
) -> dict[str, float]:
    """The run's metrics from patterns, ablab.client and metrics.json (see the module doc)."""
    found: dict[str, float] = {}
    mfile = run_dir / "metrics.json"
    if mfile.is_file():
        found.update(_read_metrics_json(mfile))
    results, points = _read_client(run_dir / CLIENT_FILE)
    found.update(results)
    for step, values in points:
        run.log(step=step, **values)
    logged = {n for n, _, _ in run.series}
    texts: list[str] | None = None
    for m in metrics:
        pattern = m.get("pattern")
        if not pattern:
            continue
        if texts is None:
            texts = [_read(out_path), _read(err_path)]
        values = _matches(m["name"], pattern, texts)
        if values:
            found[m["name"]] = values[-1]
            if m["name"] not in logged and (len(values) > 1 or m.get("reduce") in ("last", "best")):
                for i, v in enumerate(values):
                    run.log(step=i, **{m["name"]: v})
    for m in metrics:
        name, reduce = m["name"], m.get("reduce", "value")
        if name in found or reduce == "post" or (reduce != "value" and name in logged):
            continue
        if reduce != "value" and m.get("pattern") is None and name not in logged:
            continue  # reported below by the engine's reduce step, with its own message
        if m.get("pattern"):
            what = f"pattern {m['pattern']!r} matched nothing in stdout.log or stderr.log"
        else:
            what = (
                "the program neither wrote it to {run_dir}/metrics.json nor reported it with "
                "ablab.client.result(...), and it declares no pattern"
            )
        raise MetricError(f"metric '{name}' not found: {what}" + _tail_note(out_path, err_path))
    return found


def _matches(name: str, pattern: str, texts: list[str]) -> list[float]:
    rx = re.compile(pattern, re.MULTILINE)
    for text in texts:  # stdout first; stderr only when stdout has no match
        hits = [m.group(1) if rx.groups else m.group(0) for m in rx.finditer(text)]
        if hits:
            out = []
            for h in hits:
                try:
                    out.append(float(h))
                except (TypeError, ValueError):
                    raise MetricError(
                        f"metric '{name}': pattern {pattern!r} matched {h!r}, which is not a number",
                        hint="capture only the number in the pattern's group, e.g. ([-+0-9.eE]+)",
                    ) from None
            return out
    return []


def _read_metrics_json(path: Path) -> dict[str, float]:
    try:
        data = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, ValueError) as e:
        raise MetricError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise MetricError(
            f"{path}: expected an object of metric -> number, found {type(data).__name__}"
        )
    return {str(k): v for k, v in data.items() if _is_number(v)}


def _read_client(path: Path) -> tuple[dict[str, float], list[tuple[int | None, dict[str, float]]]]:
    """What ``ablab.client`` wrote: (results, logged points). Malformed lines are an error."""
    results: dict[str, float] = {}
    points: list[tuple[int | None, dict[str, float]]] = []
    if not path.is_file():
        return results, points
    for i, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            kind, values = rec["kind"], rec["values"]
            step = rec.get("step")
            ok = kind in ("log", "result") and isinstance(values, dict)
            ok = ok and all(_is_number(v) for v in values.values())
            ok = ok and (step is None or (isinstance(step, int) and not isinstance(step, bool)))
        except (ValueError, KeyError, TypeError, AttributeError):
            ok = False
        if not ok:
            raise MetricError(
                f"{path.name} line {i}: not a record written by ablab.client: {line[:200]!r}"
            )
        if kind == "result":
            results.update(values)
        else:
            points.append((step, values))
    return results, points


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _wait(proc: subprocess.Popen, limit: float | None) -> int | None:
    """The exit code, or None when ``limit`` seconds passed (the caller kills the group)."""
    try:
        return proc.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        return None


_LIBC: Any = None


def _libc() -> Any:
    global _LIBC
    if _LIBC is None:
        try:
            import ctypes

            _LIBC = ctypes.CDLL("libc.so.6", use_errno=True)
        except OSError:
            _LIBC = False
    return _LIBC


def _child_setup() -> None:
    """In the program's process (after setsid): SIGKILL it if the worker that started it dies."""
    libc = _LIBC
    if libc:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@contextlib.contextmanager
def _kill_group_on_term(pgid: int) -> Iterator[None]:
    """While the program runs, a SIGTERM to this worker (the local executor stopping it, or the
    driver dying: the parent-death signal is switched to SIGTERM meanwhile) kills the program's
    whole group before the worker exits."""
    libc = _libc()
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum: int, frame: Any) -> None:
        _killpg(pgid)
        os._exit(128 + signum)

    old = signal.signal(signal.SIGTERM, on_term)
    switched = False
    if libc:
        import ctypes

        cur = ctypes.c_int(0)
        if libc.prctl(_PR_GET_PDEATHSIG, ctypes.byref(cur)) == 0 and cur.value == signal.SIGKILL:
            switched = libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM) == 0
    try:
        yield
    finally:
        if switched:
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        signal.signal(signal.SIGTERM, old)


def _killpg(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _signame(n: int) -> str:
    try:
        return signal.Signals(n).name
    except ValueError:
        return f"signal {n}"


def _read(path: Path, limit: int = 64 * 2**20) -> str:
    """A log's text (its last ``limit`` bytes for huge logs)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _tail(path: Path, n: int = _TAIL_LINES) -> list[str]:
    lines = [ln.rstrip() for ln in _read(path, 64 * 1024).splitlines() if ln.strip()]
    return lines[-n:]


def _tail_note(out_path: Path, err_path: Path) -> str:
    """'; last output line: ...' and, on the following lines, the tails of both logs."""
    last = (_tail(out_path, 1) or _tail(err_path, 1) or ["(the program wrote no output)"])[0]
    parts = [f"; last output line: {last[:300]}"]
    for label, p in (("stdout.log", out_path), ("stderr.log", err_path)):
        t = _tail(p, 8)
        if t:
            parts.append(f"--- last lines of {label} ---\n" + "\n".join(t))
    return "\n".join(parts)
