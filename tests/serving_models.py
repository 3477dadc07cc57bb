"""Shared material of the serving tests: a numeric architecture whose predictions are known
(class ``high`` exactly when the normalized inputs sum to more than 0), its weights as
safetensors files, and a table of seeded synthetic rows with their true class.

The server imports this module (``mallard serve ... --import tests.serving_models``) so that
it knows the architecture, as a user's server imports the module declaring theirs.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from udfs.architectures import architecture

COLUMNS = ("a", "b", "c")
LABELS = ("low", "high")
MEAN = (1.0, -2.0, 0.5)
STD = (2.0, 4.0, 0.5)


class SumSignNet(nn.Module):
    """``features``: a linear layer (identity in the weights below); ``classifier``: logits
    (-s, s) of the sum s of the features, times a scale."""

    def __init__(self, num_classes: int = 2, width: int = len(COLUMNS)) -> None:
        super().__init__()
        self.features = nn.Linear(width, width)
        self.classifier = nn.Linear(width, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(x))


@architecture("tiny_sum_sign", num_classes=2, replace=True)
def tiny_sum_sign(num_classes: int = 2) -> nn.Module:
    """The serving tests' numeric architecture (three input columns)."""
    return SumSignNet(num_classes)


def sum_sign_weights(path: Path, scale: float = 1.0) -> Path:
    """Weights of SumSignNet: class ``high`` (1) when scale * sum(normalized inputs) > 0."""
    width = len(COLUMNS)
    state = {
        "features.weight": torch.eye(width), "features.bias": torch.zeros(width),
        "classifier.weight": torch.tensor([[-scale] * width, [scale] * width]), "classifier.bias": torch.zeros(2),
    }
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


CREATE_FARES = (
    "CREATE OR REPLACE MODEL fares FROM ? WITH (architecture = 'tiny_sum_sign', inputs = ['a', 'b', 'c'], "
    "labels = ['low', 'high'], mean = [1.0, -2.0, 0.5], std = [2.0, 4.0, 0.5])"
)


def expected_class(values: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """The class SumSignNet predicts for rows of (a, b, c)."""
    normalized = (values - np.array(MEAN)) / np.array(STD)
    return (scale * normalized.sum(axis=1) > 0).astype(np.int32)


def synthetic_rows(n: int, seed: int = 0) -> np.ndarray:
    """n rows of (a, b, c), seeded, spread around the normalization's mean."""
    rng = np.random.default_rng(seed)
    return np.array(MEAN) + rng.normal(size=(n, len(COLUMNS))) * np.array(STD)
