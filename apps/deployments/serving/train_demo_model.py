"""Write the demo model: a logistic regression on scikit-learn's iris data (fixed seed, so every install writes
the same model). Run with the serving venv's Python: `python train_demo_model.py OUT.joblib [C]`."""

from __future__ import annotations

import sys

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression


def main(path: str, regularization: float = 1.0) -> None:
    features, labels = load_iris(return_X_y=True)
    model = LogisticRegression(C=regularization, max_iter=500, random_state=0).fit(features, labels)
    joblib.dump(model, path)
    print(f"wrote {path}: iris logistic regression, C={regularization}, accuracy {model.score(features, labels):.3f}")


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 1.0)
