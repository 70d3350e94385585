"""``ablab mdtree fit|eval|pairs`` and ``ablab diagnose ENTRY``: MD tree from the command line.

The lead wires ``app`` in as the ``mdtree`` command group and ``diagnose_command`` as
``ablab diagnose``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ablab.errors import AblabError, DataError, EntryError
from ablab.termtext import safe

app = typer.Typer(
    help="Fit and evaluate MD trees (model diagnosis from the loss landscape).",
    no_args_is_help=True,
)

SourceArg = Annotated[
    Path,
    typer.Argument(
        help="The zoo: a study file (its store's finished runs) or a CSV table with one row "
        "per trained model (knob columns, test accuracy and feature columns)."
    ),
]
Temperature = Annotated[str, typer.Option(help="Temperature knob column (batch size or lr).")]
Hotter = Annotated[
    bool, typer.Option("--lr-temperature", help="The knob is a learning rate: larger is hotter.")
]
Width = Annotated[str, typer.Option(help="Model-size knob column.")]
DataCol = Annotated[
    str | None,
    typer.Option(
        "--data",
        help="Training-data-size knob column (default: data_size, or data_fraction when the zoo "
        "has no data_size column).",
    ),
]
Accuracy = Annotated[str, typer.Option(help="Test-accuracy column.")]
StoreOpt = Annotated[Path | None, typer.Option(help="Store directory (default: the study's).")]


def _zoo_rows(source: Path, store: Path | None) -> Any:
    import pandas as pd

    from ablab.mdtree.dataset import runs_frame

    if source.suffix.lower() == ".csv":
        if not source.is_file():
            raise DataError(f"zoo table {str(source)!r} does not exist")
        return pd.read_csv(source)
    from ablab.api import current_plan
    from ablab.cli.common import load

    spec, st = load(source, store)
    with st:
        study = st.study(spec.name)
        if study is None:
            raise DataError(
                f"study {spec.name!r} has no runs in the store",
                hint=f"run it first: ablab run {source}",
            )
        keys = [r.key for r in current_plan(spec, st, study["id"]).runs]
        return runs_frame(st.runs(study["id"], keys))


def _table(source: Path, store: Path | None, *, data: str | None, **knobs: Any) -> tuple[Any, str]:
    """(training table, the data-knob column used)."""
    from ablab.mdtree.dataset import training_table

    rows = _zoo_rows(source, store)
    if data is None:
        data = (
            "data_fraction" if "data_size" not in rows and "data_fraction" in rows else "data_size"
        )
    return training_table(rows, data=data, **knobs), data


def _check_pair_features(table: Any, features: Any, source: Path) -> None:
    """Fail with the command to run when the connectivity features (mc_peak ...) are missing;
    warn when only some configurations have them."""
    from ablab.cli.common import err_console
    from ablab.mdtree.tree import FEATURES

    study = source.suffix.lower() != ".csv"
    fix = (f"compute them: ablab mdtree pairs {source}" if study
           else "add the pair-feature columns (seed-pair metrics) to the table")  # fmt: skip
    for f in (f for f in features if FEATURES[f].needs_pair):
        have = int(table[f].notna().sum()) if f in table.columns else 0
        if have == 0:
            raise DataError(
                f"{source}: no configuration has the pair feature {f!r} (mode connectivity and "
                "CKA need two seeds of a configuration and are computed after the runs)",
                hint=fix,
            )
        if have < len(table) and (f != "cka" or not study):
            err_console.print(safe(f"warning: {len(table) - have} of {len(table)} configurations "
                                   f"have no {f!r} and are left out; {fix}"), highlight=False)  # fmt: skip


@app.command("fit")
def fit_command(
    source: SourceArg,
    question: Annotated[
        str,
        typer.Option(
            help="q1 (temperature too low/high), q2 (width vs "
            "temperature) or q2_data (data vs temperature)."
        ),
    ] = "q1",
    out: Annotated[
        Path, typer.Option("-o", "--out", help="Where to write the tree (JSON).")
    ] = Path("tree.json"),
    cka: Annotated[
        bool, typer.Option("--cka", help="Use CKA instead of the Hessian trace.")
    ] = False,
    temperature: Temperature = "batch_size",
    lr_temperature: Hotter = False,
    width: Width = "width",
    data: DataCol = None,
    accuracy: Accuracy = "test_accuracy",
    store: StoreOpt = None,
) -> None:
    """Label the zoo by room for improvement and fit the MD tree's thresholds.

    Example: ablab mdtree fit zoo.toml --question q1 -o tree.json
    """
    from ablab.cli.common import console
    from ablab.mdtree import CKA_FEATURES, DEFAULT_FEATURES, MDTree

    tree = MDTree(question, CKA_FEATURES if cka else DEFAULT_FEATURES)
    table, data = _table(source, store, temperature=temperature, higher_is_hotter=lr_temperature,
                   width=width, data=data, accuracy=accuracy)  # fmt: skip
    _check_pair_features(table, tree.features, source)
    tree.fit(table, table[question])
    tree.provenance = {"zoo": str(source), "configurations": int(len(table)),
                       "knobs": [temperature, width, data], "accuracy": accuracy}  # fmt: skip
    tree.save(out)
    console.print(safe(f"fitted {question} on {tree.n_train_} labelled configurations: training "
                       f"accuracy {tree.train_accuracy_:.1%}; thresholds {tree.thresholds_}"),
                  highlight=False)  # fmt: skip
    console.print(safe(f"wrote {out}"), highlight=False)


@app.command("eval")
def eval_command(
    tree_file: Annotated[Path, typer.Argument(help="A tree written by `ablab mdtree fit`.")],
    source: SourceArg,
    temperature: Temperature = "batch_size",
    lr_temperature: Hotter = False,
    width: Width = "width",
    data: DataCol = None,
    accuracy: Accuracy = "test_accuracy",
    store: StoreOpt = None,
) -> None:
    """Accuracy of a fitted tree on another zoo (labelled configurations only), beside the
    majority-class baseline of that zoo.

    Example: ablab mdtree eval tree.json other_zoo.csv
    """
    from ablab.cli.common import console
    from ablab.mdtree import MDTree, majority_baseline

    tree = MDTree.load(tree_file)
    table, data = _table(source, store, temperature=temperature, higher_is_hotter=lr_temperature,
                   width=width, data=data, accuracy=accuracy)  # fmt: skip
    _check_pair_features(table, tree.features, source)
    labelled = table[table[tree.question] != "optimal"]
    if labelled.empty:
        raise DataError(f"{source}: no configuration has a {tree.question} label (all optimal)")
    acc = tree.score(labelled, labelled[tree.question])
    major = majority_baseline(labelled[tree.question], labelled[tree.question])
    console.print(safe(f"{tree.question}: MD tree accuracy {acc:.1%} on {len(labelled)} "
                       f"configurations (majority class {major:.1%})"), highlight=False)  # fmt: skip


@app.command("pairs")
def pairs_command(
    study_file: Annotated[
        Path,
        typer.Argument(help="A zoo study file (entry ablab.mdtree.zoo:zoo_entry), already run."),
    ],
    store: StoreOpt = None,
    force: Annotated[
        bool, typer.Option("--force", help="Recompute configurations that already have them.")
    ] = False,
    mc_epochs: Annotated[int, typer.Option(help="Bezier-curve training epochs.")] = 5,
) -> None:
    """Compute the pair features (mc_peak, mu, CKA) of every configuration of a zoo study whose
    two seeds are done, from their saved checkpoints, and record them as metrics of both runs.
    Configurations already done are skipped (unless --force), so it can be run again while the
    study is still running, or after an interruption.

    Example: ablab run examples/mdtree_zoo/digits.toml -j 2 && ablab mdtree pairs examples/mdtree_zoo/digits.toml
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ablab.cli.common import console, err_console
    from ablab.mdtree.pairs import zoo_pairs

    if mc_epochs < 1:
        raise DataError(f"--mc-epochs {mc_epochs}: expected at least 1")
    with Progress(TextColumn("pair features"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("{task.description}"), console=err_console,
                  transient=True) as bar:  # fmt: skip
        task = bar.add_task("", total=None)

        def progress(done: int, total: int, name: str) -> None:
            bar.update(task, completed=done, total=total, description=name)

        res = zoo_pairs(
            study_file, store=store, force=force, mc_epochs=mc_epochs, progress=progress
        )
    if res.incomplete:
        names = ", ".join(res.incomplete[:8]) + (" ..." if len(res.incomplete) > 8 else "")
        err_console.print(safe(f"warning: {len(res.incomplete)} configuration(s) have fewer than "
                               f"2 finished seeds and were skipped: {names}"), highlight=False)  # fmt: skip
    if res.undefined_cka:
        err_console.print(safe(f"note: CKA is undefined (constant outputs) for "
                               f"{len(res.undefined_cka)} configuration(s): "
                               f"{', '.join(res.undefined_cka[:8])}"), highlight=False)  # fmt: skip
    console.print(f"pair features: {len(res.computed)} configuration(s) computed, "
                  f"{len(res.already_done)} already done"
                  + (" (use --force to recompute)" if res.already_done and not res.computed else ""),
                  highlight=False)  # fmt: skip


def _unpack(obj: Any, entry: str) -> tuple[Any, Any, Any, Any]:
    if isinstance(obj, dict):
        missing = [k for k in ("model", "data") if k not in obj]
        loss = obj.get("loss_fn", obj.get("loss"))
        if missing or loss is None:
            raise EntryError(
                f"diagnose entry '{entry}' returned a dict without {missing or ['loss_fn']}",
                hint="return {'model': m, 'data': (X, y), 'loss_fn': loss, 'second_model': m2}",
            )
        return obj["model"], obj.get("second_model"), obj["data"], loss
    if isinstance(obj, (tuple, list)) and len(obj) in (3, 4):
        return (obj[0], None, obj[1], obj[2]) if len(obj) == 3 else tuple(obj)  # type: ignore[return-value]
    raise EntryError(
        f"diagnose entry '{entry}' returned a {type(obj).__name__}; expected a dict with model, "
        "data, loss_fn (and optionally second_model), or a tuple (model, data, loss_fn) or "
        "(model, second_model, data, loss_fn)"
    )


def diagnose_command(
    entry: Annotated[
        str,
        typer.Argument(
            help="file.py:function or module:function returning "
            "{'model', 'data', 'loss_fn'[, 'second_model']}."
        ),
    ],
    tree: Annotated[
        list[Path] | None,
        typer.Option(
            "--tree",
            help="Fitted tree JSON (repeat "
            "for several questions). Default: the "
            "trees shipped with ablab.",
        ),
    ] = None,
    hessian_samples: Annotated[
        int | None, typer.Option(help="Samples for the Hessian (default: all).")
    ] = None,
    mc_epochs: Annotated[int, typer.Option(help="Bezier-curve training epochs.")] = 10,
    seed: Annotated[int, typer.Option(help="Seed of probes, curve training and mixup.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Say why a trained model fails: landscape metrics, then each MD tree's diagnosis and
    advice. Without a second model (another seed) the connectivity features cannot be
    computed; the trees then answer only where their path does not need them.

    Example: ablab diagnose examples/mdtree/models.py:digits_small
    """
    from ablab.cli.common import console
    from ablab.mdtree import diagnose
    from ablab.runtime.entry import load_entry

    fn = load_entry(entry, Path.cwd())
    try:
        obj = fn()
    except AblabError:
        raise
    except TypeError as exc:
        raise EntryError(
            f"diagnose entry '{entry}' could not be called without arguments: {exc}"
        ) from exc
    model, second, data, loss_fn = _unpack(obj, entry)
    result = diagnose(model, data, loss_fn, second_model=second, tree=tree or None,
                      hessian_samples=hessian_samples, mc_epochs=mc_epochs, seed=seed)  # fmt: skip
    if as_json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        console.print(str(result), highlight=False, markup=False)
