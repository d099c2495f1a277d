"""The demo's models: trained here on data that ships with scikit-learn, packaged as SageMaker
`model.tar.gz` archives with an inference-toolkit `inference.py`, in the embedded object store.

- production: a scaled logistic regression (what runs today);
- candidate-forest: a random forest, about ten times slower per prediction, and it disagrees with
  production on a few percent of requests: a shadow test should stop it;
- candidate-retrained: the same logistic regression retrained with weaker regularisation, the
  kind of routine refresh a shadow test should let through.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INFERENCE_PY = '''\
"""SageMaker inference-toolkit handlers: JSON rows in, labels and probabilities out."""
import json
import os

import joblib
import numpy as np


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def input_fn(body, content_type):
    if content_type != "application/json":
        raise ValueError(f"unsupported content type {content_type}")
    return np.asarray(json.loads(body)["instances"], dtype=float)


def predict_fn(data, model):
    return {"labels": model.predict(data).tolist(),
            "probabilities": model.predict_proba(data).round(4).tolist()}


def output_fn(prediction, accept):
    return json.dumps(prediction), "application/json"
'''

BUCKET = "demo-models"


@dataclass(frozen=True)
class TrainedModel:
    name: str
    kind: str
    accuracy: float
    model_data_url: str


def train_and_package(object_store: Path) -> tuple[list[TrainedModel], list[list[float]]]:
    """Train the three models; store each as s3://demo-models/<name>/model.tar.gz. Returns the
    models and the held-out rows the demo sends as traffic."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features, labels = load_breast_cancer(return_X_y=True)
    train_x, test_x, train_y, test_y = train_test_split(features, labels, random_state=7)
    models: dict[str, Any] = {
        "production": make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
        "candidate-forest": RandomForestClassifier(n_estimators=50, random_state=7),
        "candidate-retrained": make_pipeline(
            StandardScaler(), LogisticRegression(C=2.0, max_iter=500)
        ),
    }
    trained = []
    for name, model in models.items():
        model.fit(train_x, train_y)
        kind = type(model[-1] if hasattr(model, "steps") else model).__name__
        trained.append(
            TrainedModel(
                name, kind, model.score(test_x, test_y), _package(object_store, name, model)
            )
        )
    return trained, test_x.tolist()


def _package(object_store: Path, name: str, model: Any) -> str:
    import joblib

    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    target = object_store / BUCKET / name / "model.tar.gz"
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(target, "w:gz") as archive:
        _add(archive, "model.joblib", buffer.getvalue())
        _add(archive, "code/inference.py", INFERENCE_PY.encode())
    return f"s3://{BUCKET}/{name}/model.tar.gz"


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))
