"""Occlusion maps: batched incremental inference over all patch positions equals naive
re-inference of every occluded image."""
from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from engine.errors import DataError, ProgrammingError
from engine.inference.incremental import occlusion_map, plot_occlusion
from tests.conftest import data_file, imagenet_mobilenet
from tests.test_incremental_layers import randomize_batch_norms
from udfs.architectures import IMAGENET_MEAN, IMAGENET_STD, build

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    from engine.video import decode_frames

    _, frame = next(decode_frames(str(data_file("vtest.avi")), width=72, height=64, limit=1))
    return frame


def test_incremental_equals_naive_on_mobilenet(image: np.ndarray) -> None:
    model = imagenet_mobilenet()
    fast = occlusion_map(model, IMAGENET_MEAN, IMAGENET_STD, image, patch=16, stride=8, batch_size=16)
    slow = occlusion_map(model, IMAGENET_MEAN, IMAGENET_STD, image, patch=16, stride=8, method="naive")
    assert fast.shape == ((64 - 16) // 8 + 1, (72 - 16) // 8 + 1)
    assert np.abs(fast - slow).max() < 1e-4
    assert np.abs(fast).max() > 1e-3          # occluding does change the prediction somewhere


def test_incremental_equals_naive_with_a_target_and_a_residual_network(image: np.ndarray) -> None:
    model = randomize_batch_norms(build("resnet_small", num_classes=6))
    args = (model, IMAGENET_MEAN, IMAGENET_STD, image[:45, :37].copy())
    fast = occlusion_map(*args, patch=7, stride=3, target=2)
    slow = occlusion_map(*args, patch=7, stride=3, target=2, method="naive")
    assert np.abs(fast - slow).max() < 1e-4


def test_projective_field_threshold_approximates(image: np.ndarray) -> None:
    model = randomize_batch_norms(build("resnet_small", num_classes=6))
    exact = occlusion_map(model, IMAGENET_MEAN, IMAGENET_STD, image, patch=16, stride=8)
    cropped = occlusion_map(model, IMAGENET_MEAN, IMAGENET_STD, image, patch=16, stride=8, tau=0.5)
    assert cropped.shape == exact.shape
    assert np.abs(cropped - exact).max() > 0 and np.corrcoef(exact.ravel(), cropped.ravel())[0, 1] > 0.3


def test_bad_arguments(image: np.ndarray) -> None:
    model = build("plain_cnn")
    with pytest.raises(DataError, match="uint8"):
        occlusion_map(model, IMAGENET_MEAN, IMAGENET_STD, image.astype(np.float32))
    with pytest.raises(DataError, match="patch"):
        occlusion_map(model, IMAGENET_MEAN, IMAGENET_STD, image, patch=100)
    with pytest.raises(ProgrammingError, match="method"):
        occlusion_map(model, IMAGENET_MEAN, IMAGENET_STD, image, method="fast")
    with pytest.raises(DataError, match="target"):
        occlusion_map(model, IMAGENET_MEAN, IMAGENET_STD, image, patch=32, stride=32, target=99)


def test_plot_occlusion(image: np.ndarray) -> None:
    heatmap = np.random.default_rng(0).random((7, 8))
    ax = plot_occlusion(image, heatmap, patch=16, stride=8)
    assert len(ax.images) == 2
    assert ax.images[1].get_extent()[1] > ax.images[1].get_extent()[0]
