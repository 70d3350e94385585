"""The dashboard's HTML: whole pages and the live fragments the page script refreshes.

Every user-controlled string goes through the report's ``esc`` (HTML escaping) and the report's
own builders (tables, plots, the full report); no inline script or event handler is emitted,
so the page works under a CSP with ``script-src 'self'``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from typing import Any

from ablab.report.html_parts import esc, mapping_html
from ablab.serve.catalog import STATUSES, Loaded

ASSET_VERSION = "1"


def page(title: str, body: str, *, crumbs: list[tuple[str, str]] | None = None) -> str:
    nav = " / ".join(
        f'<a href="{esc(href)}">{esc(label)}</a>' if href else esc(label)
        for label, href in [("ablab", "/"), *(crumbs or [])]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)} · ablab</title>"
        f'<link rel="stylesheet" href="/static/app.css?v={ASSET_VERSION}">'
        f'<script src="/static/app.js?v={ASSET_VERSION}" defer></script></head><body>'
        f'<header><nav aria-label="breadcrumb">{nav}</nav><h1>{esc(title)}</h1></header>'
        f"<main>{body}</main></body></html>\n"
    )


def live(region: str, src: str, inner: str, every_ms: int = 1000) -> str:
    return (
        f'<section id="{esc(region)}" data-live="{esc(src)}" data-every="{every_ms}" '
        f'aria-live="polite">{inner}</section>'
    )


def _counts_cells(c: Mapping[str, int]) -> str:
    return "".join(f'<td class="num st-{s}">{int(c.get(s, 0))}</td>' for s in STATUSES)


def studies_fragment(studies: list[dict[str, Any]]) -> str:
    if not studies:
        return '<p class="muted">No studies in these stores yet.</p>'
    rows = []
    for s in studies:
        if "error" in s:
            rows.append(
                f'<tr><td colspan="9" class="missing">{esc(s["store"])}: {esc(s["error"])}</td></tr>'
            )
            continue
        verdicts = ", ".join(f"{esc(k)} {int(v)}" for k, v in sorted(s.get("verdicts", {}).items()))
        rows.append(
            f'<tr><td><a id="study-{esc(s["id"])}" href="/s/{esc(s["id"])}">{esc(s["name"])}</a>'
            f"</td><td>{esc(s['revision'])}</td>{_counts_cells(s['counts'])}"
            f"<td>{verdicts or '<span class=muted>—</span>'}</td>"
            f'<td class="muted">{esc(s["store"])}</td></tr>'
        )
    head = "".join(
        f"<th>{h}</th>" for h in ("study", "revision", *STATUSES, "primary verdicts", "store")
    )
    return (
        f'<table class="sortable" id="studies"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def compare_form(studies: list[dict[str, Any]]) -> str:
    opts = "".join(
        f'<option value="{esc(s["id"])}">{esc(s["name"])} @ {esc(s["revision"])}</option>'
        for s in studies
        if "error" not in s
    )
    if not opts:
        return ""
    return (
        '<h2>Compare</h2><form method="get" action="/compare" class="compare">'
        f'<label>A <select name="a">{opts}</select></label> '
        f'<label>B <select name="b">{opts}</select></label> '
        '<button type="submit">Compare</button></form>'
    )


def progress_fragment(loaded: Loaded) -> str:
    c = loaded.counts
    total = max(sum(c.values()), 1)
    finished = c["done"] + c["failed"]
    res = loaded.results
    metrics = [m.name for m in loaded.spec.metrics]
    cards = "".join(
        f'<div class="card st-{s}"><b id="count-{s}">{int(c[s])}</b>{s}</div>' for s in STATUSES
    )
    rows = []
    for r in res.runs.to_dict("records"):
        vals = "".join(f'<td class="num">{_num(r.get(m))}</td>' for m in metrics)
        rows.append(
            f'<tr><td><a id="run-{esc(r["key"])}" href="/r/{esc(loaded.sid)}/{esc(r["key"])}">'
            f"<code>{esc(str(r['key'])[:8])}</code></a></td><td>{esc(r['variant'])}</td>"
            f'<td class="num">{esc(r["seed"])}</td><td class="st-{esc(r["status"])}">'
            f"{esc(r['status'])}</td>{vals}<td class=num>{_num(r.get('wall_seconds'), 1)}</td></tr>"
        )
    head = "".join(
        f"<th>{esc(h)}</th>" for h in ("run", "variant", "seed", "status", *metrics, "wall s")
    )
    failed = [r for r in res.runs.to_dict("records") if r["status"] == "failed"]
    failures = ""
    if failed:
        items = "".join(
            f'<li><a href="/r/{esc(loaded.sid)}/{esc(r["key"])}">{esc(r["variant"])} seed '
            f"{esc(r['seed'])}</a>: <code>{esc(_short(r.get('error')))}</code></li>"
            for r in failed
        )
        failures = f'<h2>Failed runs</h2><ul class="failures">{items}</ul>'
    return (
        f'<div class="cards">{cards}</div>'
        f'<progress max="{total}" value="{finished}" aria-label="runs finished">'
        f"{finished}/{total}</progress> <span class=muted>{finished} of {total} runs finished"
        f"</span>{failures}<h2>Runs</h2>"
        f'<table class="sortable" id="runs"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def analysis_fragment(loaded: Loaded) -> str:
    """The report's own sections (tables with intervals and verdicts, forest plot, per-seed
    strips, learning curves, factorial effects, checklist, provenance) for this study."""
    if loaded.analysis is None:
        return '<p class="muted">No finished runs yet: the analysis appears with the first.</p>'
    if "error" in loaded.analysis:
        return f'<p class="muted">No analysis yet: {esc(loaded.analysis["error"])}</p>'
    from ablab.report.html import to_html

    res = loaded.results
    full = to_html(
        loaded.analysis,
        runs=res.runs,
        series=res.series,
        provenance=res.provenance,
        verifications=loaded.verifications,
    )
    start, end = full.find("<main>"), full.rfind("</main>")
    return full[start + len("<main>") : end] if start >= 0 and end > start else ""


def study_page(loaded: Loaded) -> str:
    s = loaded.study
    sid = loaded.sid
    meta = (
        f'<p class="muted">revision <b>{esc(s["revision"])}</b> · store '
        f"<code>{esc(loaded.store_dir)}</code> · created {esc(_iso(s.get('created_at')))} · "
        f'<a href="/s/{esc(sid)}/report">full report</a> · '
        f'<a href="/api/studies/{esc(sid)}/analysis">analysis JSON</a></p>'
    )
    body = (
        meta
        + live("progress", f"/s/{sid}/progress", progress_fragment(loaded), 1000)
        + "<h2>Analysis</h2>"
        + live("analysis", f"/s/{sid}/analysis", analysis_fragment(loaded), 2000)
    )
    return page(f"{s['name']} @ {s['revision']}", body, crumbs=[(s["name"], "")])


def run_page(loaded: Loaded, run: dict[str, Any]) -> str:
    sid = loaded.sid
    metrics = run.get("metrics") or {}
    parts = [
        '<table class="kv">'
        + "".join(
            f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>"
            for k, v in (
                ("key", run["key"]),
                ("variant", run["variant"]),
                ("seed", run["seed"]),
                ("status", run["status"]),
                ("attempts", run.get("attempts")),
                ("started", _iso(run.get("started_at"))),
                ("wall seconds", _num(run.get("wall_seconds"), 2)),
                ("host", run.get("host")),
            )
        )
        + "</table>"
    ]
    if run.get("error"):
        parts.append(f"<h2>Error</h2><pre>{esc(run['error'])}</pre>")
        if run.get("traceback"):
            parts.append(
                f"<details><summary>traceback</summary><pre>{esc(run['traceback'])}</pre></details>"
            )
    parts.append("<h2>Configuration</h2>" + mapping_html(run.get("config") or {}))
    parts.append(
        "<h2>Metrics</h2>"
        + (mapping_html({k: _num(v) for k, v in metrics.items()}) if metrics else "<p>none</p>")
    )
    series: dict[str, list[tuple[int, float]]] = {}
    for name, step, value in run.get("series") or []:
        series.setdefault(name, []).append((step, value))
    if series:
        parts.append(
            '<h2>Logged series</h2><div class="figs">'
            + "".join(f"<figure>{sparkline(n, pts)}</figure>" for n, pts in series.items())
            + "</div>"
        )
    logs = run.get("logs") or {}
    parts.append("<h2>Output</h2>")
    if logs:
        for name, text in logs.items():
            parts.append(f"<h3>{esc(name)}</h3><pre class=log>{esc(text) or '(empty)'}</pre>")
    else:
        parts.append('<p class="muted">No captured output for this run.</p>')
    if run.get("data"):
        parts.append("<h2>Data</h2>" + mapping_html({k: list(v) for k, v in run["data"].items()}))
    if run.get("environment"):
        parts.append(
            "<h2>Provenance</h2><details><summary>environment</summary>"
            + mapping_html(run["environment"])
            + "</details>"
        )
    ver = [v for v in loaded.verifications if v.get("key") == run["key"]]
    if ver:
        parts.append(
            "<h2>Verifications</h2><ul>"
            + "".join(
                f"<li>{esc(v['kind'])}: {esc(v['verdict'])} ({esc(_iso(v.get('created_at')))})</li>"
                for v in ver
            )
            + "</ul>"
        )
    title = f"{run['variant']} seed {run['seed']}"
    s = loaded.study
    return page(title, "".join(parts), crumbs=[(s["name"], f"/s/{sid}"), (str(run["key"])[:8], "")])


def compare_page(a: Loaded, b: Loaded) -> str:
    from ablab.spec.model import flatten

    def code(x: Loaded) -> str:
        fp = x.study.get("fingerprint") or {}
        return str(fp.get("digest") or x.study.get("code_digest") or "")[:16]

    rows = [
        ("study", a.study["name"], b.study["name"]),
        ("revision", a.study["revision"], b.study["revision"]),
        ("code", code(a), code(b)),
        ("runs done", a.counts["done"], b.counts["done"]),
    ]
    head = (
        '<table class="kv"><thead><tr><th></th><th>A</th><th>B</th></tr></thead><tbody>'
        + "".join(
            f"<tr><th>{esc(k)}</th><td>{esc(x)}</td><td{' class=changed' if x != y else ''}>"
            f"{esc(y)}</td></tr>"
            for k, x, y in rows
        )
        + "</tbody></table>"
    )
    files_a = (a.study.get("fingerprint") or {}).get("files") or {}
    files_b = (b.study.get("fingerprint") or {}).get("files") or {}
    changed = sorted(f for f in set(files_a) | set(files_b) if files_a.get(f) != files_b.get(f))
    code_html = (
        "<ul>" + "".join(f"<li><code>{esc(f)}</code></li>" for f in changed) + "</ul>"
        if changed
        else '<p class="muted">No file differs (or the fingerprints list no files).</p>'
    )
    cfg_rows = []
    va, vb = a.results.configs, b.results.configs
    for v in sorted(set(va) | set(vb)):
        fa, fb = flatten(va.get(v) or {}), flatten(vb.get(v) or {})
        for k in sorted(set(fa) | set(fb)):
            if fa.get(k, "∅") != fb.get(k, "∅"):
                cfg_rows.append(
                    f"<tr><td>{esc(v)}</td><td><code>{esc(k)}</code></td>"
                    f"<td>{esc(json.dumps(fa.get(k, '∅'), default=str))}</td>"
                    f"<td>{esc(json.dumps(fb.get(k, '∅'), default=str))}</td></tr>"
                )
    cfg = (
        '<table id="config-diff"><thead><tr><th>variant</th><th>key</th><th>A</th><th>B</th>'
        f"</tr></thead><tbody>{''.join(cfg_rows)}</tbody></table>"
        if cfg_rows
        else '<p class="muted">Same configurations.</p>'
    )
    verdict_rows = []
    for variant, metric, x, y in verdict_pairs(a.analysis or {}, b.analysis or {}):
        cls = ' class="changed"' if x != y else ""
        verdict_rows.append(
            f"<tr{cls}><td>{esc(variant)}</td><td>{esc(metric)}</td><td>{esc(x or '—')}</td>"
            f"<td>{esc(y or '—')}</td><td>{'moved' if x != y else ''}</td></tr>"
        )
    verdicts = (
        '<table class="sortable" id="verdicts"><thead><tr><th>variant</th><th>metric</th>'
        "<th>A</th><th>B</th><th></th></tr></thead><tbody>"
        + "".join(verdict_rows)
        + "</tbody></table>"
    )
    body = (
        head
        + "<h2>Code</h2>"
        + code_html
        + "<h2>Configuration</h2>"
        + cfg
        + "<h2>Verdicts</h2>"
        + verdicts
    )
    return page("Compare", body, crumbs=[("compare", "")])


def verdict_pairs(a: Mapping[str, Any], b: Mapping[str, Any]):
    def table(x):
        out = {}
        for v in x.get("variants", [])[1:]:
            for m, c in (v.get("vs_baseline") or {}).items():
                out[(v["name"], m)] = c.get("verdict")
        return out

    ta, tb = table(a), table(b)
    for k in sorted(set(ta) | set(tb)):
        yield k[0], k[1], ta.get(k), tb.get(k)


def sparkline(name: str, points: list[tuple[int, float]], w: int = 320, h: int = 120) -> str:
    """A logged series as a small inline SVG line chart (hand-written: a few lines of SVG are
    lighter than a matplotlib figure per series, and need no script)."""
    pts = [(s, v) for s, v in points if v is not None and math.isfinite(v)]
    if not pts:
        return f"<figcaption>{esc(name)}: no finite values</figcaption>"
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    sx = (w - 50) / ((x1 - x0) or 1)
    sy = (h - 30) / ((y1 - y0) or 1)
    coords = " ".join(f"{40 + (x - x0) * sx:.1f},{h - 20 - (y - y0) * sy:.1f}" for x, y in pts)
    return (
        f'<svg class="spark" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" '
        f'aria-label="{esc(name)} over {len(pts)} steps">'
        f'<polyline fill="none" stroke="#0969da" stroke-width="1.5" points="{coords}"/>'
        f'<text x="2" y="12" font-size="10">{esc(_num(y1))}</text>'
        f'<text x="2" y="{h - 20}" font-size="10">{esc(_num(y0))}</text>'
        f'<text x="40" y="{h - 4}" font-size="10">step {esc(x0)}</text>'
        f'<text x="{w - 60}" y="{h - 4}" font-size="10">{esc(x1)}</text></svg>'
        f"<figcaption>{esc(name)}</figcaption>"
    )


def _num(x: Any, digits: int = 4) -> str:
    try:
        f = float(x)
    except (TypeError, ValueError):
        return "—"
    if not math.isfinite(f):
        return "—" if math.isnan(f) else str(f)
    return f"{f:.{digits}g}"


def _short(text: Any, limit: int = 300) -> str:
    s = str(text or "").strip().splitlines()
    line = s[-1] if s else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _iso(t: Any) -> str:
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(float(t)))
    except (TypeError, ValueError, OverflowError):
        return "—"
