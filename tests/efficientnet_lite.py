"""EfficientNet-Lite0 in plain torch, laid out as a third-party library ships it: module names of
the TF/timm checkpoints (``conv_stem``, ``blocks.i.j.conv_dw``, ``conv_head``, ``classifier``),
TF-"same" padding as ``nn.ZeroPad2d`` before every strided convolution (as TF exports have),
batch-norm after every convolution outside any ``nn.Sequential`` pair, and ``forward_features``
returning the feature map before pooling (timm's convention, not Mallard's).
"""
from __future__ import annotations

import torch
from torch import nn

#: (expand ratio, kernel, stride, output channels, repeats) of the seven stages (Tan & Le 2019).
STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
          (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))


def same_padding(kernel: int, stride: int) -> nn.Module:
    """TF 'SAME' padding for even input sizes: more on the bottom and right when striding."""
    if stride == 1:
        return nn.ZeroPad2d(kernel // 2)
    total = max(kernel - stride, 0)
    return nn.ZeroPad2d((total // 2, total - total // 2, total // 2, total - total // 2))


class MBConv(nn.Module):
    """Inverted residual without squeeze-excitation (the Lite variant), ReLU6."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.has_expansion = expand != 1
        if self.has_expansion:
            self.conv_pw = nn.Conv2d(cin, hidden, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(hidden)
        self.pad = same_padding(kernel, stride)
        self.conv_dw = nn.Conv2d(hidden, hidden, kernel, stride, groups=hidden, bias=False)
        self.bn2 = nn.BatchNorm2d(hidden)
        self.conv_pwl = nn.Conv2d(hidden, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.act = nn.ReLU6()
        self.residual = stride == 1 and cin == cout

    def forward(self, x):  # type: ignore[no-untyped-def]
        y = self.act(self.bn1(self.conv_pw(x))) if self.has_expansion else x
        y = self.act(self.bn2(self.conv_dw(self.pad(y))))
        y = self.bn3(self.conv_pwl(y))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """The third-party model: ``forward_features`` is the feature map, ``forward`` the logits."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.pad = same_padding(3, 2)
        self.conv_stem = nn.Conv2d(3, 32, 3, 2, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.act = nn.ReLU6()
        blocks, cin = [], 32
        for expand, kernel, stride, cout, repeats in STAGES:
            stage = [MBConv(cin if i == 0 else cout, cout, expand, kernel, stride if i == 0 else 1) for i in range(repeats)]
            blocks.append(nn.Sequential(*stage))
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.conv_head = nn.Conv2d(cin, 1280, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(1280)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.2)
        self.classifier = nn.Linear(1280, num_classes)

    def forward_features(self, x):  # type: ignore[no-untyped-def]
        x = self.act(self.bn1(self.conv_stem(self.pad(x))))
        return self.act(self.bn2(self.conv_head(self.blocks(x))))

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.classifier(self.dropout(self.global_pool(self.forward_features(x)).flatten(1)))


def random_weights(model: nn.Module, seed: int = 0) -> nn.Module:
    """Seeded random weights and non-trivial batch-norm statistics (so folding is exercised)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("running_var"):
                tensor.uniform_(0.5, 2.0, generator=generator)
            elif name.endswith("num_batches_tracked"):
                continue
            elif tensor.dim() > 1:
                fan_in = tensor[0].numel()
                tensor.normal_(0.0, (2.0 / fan_in) ** 0.5, generator=generator)
            else:
                tensor.uniform_(-0.2, 0.2, generator=generator)
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5, generator=generator)
    return model.eval()
