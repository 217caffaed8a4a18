"""Fixtures of the local target: a SERVING_ROOT of the test's own (every process started under it is stopped
afterwards) and the demo model, written once per session by the serving venv."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apps.deployments.targets.base import EndpointRef
from apps.deployments.targets.local import LocalTarget
from tests.deployments.local_serving import write_demo_model


@pytest.fixture(scope="session")
def demo_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two demo iris models (different regularization): what versions 1 and 2 of a model point at."""
    folder = tmp_path_factory.mktemp("models")
    return {"v1": write_demo_model(folder / "v1.joblib", 1.0), "v2": write_demo_model(folder / "v2.joblib", 0.5)}


@pytest.fixture
def serving_root(tmp_path: Path, settings: Any) -> Iterator[Path]:
    root = tmp_path / "serving"
    settings.SERVING_ROOT = root
    yield root
    if root.is_dir():
        for folder in root.iterdir():
            if folder.is_dir():
                LocalTarget(EndpointRef(name=folder.name)).teardown()
