"""A real, small scikit-learn training job: the tests' and the demo's job, run by the node agent (dev mode) with
the ML venv's python (.venv-serving).

It does what a data scientist's script does, unchanged for Paved: reads its dataset from S3 (PAVED_DATASET_URI),
trains a logistic regression a few iterations per epoch (warm start: the loss falls epoch by epoch), logs its
parameters and per-epoch loss through the mlflow client (MLFLOW_TRACKING_URI, _TOKEN and MLFLOW_RUN_ID come from
the platform), prints its accuracy as agent metric lines (`paved:metric {...}`), and writes the fitted model with
joblib to PAVED_OUTPUT_URI in S3, where MLServer's scikit-learn runtime loads it from."""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
import warnings
from urllib.parse import urlparse

import boto3
import joblib
import mlflow
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss


def s3_parts(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    return parsed.netloc, parsed.path.lstrip("/")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--C", type=float, default=1.0)
    parser.add_argument("--pause", type=float, default=0.0, help="seconds per epoch, to watch a demo train live")
    args = parser.parse_args()
    s3 = boto3.client("s3")
    bucket, key = s3_parts(os.environ["PAVED_DATASET_URI"])
    rows = np.loadtxt(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read()), delimiter=",", skiprows=1)
    features, labels = rows[:, :4], rows[:, 4].astype(int)
    classes = np.unique(labels)
    model = LogisticRegression(C=args.C, max_iter=3, warm_start=True)
    warnings.simplefilter("ignore", ConvergenceWarning)
    with mlflow.start_run():
        mlflow.log_params({"epochs": args.epochs, "C": args.C, "model": "LogisticRegression"})
        for epoch in range(1, args.epochs + 1):
            model.fit(features, labels)
            loss = log_loss(labels, model.predict_proba(features), labels=classes)
            accuracy = accuracy_score(labels, model.predict(features))
            mlflow.log_metric("loss", float(loss), step=epoch)
            print(f"epoch {epoch} loss {loss:.4f} accuracy {accuracy:.3f}", flush=True)
            print(
                "paved:metric " + json.dumps({"key": "accuracy", "value": float(accuracy), "step": epoch}), flush=True
            )
            time.sleep(args.pause)
        bucket, key = s3_parts(os.environ["PAVED_OUTPUT_URI"])
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "model.joblib")
            joblib.dump(model, path)
            s3.upload_file(path, bucket, key)
        mlflow.set_tag("paved.model", f"s3://{bucket}/{key}")
    print("model written to", os.environ["PAVED_OUTPUT_URI"], flush=True)


if __name__ == "__main__":
    main()
