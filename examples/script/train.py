"""An ordinary training script that knows nothing of ablab: argparse in, numbers out.

    python train.py --model mlp --hidden 64 --alpha 1e-4 --seed 0 --out /tmp/run

It trains a scikit-learn classifier on the digits data set (bundled with scikit-learn, no
download), prints one "val accuracy" line per epoch and a final "test loss" line, and writes
metrics.json into --out. ablab runs it unchanged (see study.toml).
"""

import argparse
import json
import os

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", choices=["mlp", "logistic"], default="mlp")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--alpha", type=float, default=1e-4, help="L2 penalty")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--no-scale", action="store_true", help="skip feature standardisation")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=".")
    a = ap.parse_args()

    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    x_tr, x_va, y_tr, y_va = train_test_split(
        x_tr, y_tr, test_size=0.2, random_state=a.seed, stratify=y_tr
    )
    if not a.no_scale:
        scaler = StandardScaler().fit(x_tr)
        x_tr, x_va, x_te = scaler.transform(x_tr), scaler.transform(x_va), scaler.transform(x_te)

    classes = np.unique(y)
    if a.model == "mlp":
        clf = MLPClassifier(
            hidden_layer_sizes=(a.hidden,),
            alpha=a.alpha,
            random_state=a.seed,
            learning_rate_init=1e-3,
        )
        rng = np.random.default_rng(a.seed)
        for epoch in range(a.epochs):
            order = rng.permutation(len(x_tr))
            for start in range(0, len(order), 64):
                idx = order[start : start + 64]
                clf.partial_fit(x_tr[idx], y_tr[idx], classes=classes)
            print(f"epoch {epoch} val accuracy: {accuracy_score(y_va, clf.predict(x_va)):.4f}")
    else:
        clf = LogisticRegression(C=1.0 / max(a.alpha, 1e-8), max_iter=300).fit(x_tr, y_tr)
        print(f"epoch 0 val accuracy: {accuracy_score(y_va, clf.predict(x_va)):.4f}")

    test_acc = accuracy_score(y_te, clf.predict(x_te))
    test_loss = log_loss(y_te, clf.predict_proba(x_te), labels=classes)
    print(f"test loss: {test_loss:.6f}")
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "metrics.json"), "w") as f:
        json.dump({"accuracy": test_acc}, f)


if __name__ == "__main__":
    main()
