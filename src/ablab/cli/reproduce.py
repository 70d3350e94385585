"""`ablab reproduce` and `ablab check-determinism`."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ablab.cli.common import console, dumps, err_console, find_store, fmt_num, safe
from ablab.errors import AblabError
from ablab.verify.compare import VARIES


def reproduce(
    target: Annotated[
        str | None,
        typer.Argument(help="A RUN_KEY, or a STUDY_FILE (with --variant/--seed/--sample)."),
    ] = None,
    variant: Annotated[
        str | None, typer.Option("--variant", help="Reproduce this variant's runs.")
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Reproduce runs with this seed.")
    ] = None,
    sample: Annotated[
        int | None,
        typer.Option(
            "--sample", help="Reproduce K runs sampled reproducibly (one per variant first)."
        ),
    ] = None,
    bundle: Annotated[
        Path | None,
        typer.Option("--bundle", help="Re-run from an exported bundle, in a temporary workspace."),
    ] = None,
    store: Annotated[Path | None, typer.Option("--store", help="Store directory.")] = None,
    rtol: Annotated[
        float, typer.Option("--rtol", help="Relative tolerance (default: bit-identical).")
    ] = 0.0,
    atol: Annotated[
        float, typer.Option("--atol", help="Absolute tolerance (default: bit-identical).")
    ] = 0.0,
    jobs: Annotated[int, typer.Option("-j", "--jobs", help="Parallel workers.")] = 1,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the verifications as JSON.")
    ] = False,
) -> None:
    """Re-execute recorded runs with their config and seed and verify the numbers.

    Exit 0 when every run reproduced (bit-identical or within tolerance), 1 otherwise."""
    from ablab.api import default_store_dir
    from ablab.spec.load import load_study
    from ablab.store.db import Store
    from ablab.verify.reproduce import reproduce as do_reproduce
    from ablab.verify.reproduce import select_runs, spec_of_study

    if rtol < 0 or atol < 0:
        raise AblabError("--rtol and --atol must be >= 0")
    workspace = None
    runs = None
    try:
        if bundle is not None:
            from ablab.verify.bundle import unpack_bundle

            workspace = Path(tempfile.mkdtemp(prefix="ablab-bundle-"))
            _, study_file, study_row = unpack_bundle(bundle, workspace)
            st = Store(workspace / "store")
            spec = load_study(study_file)
            study = st.study(spec.name, study_row["revision"])
        elif target is not None and Path(target).suffix.lower() in (".toml", ".yaml", ".yml"):
            spec = load_study(Path(target))
            st = Store(store or default_store_dir(spec))
            study = st.study(spec.name)
            if study is None:
                raise AblabError(
                    f"{target}: no runs recorded for study '{spec.name}'",
                    hint=f"run it first: ablab run {target}",
                )
        elif target is not None:
            st = Store(find_store(store, None))
            run = st.find_run(target)
            if run is None:
                raise AblabError(
                    f"no run with key '{target}' in {st.dir}",
                    hint="list keys with: ablab runs STUDY_FILE",
                )
            study = run["study"]
            spec = spec_of_study(study)
            runs = [r for r in st.runs(study["id"]) if r["key"] == run["key"]]
        else:
            raise AblabError(
                "give a RUN_KEY, a STUDY_FILE or --bundle FILE",
                hint="e.g. ablab reproduce study.toml --sample 3",
            )
        if runs is None:
            runs = select_runs(st, study, variant=variant, seed=seed, sample=sample)
        err_console.print(
            safe(f"reproducing {len(runs)} run(s) of {spec.name} ..."), highlight=False
        )
        results = do_reproduce(st, spec, runs, rtol=rtol, atol=atol, jobs=jobs)
    finally:
        if workspace is not None:
            shutil.rmtree(workspace, ignore_errors=True)
    if json_out:
        print(
            dumps(
                [
                    {
                        "key": v.key,
                        "variant": v.variant,
                        "seed": v.seed,
                        "verdict": v.verdict,
                        **v.details,
                    }
                    for v in results
                ]
            )
        )
    else:
        _print(results)
    n_ok = sum(v.ok for v in results)
    (err_console if json_out else console).print(
        f"{n_ok} of {len(results)} run(s) reproduced", highlight=False
    )
    raise typer.Exit(0 if n_ok == len(results) else 1)


def _print(results) -> None:
    t = Table("run", "variant", "seed", "verdict", "largest metric difference")
    for v in results:
        rows = v.details.get("metrics", {}).get("rows", [])
        diffs = [r for r in rows if r.get("abs_diff") and r["status"] != VARIES]
        worst = max(diffs, key=lambda r: r["abs_diff"], default=None)
        color = "green" if v.ok else "red"
        t.add_row(
            safe(v.key),
            safe(v.variant),
            str(v.seed),
            f"[{color}]{safe(v.verdict)}[/]",
            safe(
                f"{worst['metric']}: {fmt_num(worst['recorded'], 8)} -> "
                f"{fmt_num(worst['rerun'], 8)}"
            )
            if worst
            else "-",
        )
    console.print(t)
    varies = sorted(
        {n for v in results for n in v.details.get("metrics", {}).get("varies", [])}
        | {n for v in results for n in v.details.get("series", {}).get("varies", [])}
    )
    if varies:
        console.print(
            f"varies by nature (declared deterministic = false, not compared): {', '.join(varies)}",
            highlight=False,
        )
    for v in results:
        if v.ok:
            continue
        d = v.details
        console.print(
            f"[bold]{safe(v.key)}[/] ({safe(v.variant)}, seed {v.seed}) differs:", highlight=False
        )
        for r in d.get("metrics", {}).get("rows", []):
            if r["status"] not in ("identical", VARIES):
                console.print(
                    safe(
                        f"  metric {r['metric']}: recorded {fmt_num(r['recorded'], 10)}, re-run "
                        f"{fmt_num(r['rerun'], 10)} ({r['status']})"
                    ),
                    highlight=False,
                )
        first = d.get("series", {}).get("first_difference")
        if first:
            console.print(
                safe(
                    f"  series {first['name']} first differs at step {first['step']}: "
                    f"{fmt_num(first['recorded'], 10)} -> {fmt_num(first['rerun'], 10)}"
                ),
                highlight=False,
            )
        data = d.get("data", {})
        for n in data.get("changed", []):
            console.print(safe(f"  data '{n}' changed (different SHA-256)"), highlight=False)
        env = d.get("environment", {})
        for e in env.get("differences", []):
            console.print(
                safe(f"  environment {e['what']}: {e['recorded']} -> {e['now']}"), highlight=False
            )
        for p in env.get("packages", [])[:10]:
            console.print(
                safe(f"  package {p['package']}: {p['recorded']} -> {p['now']}"), highlight=False
            )
        if d.get("code", {}).get("changed"):
            console.print("  code fingerprint changed since the run was recorded", highlight=False)
        if d.get("error"):
            console.print(f"  re-run failed: {safe(d['error'])}", highlight=False)
        console.print(safe("  likely cause(s): " + "; ".join(d.get("causes", []))), highlight=False)


def check_determinism(
    study_file: Annotated[Path, typer.Argument(help="The study file.")],
    variant: Annotated[str, typer.Option("--variant", help="Variant to check.")] = "baseline",
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed (default: the study's first).")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Run the same run twice back to back and report whether metrics and series are bit-identical."""
    from ablab.spec.load import load_study
    from ablab.verify.reproduce import check_determinism as do_check

    spec = load_study(study_file)
    s = spec.seeds[0] if seed is None else seed
    scratch = Path(tempfile.mkdtemp(prefix="ablab-determinism-"))
    try:
        res = do_check(spec, variant, s, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if json_out:
        print(dumps(res))
    elif res["deterministic"]:
        console.print(
            f"[green]deterministic[/]: {safe(variant)} seed {s} gave bit-identical metrics and "
            "series twice",
            highlight=False,
        )
        if res.get("varies_by_nature"):
            console.print(
                f"  varies by nature (declared deterministic = false, not compared): "
                f"{', '.join(res['varies_by_nature'])}",
                highlight=False,
            )
    else:
        console.print(f"[red]not deterministic[/]: {safe(variant)} seed {s}", highlight=False)
        if res.get("error"):
            console.print(f"  a run failed: {safe(res['error'])}", highlight=False)
        if res.get("first_metric"):
            m = res["first_metric"]
            console.print(
                safe(
                    f"  first metric that differs: {m['metric']}: {fmt_num(m['recorded'], 10)} vs "
                    f"{fmt_num(m['rerun'], 10)}"
                ),
                highlight=False,
            )
        if res.get("first_series_point"):
            p = res["first_series_point"]
            console.print(
                safe(f"  first series point that differs: {p['name']} at step {p['step']}"),
                highlight=False,
            )
        if res.get("checklist"):
            console.print("  common causes to check:", highlight=False)
            for c in res["checklist"]:
                console.print(f"  - {safe(c)}", highlight=False)
    raise typer.Exit(0 if res["deterministic"] else 1)
