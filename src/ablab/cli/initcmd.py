"""`ablab init [DIR]`: write a small starter study that runs at once, offline.

The templates live here as strings (not data files) so that they ship in every wheel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ablab.cli.common import console
from ablab.errors import AblabError

STUDY = """\
# A starter ablation study written by `ablab init`. Run it, then read the report:
#   ablab run {study}
#   ablab report {study}
name = "{name}"
entry = "train.py:train"      # file relative to this study file : function
seeds = 5                     # every variant runs once per seed

[metrics]                     # the first is the primary metric
accuracy = "max"
test_loss = "min"

[baseline]                    # the configuration every ablation changes one thing of
hidden = 32
lr = 0.05
epochs = 40
weight_decay = 0.0001

[ablations]                   # one-at-a-time variants: each overrides baseline keys
no-hidden = {{ hidden = 0 }}    # a linear model instead of the MLP
tiny = {{ hidden = 8 }}

[run]
timeout = "2m"
"""

TRAIN = '''\
"""The entry of the starter study: train(config, run) -> metrics.

A small classifier on scikit-learn's bundled handwritten digits (no download). ablab seeds
Python, NumPy and torch from run.seed before calling it, so a run is repeatable.
"""

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


def train(config, run):
    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x / 16.0, y, test_size=0.3, random_state=run.split_seed, stratify=y
    )
    x_tr, x_te = (torch.tensor(a, dtype=torch.float32) for a in (x_tr, x_te))
    y_tr, y_te = torch.tensor(y_tr), torch.tensor(y_te)
    run.track_data("digits", x_tr)

    hidden = config["hidden"]
    if hidden:
        model = torch.nn.Sequential(
            torch.nn.Linear(64, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 10)
        )
    else:
        model = torch.nn.Linear(64, 10)
    opt = torch.optim.Adam(model.parameters(), lr=config["lr"], weight_decay=config["weight_decay"])
    loss_fn = torch.nn.CrossEntropyLoss()
    for epoch in range(config["epochs"]):
        opt.zero_grad()
        loss = loss_fn(model(x_tr), y_tr)
        loss.backward()
        opt.step()
        run.log(step=epoch, train_loss=loss.item())

    with torch.no_grad():
        logits = model(x_te)
        return {
            "accuracy": (logits.argmax(1) == y_te).float().mean().item(),
            "test_loss": loss_fn(logits, y_te).item(),
        }
'''

README = """\
# {name}

A starter ablab study: `ablab run {study}` trains a small digits classifier over 5 seeds per
variant, then `ablab report {study}` says which ablation changed accuracy, with intervals and
Holm-adjusted tests. Edit `train.py` (your training code) and `{study}` (baseline, ablations).
"""


def init(
    directory: Annotated[
        Path, typer.Argument(help="Folder to write the starter study into (made if missing).")
    ] = Path("."),
    name: Annotated[
        str | None, typer.Option("--name", help="Study name (default: the folder's name).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
) -> None:
    """Write a runnable starter study (study.toml, train.py, README.md) into DIRECTORY."""
    import re

    directory = directory.resolve()
    study_name = name or re.sub(r"[^A-Za-z0-9_.+-]", "-", directory.name).strip("-.") or "starter"
    if not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.+\-]*$", study_name):
        raise AblabError(
            f"--name {study_name!r} is not a valid study name",
            hint="use letters, digits, '_', '-', '.'",
        )
    if directory.exists() and not directory.is_dir():
        raise AblabError(f"{directory} exists and is not a folder")
    files = {
        "study.toml": STUDY.format(name=study_name, study=_shown(directory / "study.toml")),
        "train.py": TRAIN,
        "README.md": README.format(name=study_name, study="study.toml"),
    }
    existing = [f for f in files if (directory / f).exists()]
    if existing and not force:
        raise AblabError(
            f"{directory} already has {', '.join(existing)}",
            hint="choose another folder, or --force to overwrite them",
        )
    directory.mkdir(parents=True, exist_ok=True)
    for f, text in files.items():
        (directory / f).write_text(text, encoding="utf-8")
    study = _shown(directory / "study.toml")
    console.print(f"wrote {', '.join(files)} in {directory}", highlight=False)
    console.print(f"next:  ablab run {study}  &&  ablab report {study}", highlight=False)


def _shown(path: Path) -> str:
    """The path as the user would type it from here (relative when below the current folder)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
