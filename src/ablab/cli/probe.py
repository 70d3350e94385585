"""``ablab probe``: layer-wise ID/OOD linear probes of a model (the tunnel effect)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ablab.errors import AblabError, EntryError
from ablab.termtext import safe

EXAMPLE = """
Example:

  ablab probe examples/tunnel/models.py:pretrained_vgg --id glyphs-digits \\
      --ood glyphs-heldout-fonts,glyphs-letters,corrupt-noise -o probe-out
"""


def _call_entry(entry: str, what: str) -> Any:
    from ablab.runtime.entry import load_entry

    fn = load_entry(entry, Path.cwd())
    try:
        return fn()
    except AblabError:
        raise
    except TypeError as exc:
        raise EntryError(
            f"{what} entry '{entry}' could not be called without arguments: {exc}",
            hint="the entry must be a function taking no arguments",
        ) from exc


def _dataset(spec: str, seed: int) -> Any:
    """A registered dataset name, or an ENTRY returning a Dataset or (x_tr, y_tr, x_te, y_te)."""
    if ":" in spec:
        obj = _call_entry(spec, "dataset")
        if isinstance(obj, tuple | list):
            import numpy as np

            return tuple(None if a is None else np.asarray(a) for a in obj)
        return obj
    return spec


def probe_command(
    entry: Annotated[
        str,
        typer.Argument(
            help="file.py:function or module:function returning the trained model (an nn.Module)."
        ),
    ],
    id: Annotated[
        str,
        typer.Option(
            "--id",
            help="In-distribution dataset: a name from "
            "ablab.data (e.g. glyphs-digits) or an ENTRY returning "
            "(x_train, y_train, x_test, y_test).",
        ),
    ],
    ood: Annotated[
        str,
        typer.Option(
            "--ood",
            help="OOD datasets, comma separated: names or "
            "ENTRYs, e.g. glyphs-heldout-fonts,glyphs-letters.",
        ),
    ],
    layers: Annotated[
        str | None,
        typer.Option(
            "--layers",
            help="Probe points: comma separated "
            "module names or regexes (default: every "
            "conv/linear block and transformer block).",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "-o", "--out", help="Directory for probe.json, probe.png, probe.svg and probe.csv."
        ),
    ] = None,
    method: Annotated[
        str,
        typer.Option(
            help="Probe: lda-logistic (default; logistic in the "
            "LDA subspace), ridge, lda or logistic."
        ),
    ] = "lda-logistic",
    resolution: Annotated[
        int | None,
        typer.Option(help="Image side for named image datasets (default: the dataset's)."),
    ] = None,
    n_train_per_class: Annotated[
        int | None, typer.Option(help="Training images per class for glyph datasets.")
    ] = None,
    n_test_per_class: Annotated[int | None, typer.Option(help="Test images per class.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the datasets and validation splits.")] = 0,
    batch_size: Annotated[int, typer.Option(help="Forward batch size.")] = 256,
    device: Annotated[str, typer.Option(help="torch device, e.g. cpu or cuda.")] = "cpu",
    cache: Annotated[
        Path | None, typer.Option(help="Directory of a float16 feature cache reused across calls.")
    ] = None,
) -> None:
    """Probe every layer of a trained model on ID and OOD data: per-layer accuracies, ranks,
    % OOD performance retained (r), ID/OOD correlation (rho), alignment (A), tunnel start
    and strength. Probe strengths are chosen on a validation split of each probe's training
    data, never on its test split.
    """
    from rich.console import Console
    from rich.table import Table

    from ablab.probe import probe_model

    model = _call_entry(entry, "model")
    try:
        import torch.nn as nn
    except ImportError as exc:  # pragma: no cover
        raise AblabError("ablab probe needs torch") from exc
    if not isinstance(model, nn.Module):
        raise EntryError(
            f"model entry '{entry}' returned {type(model).__name__}, not a torch nn.Module",
            hint="return the trained model from the entry function",
        )
    ood_specs = [s.strip() for s in ood.split(",") if s.strip()]
    if not ood_specs:
        raise AblabError("--ood is empty", hint="name at least one OOD dataset")
    sel = None if layers is None else [s.strip() for s in layers.split(",") if s.strip()]
    options = {
        "resolution": resolution,
        "n_train_per_class": n_train_per_class,
        "n_test_per_class": n_test_per_class,
    }
    report = probe_model(
        model.to(device),
        _dataset(id, seed),
        {s: _dataset(s, seed) for s in ood_specs},
        sel,
        method=method,
        batch_size=batch_size,
        device=device,
        cache=cache,
        seed=seed,
        data_options={k: v for k, v in options.items() if v is not None},
    )
    console = Console()
    table = Table(title=safe(f"Layer-wise probes ({method}) of {type(model).__name__}"))
    for col in ("layer", "depth", f"ID {report.id_name}", *[f"OOD {k}" for k in report.ood],
                "num. rank", "eff. rank", "NC1"):  # fmt: skip
        table.add_column(safe(col), justify="left" if col == "layer" else "right")
    for i, name in enumerate(report.layers):
        mark = " <- tunnel start" if i == report.tunnel_start else ""
        table.add_row(
            safe(name + mark),
            f"{report.depth[i]:.2f}",
            f"{report.id_acc[i]:.3f}",
            *[f"{v[i]:.3f}" for v in report.ood.values()],
            str(int(report.numerical_rank[i])),
            f"{report.effective_rank[i]:.1f}",
            f"{report.nc1[i]:.3g}",
        )
    console.print(table)
    for k in report.ood:
        console.print(safe(f"  {k}: r = {report.r[k]:.1f}, rho = {report.rho[k]:.3f}, "
                           f"A = {report.alignment[k]:.3f}"), highlight=False)  # fmt: skip
    ts = report.tunnel_start
    console.print(
        f"[bold]r = {report.r_mean:.1f}[/] (mean over OOD sets), "
        f"rho = {report.summary()['rho']:.3f}, A = {report.summary()['A']:.3f}; "
        f"tunnel start: {'none' if ts is None else safe(report.layers[ts])}; "
        f"tunnel strength: [bold]{report.tunnel_strength}[/]"
    )
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        report.to_json(out / "probe.json")
        report.to_frame().to_csv(out / "probe.csv", index=False)
        report.plot(out / "probe")
        console.print(
            safe(f"wrote {out / 'probe.json'}, probe.csv, probe.png, probe.svg"), highlight=False
        )


probe_command.__doc__ = (probe_command.__doc__ or "") + EXAMPLE
