"""Build ablab's example zoo and fit the default trees shipped in ``ablab/mdtree/trees/``.

Run: ``python -m ablab.mdtree._fit_defaults --zoo-csv tests/mdtree/data/zoo_digits.csv`` (~6 min on
2 CPU cores). Each tree's JSON records its provenance: task, grid, seeds, epochs, the number
of labelled configurations and the ablab/torch versions.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

GRID = {
    "width": [8, 16, 32, 64, 128],
    "batch_size": [8, 16, 32, 64, 128, 256],
    "data_fraction": [0.1, 0.25, 0.5, 1.0],
    "epochs": [60],
}


def main() -> None:
    import torch

    from ablab._version import __version__
    from ablab.mdtree import MDTree, training_table
    from ablab.mdtree.diagnose import TREES_DIR
    from ablab.mdtree.zoo import build_zoo

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=TREES_DIR)
    ap.add_argument("--task", default="digits")
    ap.add_argument("--zoo-csv", type=Path, default=None, help="Also write the zoo table here.")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    grid = GRID | {"task": [args.task]}
    zoo = build_zoo(grid, seeds=(0, 1), progress=print)
    if args.zoo_csv:
        zoo.to_csv(args.zoo_csv, index=False)
    table = training_table(zoo, data="data_fraction")
    args.out.mkdir(parents=True, exist_ok=True)
    for q in ("q1", "q2", "q2_data"):
        labelled = table[table[q] != "optimal"]
        tree = MDTree(q).fit(labelled, labelled[q])
        tree.provenance = {
            "zoo": f"ablab.mdtree.zoo.build_zoo on {args.task}",
            "grid": grid,
            "seeds": [0, 1],
            "labelled_configurations": int(len(labelled)),
            "label_counts": labelled[q].value_counts().to_dict(),
            "ablab": __version__,
            "torch": torch.__version__,
            "note": "fitted on one small CPU zoo; transfer to other datasets/architectures is untested",
        }
        tree.save(args.out / f"{q}.json")
        print(
            f"{q}: {len(labelled)} labelled, train accuracy {tree.train_accuracy_:.1%}, {tree.thresholds_}"
        )
    print(f"done in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
