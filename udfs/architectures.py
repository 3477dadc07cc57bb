"""Model architectures in plain torch, and the decorator that registers one.

``CREATE MODEL ... WITH (architecture = 'mobilenet_v2')`` builds the network registered
under that name and loads the weights into it.  MobileNetV2 keeps torchvision's state-dict
keys, so torchvision's ImageNet weights load as they are.  A user adds an architecture the
same way the built-ins are added.  The network must offer

- ``forward_features(x)``: the pooled penultimate features, (n, F);
- ``classifier``: a *registered* submodule mapping them to logits (an ``nn.Module`` attribute,
  or a property returning one, such as ``self.fc``); exact and approximate modes trace
  ``classifier(forward_features(x))`` with torch.fx;
- state-dict keys equal to the weights file's (CREATE MODEL names the first key that differs).

To bring in a third-party model, subclass it (a wrapper module would prefix every key) and add
what is missing:

>>> import torch
>>> from torch import nn
>>> from udfs.architectures import architecture, build
>>> class ThirdPartyNet(nn.Module):            # as a library ships it: features unpooled, head named fc
...     def __init__(self, num_classes=1000):
...         super().__init__()
...         self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
...         self.fc = nn.Linear(8, num_classes)
...     def forward_features(self, x):
...         return self.body(x)
...     def forward(self, x):
...         return self.fc(self.forward_features(x).mean((2, 3)))
>>> @architecture("third_party_net", replace=True)
... class ForMallard(ThirdPartyNet):
...     def forward_features(self, x):             # pooled, as model functions expect
...         return super().forward_features(x).mean((2, 3))
...     @property
...     def classifier(self) -> nn.Module:         # a property: `self.classifier = self.fc` would add keys
...         return self.fc
...     def forward(self, x):
...         return self.classifier(self.forward_features(x))
>>> net = build("third_party_net", num_classes=4)
>>> net(torch.zeros(1, 3, 8, 8)).shape, sorted(net.state_dict()) == sorted(ThirdPartyNet(4).state_dict())
(torch.Size([1, 4]), True)
"""
from __future__ import annotations

from collections.abc import Callable

from torch import nn

from engine.extensions import (
    DECLARED,
    IMAGENET_MEAN,
    IMAGENET_STD,
    Architecture,
    build_network,
    check_network,
    declare_architecture,
)

__all__ = ["ARCHITECTURES", "IMAGENET_MEAN", "IMAGENET_STD", "Architecture", "architecture", "build", "check_network"]

#: Every declared architecture by name (the engine's table; the decorator below adds to it).
ARCHITECTURES = DECLARED.architectures


def architecture(name: str, *, input_size: tuple[int, int] | None = None,
                 mean: tuple[float, float, float] = IMAGENET_MEAN, std: tuple[float, float, float] = IMAGENET_STD,
                 num_classes: int = 1000, replace: bool = False) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Declare ``factory(num_classes=...) -> nn.Module`` as architecture ``name``
    (through :func:`engine.extensions.declare_architecture`)."""
    if callable(name):
        raise TypeError('architecture needs its name: write @architecture("my_net")')
    key = name.lower()

    def register(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        declare_architecture(Architecture(key, factory, input_size, mean, std, num_classes), replace=replace)
        return factory

    return register


def build(name: str, num_classes: int | None = None) -> nn.Module:
    """A fresh, untrained network of a declared architecture, in eval mode
    (:func:`engine.extensions.build_network`)."""
    return build_network(name, num_classes)


# MobileNetV2 (Sandler et al. 2018), module names as torchvision's -------------------------

def _make_divisible(value: float, divisor: int = 8) -> int:
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class ConvBNReLU6(nn.Sequential):
    """Conv2d, BatchNorm2d, ReLU6 (torchvision's Conv2dNormActivation keys: 0, 1)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=False),
        )


class InvertedResidual(nn.Module):
    """Expand (1x1), depthwise (3x3), project (1x1, linear); a residual add when shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = round(cin * expand_ratio)
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU6(cin, hidden, kernel=1))
        layers += [
            ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, 1, 0, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 with torchvision's layout: ``features``, global average pool, ``classifier``."""

    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0) -> None:
        super().__init__()
        cin = _make_divisible(32 * width_mult)
        self.last_channel = _make_divisible(1280 * max(1.0, width_mult))
        features: list[nn.Module] = [ConvBNReLU6(3, cin, stride=2)]
        for t, c, n, s in self.SETTINGS:
            cout = _make_divisible(c * width_mult)
            for i in range(n):
                features.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        features.append(ConvBNReLU6(cin, self.last_channel, kernel=1))
        self.features = nn.Sequential(*features)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(self.last_channel, num_classes))

    def forward_features(self, x):
        return self.pool(self.features(x)).flatten(1)

    def forward(self, x):
        return self.classifier(self.forward_features(x))


@architecture("mobilenet_v2")
def mobilenet_v2(num_classes: int = 1000) -> nn.Module:
    """MobileNetV2, 3.5M parameters; loads torchvision's ImageNet state dict as is."""
    return MobileNetV2(num_classes=num_classes)


# A small ResNet (He et al. 2016): basic blocks, 4 stages ---------------------------------

class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class SmallResNet(nn.Module):
    """ResNet with basic blocks and torchvision's key names (conv1, bn1, layer1..4, fc)."""

    def __init__(self, num_classes: int = 1000, widths: tuple[int, ...] = (32, 64, 128, 256),
                 blocks: tuple[int, ...] = (1, 1, 1, 1)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=False)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = widths[0]
        for index, (width, count) in enumerate(zip(widths, blocks), start=1):
            stage = [BasicBlock(cin if i == 0 else width, width, 1 if (index == 1 or i) else 2) for i in range(count)]
            setattr(self, f"layer{index}", nn.Sequential(*stage))
            cin = width
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward_features(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # type: ignore[operator]
        return self.avgpool(x).flatten(1)

    @property
    def classifier(self) -> nn.Module:
        return self.fc

    def forward(self, x):
        return self.fc(self.forward_features(x))


@architecture("resnet_small")
def resnet_small(num_classes: int = 1000) -> nn.Module:
    """A four-stage ResNet with one basic block per stage (widths 32-256)."""
    return SmallResNet(num_classes=num_classes)


# A small plain CNN -------------------------------------------------------------------------

class PlainCNN(nn.Module):
    """Conv-BN-ReLU stages with max pooling, global average pooling and a linear classifier."""

    def __init__(self, num_classes: int = 10, widths: tuple[int, ...] = (16, 32, 64)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for width in widths:
            layers += [nn.Conv2d(cin, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2)]
            cin = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(cin, num_classes)

    def forward_features(self, x):
        return self.pool(self.features(x)).flatten(1)

    def forward(self, x):
        return self.classifier(self.forward_features(x))


@architecture("plain_cnn", num_classes=10)
def plain_cnn(num_classes: int = 10) -> nn.Module:
    """Three conv-BN-ReLU-maxpool stages (16, 32, 64 channels)."""
    return PlainCNN(num_classes=num_classes)
