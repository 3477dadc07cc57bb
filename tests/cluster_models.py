"""Architectures for the cluster inference tests, in a module the cluster's nodes import: a
small CNN whose factory (run once in each worker that builds the network) kills that worker
process, once or every time, when it runs inside a Ray worker of the test cluster."""
from __future__ import annotations

import os
import signal
from pathlib import Path

from torch import nn

from tests.cluster_lfs import FAULTS_ENV, _on_cluster
from udfs.architectures import PlainCNN, architecture


@architecture("tiny_cluster_dies_once_cnn", num_classes=3, replace=True)
def dies_once_cnn(num_classes: int = 3) -> nn.Module:
    """PlainCNN; the first Ray worker that builds it is killed (SIGKILL) in the middle of its task."""
    if _on_cluster():
        marker = Path(os.environ[FAULTS_ENV]) / "network_died_once"
        if not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
    return PlainCNN(num_classes=num_classes)


@architecture("tiny_cluster_dies_always_cnn", num_classes=3, replace=True)
def dies_always_cnn(num_classes: int = 3) -> nn.Module:
    """PlainCNN; every Ray worker that builds it is killed, so retries cannot help."""
    if _on_cluster():
        os.kill(os.getpid(), signal.SIGKILL)
    return PlainCNN(num_classes=num_classes)
