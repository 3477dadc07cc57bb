"""Shared material of the inference tests: small real clips at 224x224 with the ImageNet
MobileNetV2 registered, built once per test session and copied per test, and plain-torch
reference inference to compare against."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import engine
from tests.conftest import data_file, imagenet_mobilenet

TRAFFIC_FRAMES = 40
BIKES_FRAMES = 20
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def build_clips_database(path: Path) -> Path:
    """traffic: vtest.avi, 40 frames; bikes: bikes.mp4, 20 frames (both 224x224); model mobilenet."""
    with engine.connect(path, autocommit=True, progress="off") as con:
        con.execute("LOAD VIDEO ? INTO traffic WITH (width = 224, height = 224, limit = 40)", [str(data_file("vtest.avi"))])
        con.execute("LOAD VIDEO ? INTO bikes WITH (width = 224, height = 224, limit = 20)", [str(data_file("bikes.mp4"))])
        con.execute("CREATE MODEL mobilenet FROM ? WITH (architecture = 'mobilenet_v2', labels = ?)",
                    [str(data_file("mobilenet_v2.pth")), str(data_file("imagenet_classes.txt"))])
    return path


def copy_database(source: Path, target: Path) -> Path:
    shutil.copy(source, target)
    return target


# Fixtures of the inference test modules, which import them by name: `clips` is built once per
# module, every test gets its own copy (`db`) and an autocommit connection to it (`con`).

@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return build_clips_database(tmp_path_factory.mktemp("clips") / "clips.duckdb")


@pytest.fixture
def db(clips, tmp_path):
    return copy_database(clips, tmp_path / "db.duckdb")


@pytest.fixture
def con(db):
    connection = engine.connect(db, autocommit=True, progress="off")
    try:
        yield connection
    finally:
        connection.close()


_NETWORK: list[torch.nn.Module] = []


def reference_network() -> torch.nn.Module:
    """The ImageNet MobileNetV2, loaded with plain torch (no Mallard code in the way)."""
    if not _NETWORK:
        _NETWORK.append(imagenet_mobilenet())
    return _NETWORK[0]


def reference(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Plain-torch logits and penultimate features of (n, H, W, 3) uint8 frames."""
    net = reference_network()
    x = (torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255 - MEAN) / STD
    with torch.no_grad():
        features = net.pool(net.features(x)).flatten(1)
        return net.classifier(features).numpy(), features.numpy()


def last_scans(con: engine.Connection, n: int = 1) -> list:
    """The statistics of the connection's last ``n`` inference scans."""
    from engine.inference import scan_statistics

    return scan_statistics(con)[-n:]
