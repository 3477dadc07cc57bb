"""Model functions over frames: the computation behind ``<model>(frame)``,
``features(<model>, frame)`` and ``logits(<model>, frame)`` in full inference.

Frames are (n, H, W, 3) uint8 RGB arrays (as frames tables store them); a network from
:mod:`udfs.architectures` sees them scaled to [0, 1] and normalized per channel.  The
prediction of a frame is its top-1 class and that class's softmax probability.

>>> import numpy as np, torch
>>> from engine.extensions import build_network as build
>>> torch.manual_seed(0) and None
>>> net = build("plain_cnn", num_classes=3)
>>> frames = np.zeros((2, 16, 16, 3), dtype=np.uint8)
>>> logits, features = forward_frames(net, frames, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
>>> tuple(logits.shape), tuple(features.shape)
((2, 3), (2, 64))
>>> class_ids, scores = top1(logits)
>>> bool((scores > 0).all() and (scores <= 1).all())
True
>>> count_macs(net, (16, 16)) > 0
True
"""
from __future__ import annotations

import copy
import itertools
import warnings
import weakref
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn


def normalize_frames(frames: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(n, H, W, 3) uint8 -> (n, 3, H, W) float32, scaled to [0, 1] and normalized per channel.

    The tensor keeps the pixels' channels-last layout (a permuted view, as plain PyTorch code
    over HWC frames has it): convolutions then run channels-last, which is faster on CPUs.
    """
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).to(torch.float32).div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return x.sub_(m).div_(s)


#: Pixels a dense network call takes at once: batches of larger frames are split (on CPUs one
#: 576x768 frame at a time runs about 1.3x faster than 16 together: the activations stay in cache).
DENSE_PIXELS = 8 * 224 * 224


def dense_batch(height: int, width: int) -> int:
    """Frames of this size per dense network call.

    >>> dense_batch(224, 224), dense_batch(576, 768)
    (8, 1)
    """
    return max(1, DENSE_PIXELS // (height * width))


def forward_frames(network: nn.Module, frames: np.ndarray, mean: Sequence[float],
                   std: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Full inference of a batch of frames: (logits (n, C), features (n, F)), in calls of
    :func:`dense_batch` frames.  ``network`` is an architecture's network or its
    :func:`inference_network`."""
    step = dense_batch(frames.shape[1], frames.shape[2])
    logits, features = [], []
    with torch.inference_mode():
        for start in range(0, len(frames), step):
            x = normalize_frames(frames[start:start + step], mean, std)
            if isinstance(network, InferenceNetwork):
                part_logits, part_features = network(x)
            else:
                part_features = penultimate(network, x)
                part_logits = network.classifier(part_features)  # type: ignore[operator]
            logits.append(part_logits)
            features.append(part_features)
        return torch.cat(logits), torch.cat(features)


def penultimate(network: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The penultimate feature vector: ``forward_features`` (after global pooling)."""
    forward_features = getattr(network, "forward_features", None)
    if forward_features is None:
        raise TypeError(f"{type(network).__name__} has no forward_features(x); model functions need one")
    return forward_features(x)


class Outputs(nn.Module):
    """Logits and penultimate features of an architecture's network in one forward pass (the
    form torch.fx traces)."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x):
        features = self.network.forward_features(x)  # type: ignore[operator]
        return self.network.classifier(features), features  # type: ignore[operator]


class InferenceNetwork(nn.Module):
    """A network made for inference: ``forward(x) -> (logits, features)``; ``folded`` counts the
    batch-norm layers folded into convolutions and ``traced`` says whether torch.fx saw the
    whole graph (else only ``nn.Sequential`` conv -> batch-norm pairs were folded)."""

    def __init__(self, module: nn.Module, folded: int, traced: bool) -> None:
        super().__init__()
        self.module = module
        self.folded = folded
        self.traced = traced

    def forward(self, x):
        return self.module(x)


_INFERENCE_NETWORKS: weakref.WeakKeyDictionary[nn.Module, InferenceNetwork] = weakref.WeakKeyDictionary()


def inference_network(network: nn.Module) -> InferenceNetwork:
    """A copy of ``network`` made for inference: batch-norm folded into the convolution before
    it, weights channels-last.  Same function (logits agree within about 1e-5), fewer passes
    over memory: MobileNetV2 at 224x224 runs about 1.3x faster on one CPU thread.

    The network is traced with torch.fx and every ``BatchNorm2d`` whose input is a ``Conv2d``
    used nowhere else is folded into it (``torch.fx.experimental.optimization.fuse``), wherever
    the two sit in the module tree; a network torch.fx cannot trace gets the folding of
    ``nn.Sequential`` conv -> batch-norm pairs only.  Built once per network (cached while the
    network lives).

    >>> from engine.extensions import build_network as build
    >>> net = build("mobilenet_v2").eval()
    >>> folded = inference_network(net)
    >>> any(isinstance(m, nn.BatchNorm2d) for m in folded.modules()), folded.folded, inference_network(net) is folded
    (False, 52, True)
    """
    cached = _INFERENCE_NETWORKS.get(network)
    if cached is not None:
        return cached
    with warnings.catch_warnings():   # the module's import touches deprecated torch.jit names
        warnings.simplefilter("ignore", DeprecationWarning)
        from torch.fx.experimental.optimization import fuse

    copied = copy.deepcopy(network).eval()
    before = _batch_norms(copied)
    try:
        module: nn.Module = fuse(Outputs(copied), inplace=True)
        traced = True
    except Exception:  # torch.fx cannot trace data-dependent control flow; fold what the tree shows
        module, traced = Outputs(_fold_sequential(copied)), False
    folded = InferenceNetwork(module.to(memory_format=torch.channels_last),  # type: ignore[call-overload]
                               before - _batch_norms(module), traced)
    _INFERENCE_NETWORKS[network] = folded
    return folded


def _batch_norms(module: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in module.modules())


def _fold_sequential(network: nn.Module) -> nn.Module:
    """Fold every ``Conv2d`` directly followed by ``BatchNorm2d`` in an ``nn.Sequential``."""
    for module in network.modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module._modules.items())
        for (conv_name, conv), (bn_name, bn) in itertools.pairwise(children):
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats:
                module._modules[conv_name] = torch.nn.utils.fusion.fuse_conv_bn_eval(conv, bn)
                module._modules[bn_name] = nn.Identity()
    return network


def top1(logits: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Top-1 class id and its softmax probability, per row: the probability of the largest
    logit m is 1 / sum(exp(logits - m)), so no full softmax is made (nor a float64 copy; the
    sum is at least 1, so float32 keeps about 7 digits).

    >>> ids, scores = top1(torch.tensor([[0.0, 2.0, 1.0], [3.0, 3.0, -1.0]]))
    >>> ids.tolist(), [round(s, 4) for s in scores.tolist()]
    ([1, 0], [0.6652, 0.4955])
    """
    largest, class_ids = logits.max(dim=1)
    scores = 1.0 / torch.exp(logits - largest[:, None]).sum(dim=1)
    return class_ids.numpy().astype(np.int32), scores.numpy().astype(np.float64)


def count_macs(network: nn.Module, size: tuple[int, int]) -> int:
    """Multiply-adds of full inference on one frame of ``size`` (height, width).

    Counts convolutions and linear layers, run on torch's meta device (no arithmetic).
    """
    model = copy.deepcopy(network).to("meta")
    total = 0

    def conv_hook(module: nn.Conv2d, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        total += output.shape[1] * output.shape[2] * output.shape[3] * (module.in_channels // module.groups) * kh * kw

    def linear_hook(module: nn.Linear, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        total += module.in_features * module.out_features

    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            module.register_forward_hook(conv_hook)
        elif isinstance(module, nn.Linear):
            module.register_forward_hook(linear_hook)
    with torch.inference_mode():
        x = torch.zeros((1, 3, size[0], size[1]), device="meta")
        model.classifier(penultimate(model, x))  # type: ignore[operator]
    return int(total)
