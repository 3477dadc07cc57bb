"""Shared fixtures: connections that are always closed, and the real material in data/."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import engine

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"


def data_file(name: str) -> Path:
    """A file fetched by `make data`; a clear failure (never a skip) when it is missing."""
    path = DATA / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make data` (scripts/fetch_data.sh) first")
    return path


def imagenet_mobilenet() -> Any:
    """torchvision's ImageNet MobileNetV2 (data/mobilenet_v2.pth) in a fresh plain-torch model, in eval mode."""
    import torch

    from udfs.architectures import build

    model = build("mobilenet_v2")
    model.load_state_dict(torch.load(data_file("mobilenet_v2.pth"), weights_only=True))
    return model.eval()


@pytest.fixture
def con() -> Iterator[engine.Connection]:
    """An in-memory Mallard connection in autocommit mode, closed after the test."""
    connection = engine.connect(progress="off", autocommit=True)
    try:
        yield connection
    finally:
        connection.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A path for a fresh database file."""
    return tmp_path / "test.duckdb"


@pytest.fixture(autouse=True, scope="session")
def _quiet_environment() -> None:
    os.environ.setdefault("CI", "1")  # no progress bars in test output
