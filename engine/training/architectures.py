"""The architectures training builds from scratch: ``mlp`` for numeric columns, ``small_cnn``
and ``tiny_cnn`` for images, in plain torch and without batch norm (group norm instead), so
that pipelined, spilled, data-parallel and model-hopping training compute exactly what plain
training computes.

Each network follows the model contract of :mod:`engine.inference.networks`: ``forward_features(x)`` gives
the penultimate vector and ``classifier`` maps it to logits.  It is also a *sequence of
layers* (:func:`training_layers`): ``features`` in order, then ``classifier``, which is what
GPipe cuts into stages and Hydra into shards.

:data:`BUILT_INS` lists them; ``udfs.architectures`` declares them (so the
catalog builds trained versions by name).  Built by name alone (``factory(num_classes=...)``),
``mlp`` takes its widths from the weights it is loaded with.

>>> import torch
>>> net = build_network("small_cnn", num_classes=10)
>>> net(torch.zeros(2, 3, 28, 28)).shape, net.forward_features(torch.zeros(2, 3, 28, 28)).shape
(torch.Size([2, 10]), torch.Size([2, 128]))
>>> mlp = build_network("mlp", num_classes=2, in_features=5)
>>> [name for name, _ in training_layers(mlp)]
['features.0', 'features.1', 'features.2', 'features.3', 'classifier']
>>> fresh = build_network("mlp", num_classes=2, hidden=(4,))   # as the catalog builds it
>>> fresh.load_state_dict(mlp.state_dict())
<All keys matched successfully>
>>> fresh.features[0].weight.shape
torch.Size([128, 5])
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from engine.errors import NotSupportedError, ProgrammingError


class LayeredClassifier(nn.Module):
    """``features`` (an ``nn.Sequential`` ending in the penultimate vector), then ``classifier``."""

    def __init__(self, features: nn.Sequential, classifier: nn.Module) -> None:
        super().__init__()
        self.features = features
        self.classifier = classifier

    def forward_features(self, x: Any) -> Any:
        """The penultimate vector of ``x``."""
        return self.features(x)

    def forward(self, x: Any) -> Any:
        """Logits of ``x``."""
        return self.classifier(self.features(x))

    def training_layers(self) -> list[tuple[str, nn.Module]]:
        """The layers in the order forward runs them, by state-dict prefix."""
        return [(f"features.{n}", m) for n, m in self.features.named_children()] + [("classifier", self.classifier)]


def mlp(num_classes: int = 2, in_features: int | None = None, hidden: tuple[int, ...] = (128, 64)) -> nn.Module:
    """Linear-ReLU layers of widths ``hidden``, then a linear classifier.  Without
    ``in_features`` (as the catalog builds it, by name) the network takes its widths, input and
    hidden, from the weights loaded into it."""
    if in_features is None:
        return WeightShapedMLP(num_classes, hidden)
    return LayeredClassifier(*_mlp_layers(in_features, hidden, num_classes))


def _mlp_layers(in_features: int, hidden: Sequence[int], num_classes: int) -> tuple[nn.Sequential, nn.Linear]:
    layers: list[nn.Module] = []
    width = in_features
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    return nn.Sequential(*layers), nn.Linear(width, num_classes)


class WeightShapedMLP(LayeredClassifier):
    """An ``mlp`` whose layer widths come from the state dict loaded into it (the catalog
    builds a trained version by its architecture's name alone, without its ``hidden``)."""

    def __init__(self, num_classes: int, hidden: tuple[int, ...]) -> None:
        super().__init__(*_mlp_layers(1, hidden, num_classes))

    def fit_to_weights(self, state_dict: Mapping[str, Any]) -> None:
        """Rebuild the layers to the shapes of ``state_dict``'s weights (when they are an mlp's:
        ``features.0.weight``, ``features.2.weight``, ..., ``classifier.weight``)."""
        linear = sorted((int(key.split(".")[1]), tuple(value.shape)) for key, value in state_dict.items()
                        if key.startswith("features.") and key.endswith(".weight") and key.count(".") == 2
                        and key.split(".")[1].isdigit())
        head = state_dict.get("classifier.weight")
        if (linear and head is not None and [i for i, _ in linear] == list(range(0, 2 * len(linear), 2))
                and all(len(shape) == 2 for _, shape in linear) and len(head.shape) == 2):
            hidden = [shape[0] for _, shape in linear]
            self.features, self.classifier = _mlp_layers(linear[0][1][1], hidden, int(head.shape[0]))

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """Rebuild the layers to the shapes of ``state_dict``'s weights, then load it."""
        self.fit_to_weights(state_dict)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


def small_cnn(num_classes: int = 10) -> nn.Module:
    """Two conv-groupnorm-ReLU-maxpool stages (16, 32 channels), pooled to 7x7, a 128-wide
    hidden layer and a linear classifier: about 0.2M parameters; any input size."""
    features = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.GroupNorm(4, 16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.GroupNorm(8, 32), nn.ReLU(), nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d((7, 7)), nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(),
    )
    return LayeredClassifier(features, nn.Linear(128, num_classes))


def tiny_cnn(num_classes: int = 10) -> nn.Module:
    """Three stride-2 conv-groupnorm-ReLU layers (8, 16, 32 channels) and global pooling:
    NoScope's specialized model, about 30x fewer multiply-adds than MobileNetV2 at 224x224."""
    features = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.GroupNorm(2, 8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.GroupNorm(4, 16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.GroupNorm(8, 32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )
    return LayeredClassifier(features, nn.Linear(32, num_classes))


@dataclass(frozen=True)
class TrainingArchitecture:
    """A built-in architecture of training: what input it takes and how it is built."""

    name: str
    kind: str                            # 'numeric' (feature vectors) or 'image' (HWC frames)
    factory: Callable[..., nn.Module]
    description: str


#: The built-ins, by name (one table; ``udfs.architectures`` registers them, so the catalog builds
#: trained versions by name).
BUILT_INS: dict[str, TrainingArchitecture] = {
    "mlp": TrainingArchitecture("mlp", "numeric", mlp, "linear-ReLU layers over numeric columns"),
    "small_cnn": TrainingArchitecture("small_cnn", "image", small_cnn, "two conv-groupnorm stages, 0.2M parameters"),
    "tiny_cnn": TrainingArchitecture("tiny_cnn", "image", tiny_cnn, "three stride-2 convs: a specialized model"),
}




def architecture_kind(name: str) -> str:
    """'numeric' or 'image': what the architecture ``name`` takes (registered ones take images)."""
    from engine.extensions import architectures

    spec = BUILT_INS.get(name)
    registered = architectures()
    if spec is not None:
        return spec.kind
    if name in registered:
        return "image"
    known = sorted(set(BUILT_INS) | set(registered))
    raise ProgrammingError(f"unknown architecture {name!r}; known architectures: {', '.join(known)}")


def build_network(name: str, num_classes: int, *, in_features: int | None = None,
                  hidden: tuple[int, ...] = (128, 64)) -> nn.Module:
    """A fresh network of architecture ``name`` (a built-in of training, or one registered
    with ``@architecture``), in training mode; initialized from torch's current RNG state."""
    from engine.extensions import build_network as build

    kind = architecture_kind(name)
    if name == "mlp":
        return mlp(num_classes, in_features=in_features, hidden=hidden)
    if name in BUILT_INS:
        return BUILT_INS[name].factory(num_classes=num_classes)
    assert kind == "image"
    return build(name, num_classes=num_classes).train()


def training_layers(network: nn.Module) -> list[tuple[str, nn.Module]]:
    """The network as a sequence of layers (GPipe's stages and Hydra's shards cut it);
    NotSupportedError for a network that does not declare one."""
    layers = getattr(network, "training_layers", None)
    if layers is None:
        raise NotSupportedError(
            f"{type(network).__name__} does not declare its layer sequence (training_layers()); pipelining and "
            f"spilling need one: use {', '.join(sorted(BUILT_INS))}"
        )
    return list(layers())
