"""The layer graph of a model, traced with torch.fx, in the form the engine propagates patches through.

The spatial part (from the input image to the global pooling) becomes a list of layers of
:mod:`.layers` in topological order, with batch-norm and activations folded into the
convolution before them; the rest (flatten, dropout, linear: the head) runs as traced, on
the pooled vectors.  The model must offer ``forward_features(x)`` and ``classifier`` (the
architectures of :mod:`udfs.architectures` do), or else its own ``forward``, whose features
are then the pooled vector.

>>> from udfs.architectures import build
>>> graph = LayerGraph.trace(build("plain_cnn", num_classes=3), height=32, width=32)
>>> [node.kind for node in graph.nodes]
['input', 'conv', 'pool', 'conv', 'pool', 'conv', 'pool']
>>> graph.nodes[-1].shape, graph.macs_full
((64, 4, 4), 2801856)
"""
from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import fx, nn

from engine.errors import NotSupportedError
from engine.inference.incremental.layers import Add, Conv, Pointwise, Pool, PostOps, Shape
from engine.inference.networks import Outputs

Layer = Conv | Pool | Pointwise | Add


@dataclass
class GraphNode:
    """One layer output (a value) of the spatial part."""

    name: str
    layer: Layer | None          # None for the input image
    inputs: list[str]
    shape: Shape = (0, 0, 0)
    source: str = ""             # the traced node whose output this value is (after fusion: the last one)

    def __post_init__(self) -> None:
        self.source = self.source or self.name

    @property
    def kind(self) -> str:
        return "input" if self.layer is None else type(self.layer).__name__.lower()


@dataclass
class Head:
    """The traced nodes after global pooling, run on the pooled vectors."""

    module: fx.GraphModule
    pool_node: fx.Node
    keepdim: bool
    nodes: list[fx.Node]
    output: Any
    has_features: bool
    linear_macs: int

    def __call__(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, features) from the pooled (n, C) vectors."""
        env: dict[fx.Node, Any] = {self.pool_node: pooled.view(*pooled.shape, 1, 1) if self.keepdim else pooled}
        modules = dict(self.module.named_modules())

        def load(value: Any) -> Any:
            return fx.node.map_arg(value, lambda n: env[n])

        for node in self.nodes:
            args, kwargs = load(node.args), load(node.kwargs)
            if node.op == "call_module":
                env[node] = modules[node.target](*args, **kwargs)
            elif node.op == "call_function":
                env[node] = cast(Callable[..., Any], node.target)(*args, **kwargs)
            elif node.op == "call_method":
                env[node] = getattr(args[0], str(node.target))(*args[1:], **kwargs)
            elif node.op == "get_attr":
                env[node] = _attribute(self.module, str(node.target))
        result = load(self.output)
        if self.has_features:
            return result[0], result[1]
        return result, pooled


def _attribute(module: nn.Module, target: str) -> Any:
    value: Any = module
    for part in target.split("."):
        value = getattr(value, part)
    return value


@dataclass
class LayerGraph:
    """The spatial layers of a model for one input size, and its head."""

    nodes: list[GraphNode]
    output: str
    head: Head
    height: int
    width: int
    users: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def trace(cls, model: nn.Module, height: int, width: int) -> LayerGraph:
        """Trace ``model`` (in eval mode) for inputs of ``height`` x ``width`` pixels."""
        if model.training:
            raise NotSupportedError("incremental inference needs the model in eval mode (call model.eval())")
        has_features = hasattr(model, "forward_features") and hasattr(model, "classifier")
        try:
            module = fx.symbolic_trace(Outputs(model) if has_features else model)
        except Exception as e:  # torch.fx raises many kinds on data-dependent control flow
            raise NotSupportedError(f"incremental inference could not trace {type(model).__name__} with "
                                    f"torch.fx: {e}") from e
        builder = _Builder(module)
        nodes, output, head = builder.build(has_features)
        graph = cls(nodes, output, head, height, width)
        graph._fuse()
        graph._infer_shapes()
        return graph

    @property
    def by_name(self) -> dict[str, GraphNode]:
        return {node.name: node for node in self.nodes}

    @property
    def macs_full(self) -> int:
        """Multiply-adds of full inference on one frame (convolutions and linear layers)."""
        return sum(self.macs_per_position(node) * node.shape[1] * node.shape[2] for node in self.nodes) \
            + self.head.linear_macs

    @staticmethod
    def macs_per_position(node: GraphNode) -> int:
        return 0 if node.layer is None else node.layer.macs_per_position

    def reads_context(self, name: str) -> bool:
        """Whether some consumer reads ``name`` outside its changed positions."""
        if name == self.output:
            return True
        by_name = self.by_name
        return any(by_name[user].layer.reads_context for user in self.users.get(name, []))  # type: ignore[union-attr]

    def _fuse(self) -> None:
        """Fold pointwise layers into the single producer before them."""
        self._count_users()
        by_name = self.by_name
        alias: dict[str, str] = {}
        kept: list[GraphNode] = []
        for node in self.nodes:
            node.inputs = [alias.get(i, i) for i in node.inputs]
            producer = by_name.get(node.inputs[0]) if node.inputs else None
            if (isinstance(node.layer, Pointwise) and producer is not None and producer.layer is not None
                    and len(self.users[producer.name]) == 1 and producer.name != self.output):
                _merge(producer.layer, node.layer.post)
                producer.source = node.source
                alias[node.name] = producer.name
                self.users[producer.name] = self.users.get(node.name, [])
                if node.name == self.output:
                    self.output = producer.name
                continue
            kept.append(node)
        self.nodes = kept
        self._count_users()

    def _count_users(self) -> None:
        self.users = {node.name: [] for node in self.nodes}
        for node in self.nodes:
            for name in node.inputs:
                self.users[name].append(node.name)

    def _infer_shapes(self) -> None:
        shapes: dict[str, Shape] = {}
        for node in self.nodes:
            if node.layer is None:
                node.shape = (3, self.height, self.width)
            else:
                inputs = [shapes[i] for i in node.inputs]
                node.shape = node.layer.output_shape(inputs)
                if node.shape[1] < 1 or node.shape[2] < 1:
                    raise NotSupportedError(f"input of {self.height}x{self.width} is too small for layer {node.name}")
                node.layer.prepare(inputs[0])
            shapes[node.name] = node.shape


def _merge(layer: Layer, post: PostOps) -> None:
    ops = list(post.ops)
    if isinstance(layer, Conv) and not layer.post.ops:
        while ops and ops[0][0] == "affine":
            _, scale, shift = ops.pop(0)
            layer.fold_affine(scale, shift)  # type: ignore[arg-type]
    layer.post = layer.post.then(PostOps(ops))


_CLAMPS: dict[Any, Callable[..., tuple[float, float]]] = {
    nn.ReLU: lambda m: (0.0, math.inf),
    nn.ReLU6: lambda m: (0.0, 6.0),
    nn.Hardtanh: lambda m: (float(m.min_val), float(m.max_val)),
}
_PASSTHROUGH = (nn.Identity, nn.Dropout, nn.Dropout2d)
_ADDS = (operator.add, operator.iadd, torch.add)
_FUNCTION_CLAMPS: dict[Any, Callable[..., tuple[float, float]]] = {
    F.relu: lambda *a, **k: (0.0, math.inf),
    torch.relu: lambda *a, **k: (0.0, math.inf),
    F.relu6: lambda *a, **k: (0.0, 6.0),
    F.hardtanh: lambda x, min_val=-1.0, max_val=1.0, *a, **k: (float(min_val), float(max_val)),
}

_FUNCTION_POOLS: dict[str, tuple[type[nn.Module], tuple[str, ...]]] = {
    "max_pool2d": (nn.MaxPool2d, ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")),
    "_max_pool2d": (nn.MaxPool2d, ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")),
    "avg_pool2d": (nn.AvgPool2d, ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                                  "divisor_override")),
}


class _Builder:
    """Walks the traced graph once, sorting nodes into spatial layers and the head."""

    def __init__(self, module: fx.GraphModule) -> None:
        self.module = module
        self.modules = dict(module.named_modules())
        self.values: dict[fx.Node, str] = {}      # fx node -> spatial value name
        self.nodes: list[GraphNode] = []
        self.head_nodes: list[fx.Node] = []
        self.pool: tuple[fx.Node, str, bool] | None = None
        self.linear_macs = 0

    def build(self, has_features: bool) -> tuple[list[GraphNode], str, Head]:
        output: Any = None
        for node in self.module.graph.nodes:
            if node.op == "placeholder":
                if self.values:
                    raise NotSupportedError("incremental inference needs a model with one input")
                self.values[node] = "input"
                self.nodes.append(GraphNode("input", None, [], source=node.name))
            elif node.op == "output":
                output = node.args[0]
            elif self._spatial_args(node):
                self._spatial(node)
            else:
                self._head(node)
        if self.pool is None:
            raise NotSupportedError("incremental inference needs a global average pool before the classifier")
        pool_node, pooled, keepdim = self.pool
        head = Head(self.module, pool_node, keepdim, self.head_nodes, output, has_features, self.linear_macs)
        return self.nodes, pooled, head

    def _spatial_args(self, node: fx.Node) -> list[str]:
        return [self.values[a] for a in node.all_input_nodes if a in self.values]

    def _head(self, node: fx.Node) -> None:
        if node.op == "call_module" and isinstance(self.modules[node.target], nn.Linear):
            linear = self.modules[node.target]
            self.linear_macs += linear.in_features * linear.out_features
        self.head_nodes.append(node)

    def _add(self, node: fx.Node, layer: Any, inputs: list[str]) -> None:
        self.nodes.append(GraphNode(node.name, layer, inputs))
        self.values[node] = node.name

    def _spatial(self, node: fx.Node) -> None:
        inputs = self._spatial_args(node)
        if node.op == "call_module":
            self._spatial_module(node, self.modules[node.target], inputs)
        elif node.op == "call_function":
            self._spatial_function(node, inputs)
        elif node.op == "call_method":
            self._spatial_method(node, inputs)
        else:
            raise NotSupportedError(f"incremental inference does not support {node.op} {node.target} on feature maps")

    def _spatial_module(self, node: fx.Node, module: nn.Module, inputs: list[str]) -> None:
        if isinstance(module, nn.Conv2d):
            self._add(node, Conv.from_module(module), inputs)
        elif isinstance(module, nn.BatchNorm2d):
            self._add(node, Pointwise.batch_norm(module), inputs)
        elif type(module) in _CLAMPS:
            self._add(node, Pointwise.clamp(*_CLAMPS[type(module)](module)), inputs)
        elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
            self._add(node, Pool.from_module(module), inputs)
        elif isinstance(module, _PASSTHROUGH):
            self.values[node] = inputs[0]
        elif isinstance(module, nn.AdaptiveAvgPool2d) and _pair(module.output_size) == (1, 1):
            self._global_pool(node, inputs, keepdim=True)
        else:
            name = str(node.target).removeprefix("network.")    # Outputs holds the network as `network`
            raise NotSupportedError(f"incremental inference does not support layer {name} "
                                    f"({type(module).__name__}) on feature maps")

    def _spatial_function(self, node: fx.Node, inputs: list[str]) -> None:
        target = node.target
        if target in _ADDS and len(inputs) == 2 and len(node.args) == 2 and not node.kwargs:
            self._add(node, Add(), inputs)
        elif target in _FUNCTION_CLAMPS and len(inputs) == 1:
            self._add(node, Pointwise.clamp(*_FUNCTION_CLAMPS[target](*node.args, **node.kwargs)), inputs)
        elif getattr(target, "__name__", "") in _FUNCTION_POOLS and len(inputs) == 1:
            module_type, names = _FUNCTION_POOLS[target.__name__]  # type: ignore[union-attr]
            options = {**dict(zip(names, node.args[1:])), **node.kwargs}
            self._add(node, Pool.from_module(module_type(**options)), inputs)
        elif target is F.adaptive_avg_pool2d and _pair(node.args[1] if len(node.args) > 1 else
                                                         node.kwargs.get("output_size")) == (1, 1):
            self._global_pool(node, inputs, keepdim=True)
        elif target is torch.mean and _is_spatial_mean(node.args[1:], node.kwargs):
            self._global_pool(node, inputs, keepdim=bool(node.kwargs.get("keepdim", False)))
        else:
            raise NotSupportedError(f"incremental inference does not support {getattr(target, '__name__', target)} "
                                    f"on feature maps")

    def _spatial_method(self, node: fx.Node, inputs: list[str]) -> None:
        target = node.target
        if target in ("add", "add_", "__add__") and len(inputs) == 2 and not node.kwargs:
            self._add(node, Add(), inputs)
        elif target in ("relu", "relu_") and len(inputs) == 1:
            self._add(node, Pointwise.clamp(0.0, math.inf), inputs)
        elif target == "mean" and _is_spatial_mean(node.args[1:], node.kwargs):
            self._global_pool(node, inputs, keepdim=bool(node.kwargs.get("keepdim", False)))
        else:
            raise NotSupportedError(f"incremental inference does not support .{target}() on feature maps")

    def _global_pool(self, node: fx.Node, inputs: list[str], keepdim: bool) -> None:
        if self.pool is not None:
            raise NotSupportedError("incremental inference supports one global pool")
        self.pool = (node, inputs[0], keepdim)


def _pair(value: Any) -> tuple[Any, Any]:
    if isinstance(value, (tuple, list)):
        return tuple(value)
    return (value, value)


def _is_spatial_mean(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    dims = args[0] if args else kwargs.get("dim")
    return isinstance(dims, (tuple, list)) and sorted(d % 4 for d in dims) == [2, 3]
