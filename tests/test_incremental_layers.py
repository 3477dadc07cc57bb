"""Exactness layer by layer: every supported layer, and every layer output of the built-in
architectures, equals the stock torch result on the frame the engine computed on."""
from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import fx, nn

from engine.errors import NotSupportedError
from engine.inference.incremental.execution import BatchForward
from engine.inference.incremental.graph import LayerGraph
from tests.conftest import imagenet_mobilenet
from udfs.architectures import build

TOLERANCE = 1e-5


def randomize_batch_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial eval statistics, so folding batch-norm is exercised."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5, generator=generator)
            module.running_var.uniform_(0.5, 2.0, generator=generator)
            module.weight.data.uniform_(0.5, 1.5, generator=generator)
            module.bias.data.uniform_(-0.3, 0.3, generator=generator)
    return model.eval()


class Probe(nn.Module):
    """One layer under test, then global pooling and a classifier."""

    def __init__(self, body: nn.Module, channels: int) -> None:
        super().__init__()
        self.body = body
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, 4)

    def forward_features(self, x):  # type: ignore[no-untyped-def]
        return self.pool(self.body(x)).flatten(1)

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.classifier(self.forward_features(x))


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.branch = nn.Sequential(nn.Conv2d(3, 3, 3, 1, 1), nn.BatchNorm2d(3))

    def forward(self, x):  # type: ignore[no-untyped-def]
        return x + self.branch(x)


class ResidualDownsample(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.branch = nn.Sequential(nn.Conv2d(3, 6, 3, 2, 1), nn.BatchNorm2d(6), nn.ReLU(), nn.Conv2d(6, 6, 3, 1, 1))
        self.down = nn.Conv2d(3, 6, 1, 2)

    def forward(self, x):  # type: ignore[no-untyped-def]
        return F.relu(self.branch(x) + self.down(x))


class Functional(nn.Module):
    def forward(self, x):  # type: ignore[no-untyped-def]
        return F.max_pool2d(F.relu6(x), 3, 2, 1)


LAYERS: dict[str, Callable[[], tuple[nn.Module, int]]] = {
    "conv3x3": lambda: (nn.Conv2d(3, 8, 3, 1, 1), 8),
    "conv3x3_stride2": lambda: (nn.Conv2d(3, 8, 3, 2, 1), 8),
    "conv5x5_stride2_groups3": lambda: (nn.Conv2d(3, 6, 5, 2, 2, groups=3), 6),
    "conv7x5_stride2x1": lambda: (nn.Conv2d(3, 4, (7, 5), (2, 1), (3, 2)), 4),
    "conv1x1_stride2": lambda: (nn.Conv2d(3, 8, 1, 2), 8),
    "conv_valid_padding": lambda: (nn.Conv2d(3, 5, 3, 1, "valid"), 5),
    "depthwise": lambda: (nn.Sequential(nn.Conv2d(3, 12, 1), nn.BatchNorm2d(12), nn.ReLU6(),
                                        nn.Conv2d(12, 12, 3, 2, 1, groups=12)), 12),
    "conv_bn_relu6": lambda: (nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6()), 8),
    "batchnorm_alone": lambda: (nn.BatchNorm2d(3), 3),
    "relu_alone": lambda: (nn.ReLU(), 3),
    "maxpool3_stride2": lambda: (nn.MaxPool2d(3, 2, 1), 3),
    "maxpool2_ceil": lambda: (nn.MaxPool2d(2, 2, ceil_mode=True), 3),
    "avgpool3_exclude_pad": lambda: (nn.AvgPool2d(3, 2, 1, count_include_pad=False), 3),
    "avgpool3_include_pad": lambda: (nn.AvgPool2d(3, 2, 1), 3),
    "residual_add": lambda: (Residual(), 3),
    "residual_downsample_relu": lambda: (ResidualDownsample(), 6),
    "functional_relu6_maxpool": lambda: (Functional(), 3),
}


def several_patches(frames: int, height: int, width: int) -> torch.Tensor:
    """Masks with patches on the borders, odd 7x5 patches, single pixels and several per frame."""
    mask = torch.zeros(frames, height, width, dtype=torch.bool)
    mask[0, 0:7, 0:5] = True                               # top-left corner
    mask[0, height - 5:, width - 7:] = True                # bottom-right corner, same frame
    mask[1, height // 2:height // 2 + 7, width - 5:] = True  # right border
    mask[1, 3, 3] = True                                   # a single pixel
    if frames > 2:
        mask[2, :, 10:12] = True                           # a full-height stripe
    return mask


def composites(base: torch.Tensor, frames: torch.Tensor, mask: torch.Tensor, chain: bool) -> torch.Tensor:
    """The frames the engine computes on: changed positions pasted on the base (or the previous composite)."""
    out, current = [], base
    for frame, changed in zip(frames, mask):
        reference = current if chain else base
        current = torch.where(changed.unsqueeze(-1), frame, reference)
        out.append(current)
    return torch.stack(out)


def traced_outputs(graph: LayerGraph, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every traced node's output (NCHW) for input ``x`` (NHWC)."""
    values: dict[str, torch.Tensor] = {}

    class Recorder(fx.Interpreter):
        def run_node(self, n: fx.Node):  # type: ignore[no-untyped-def]
            result = super().run_node(n)
            values[n.name] = result
            return result

    Recorder(graph.head.module).run(x.permute(0, 3, 1, 2).contiguous())
    return values


def check_every_layer(model: nn.Module, height: int, width: int, chain: bool, route: str = "auto",
                      tile: int = 8, tolerance: float = TOLERANCE, dense_input: bool = False) -> None:
    graph = LayerGraph.trace(model, height, width)
    forward = BatchForward(graph, thresholds={node.name: 0.0 for node in graph.nodes}, tile=tile, route=route)
    generator = torch.Generator().manual_seed(1)
    base = torch.randn(1, height, width, 3, generator=generator)
    frames = torch.randn(3, height, width, 3, generator=generator)
    mask = several_patches(3, height, width)
    computed = composites(base[0], frames, mask, chain)
    with torch.inference_mode():
        forward.run_dense(base)
        pooled, macs = forward.run_patches(computed[mask], mask, chain=chain,
                                           dense_input=computed.reshape(-1, 3) if dense_input else None)
        reference = model.forward_features(computed.permute(0, 3, 1, 2))
        assert (pooled - reference).abs().max() < tolerance
        assert (macs < graph.macs_full).all()
        truth = traced_outputs(graph, computed[-1:])
        for node in graph.nodes:
            expected = truth[node.source][0].permute(1, 2, 0).reshape(-1, node.shape[0])
            error = (forward.stores[node.name].base - expected).abs().max()
            assert error < tolerance, f"{node.name} ({node.kind}) differs by {error}"


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("chain", [True, False], ids=["chain", "common_base"])
def test_single_layer_is_exact(name: str, chain: bool) -> None:
    body, channels = LAYERS[name]()
    model = randomize_batch_norms(Probe(body, channels))
    check_every_layer(model, 45, 37, chain)


@pytest.mark.parametrize("route", ["tiles", "dense", "shifts", "boxes"])
@pytest.mark.parametrize("name", ["conv7x5_stride2x1", "depthwise", "maxpool2_ceil", "avgpool3_exclude_pad"])
def test_every_route_of_windowed_layers_is_exact(name: str, route: str) -> None:
    body, channels = LAYERS[name]()
    model = randomize_batch_norms(Probe(body, channels))
    check_every_layer(model, 45, 37, chain=True, route=route, tile=4)


@pytest.mark.parametrize("name", ["conv3x3_stride2", "conv7x5_stride2x1", "conv_valid_padding", "depthwise"])
def test_convolutions_of_the_image_gather_windows_exactly(name: str) -> None:
    body, channels = LAYERS[name]()
    model = randomize_batch_norms(Probe(body, channels))
    check_every_layer(model, 45, 37, chain=True, dense_input=True)


@pytest.mark.parametrize("architecture", ["plain_cnn", "resnet_small"])
def test_every_layer_of_small_architectures_is_exact(architecture: str) -> None:
    model = randomize_batch_norms(build(architecture, num_classes=5))
    check_every_layer(model, 67, 61, chain=True)
    check_every_layer(model, 67, 61, chain=False, route="tiles")


def test_every_layer_of_mobilenet_v2_is_exact_on_an_odd_frame() -> None:
    # 52 convolutions deep, values up to ~30: float32 rounding of folded batch-norm reaches 1e-5
    check_every_layer(imagenet_mobilenet(), 69, 53, chain=True, tolerance=1e-4)


def test_unsupported_layers_are_named() -> None:
    model = Probe(nn.Sequential(nn.Conv2d(3, 4, 3, padding=2, dilation=2)), 4).eval()
    with pytest.raises(NotSupportedError, match="dilation"):
        LayerGraph.trace(model, 16, 16)
    model = Probe(nn.Sequential(nn.Upsample(scale_factor=2)), 3).eval()
    with pytest.raises(NotSupportedError, match="Upsample"):
        LayerGraph.trace(model, 16, 16)
    with pytest.raises(NotSupportedError, match="eval mode"):
        LayerGraph.trace(Probe(nn.ReLU(), 3).train(), 16, 16)
