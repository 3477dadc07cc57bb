"""The layers the engine propagates update patches through, each with its rule.

- :class:`Conv`: any kernel, stride, padding and groups (depthwise included).  A 1x1 stride-1
  convolution maps changed rows to changed rows (a matrix product on the rows); any other
  window reads context (see :mod:`.windows`).  Batch-norm and activations that follow a
  convolution are folded into it (``post``).
- :class:`Pool`: max and average pooling, windowed like a convolution (-inf padding for max).
- :class:`Pointwise`: batch-norm (eval), ReLU, ReLU6, hardtanh on their own: row by row.
- :class:`Add`: residual add; its changed positions are the union of the inputs' (where only
  one branch changed, the other branch's materialized value fills in).

Every layer offers ``output_shape``, ``propagate`` (the output mask), ``macs_per_position``
(the cost model) and ``forward`` (changed rows of the output for a batch).

>>> import torch
>>> conv = Conv.from_module(torch.nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2))
>>> conv.output_shape([(4, 9, 7)]), conv.macs_per_position
((6, 5, 4), 108)
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from engine.errors import NotSupportedError
from engine.inference.incremental.activations import NEG_INF_ROW, ZERO_ROW, Activation
from engine.inference.incremental.windows import Window, WindowCompute, run_window

Shape = tuple[int, int, int]


@dataclass
class PostOps:
    """Channel-wise affine maps and clamps applied to a layer's output rows, in order."""

    ops: list[tuple[str, torch.Tensor | float, torch.Tensor | float]] = field(default_factory=list)

    def apply_(self, rows: torch.Tensor) -> torch.Tensor:
        for kind, a, b in self.ops:
            if kind == "affine":
                rows.mul_(a).add_(b)
            else:
                rows.clamp_(a, b)  # type: ignore[arg-type]
        return rows

    def apply_dense_(self, x: torch.Tensor) -> torch.Tensor:
        """The same on an (n, C, H, W) tensor."""
        for kind, a, b in self.ops:
            if kind == "affine":
                x.mul_(a.view(1, -1, 1, 1)).add_(b.view(1, -1, 1, 1))  # type: ignore[union-attr]
            else:
                x.clamp_(a, b)  # type: ignore[arg-type]
        return x

    def then(self, other: PostOps) -> PostOps:
        return PostOps(self.ops + other.ops)


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


@dataclass
class Conv:
    """A 2-D convolution (BN and activation possibly folded in)."""

    weight: torch.Tensor      # (C_out, C_in / groups, kh, kw)
    bias: torch.Tensor        # (C_out,)
    window: Window
    groups: int
    post: PostOps = field(default_factory=PostOps)

    @classmethod
    def from_module(cls, module: nn.Conv2d) -> Conv:
        if module.padding_mode != "zeros":
            raise NotSupportedError("incremental inference needs zero padding, "
                                    f"found padding_mode={module.padding_mode!r}")
        if _pair(module.dilation) != (1, 1):
            raise NotSupportedError(f"incremental inference supports dilation 1, found {module.dilation}")
        if isinstance(module.padding, str):
            if module.padding == "same" and any(k % 2 == 0 for k in module.kernel_size):
                raise NotSupportedError("incremental inference needs odd kernels with padding='same'")
            padding = (0, 0) if module.padding == "valid" else tuple(k // 2 for k in module.kernel_size)
        else:
            padding = _pair(module.padding)
        weight = module.weight.detach().clone()
        bias = module.bias.detach().clone() if module.bias is not None else torch.zeros(weight.shape[0])
        window = Window(_pair(module.kernel_size), _pair(module.stride), padding)  # type: ignore[arg-type]
        return cls(weight, bias, window, module.groups)

    @property
    def in_channels(self) -> int:
        return self.weight.shape[1] * self.groups

    @property
    def out_channels(self) -> int:
        return self.weight.shape[0]

    @property
    def macs_per_position(self) -> int:
        c_out, c_in_group, kh, kw = self.weight.shape
        return c_in_group * kh * kw * c_out

    @property
    def reads_context(self) -> bool:
        return not self.window.pointwise

    def output_shape(self, shapes: Sequence[Shape]) -> Shape:
        c, h, w = shapes[0]
        if c != self.in_channels:
            raise NotSupportedError(f"convolution expects {self.in_channels} input channels, found {c}")
        return (self.out_channels, *self.window.output_size(h, w))

    def propagate(self, masks: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.window.propagate(masks[0])

    def fold_affine(self, scale: torch.Tensor, shift: torch.Tensor) -> None:
        """Fold a following channel-wise affine map (eval batch-norm) into weight and bias."""
        self.weight = self.weight * scale.view(-1, 1, 1, 1)
        self.bias = self.bias * scale + shift

    def prepare(self, shape_in: Shape) -> None:
        """Lay the weights out for the kernels (after folding)."""
        self._weight_cl = self.weight.contiguous(memory_format=torch.channels_last)
        c_out, c_in_group = self.weight.shape[:2]
        if self.window.pointwise:
            w = self.weight.view(self.groups, c_out // self.groups, c_in_group)
            self._weight_rows = w.transpose(1, 2).contiguous()          # (g, C_in/g, C_out/g)
        stride, groups = self.window.stride, self.groups
        padding = self.window.padding
        on_windows = per_offset = None
        if groups == 1 and not self.window.pointwise:
            # (K*C_in, C_out), rows ordered as the gathered windows: kernel row, kernel column, channel
            by_window = self.weight.permute(2, 3, 1, 0).reshape(-1, c_out).contiguous()
            on_windows = lambda cols: torch.addmm(self.bias, cols, by_window)  # noqa: E731
        if groups == c_out == c_in_group * groups and c_in_group == 1:
            per_offset = self.weight.view(c_out, -1).t().contiguous()     # depthwise: (K, C) weights per offset
        self._compute = WindowCompute(
            self.window, c_out, self.macs_per_position,
            dense=lambda x: F.conv2d(x, self._weight_cl, self.bias, stride, padding, 1, groups),
            on_contexts=lambda x: F.conv2d(x, self._weight_cl, self.bias, stride, 0, 1, groups),
            pad_row=ZERO_ROW, on_windows=on_windows, per_offset=per_offset, bias=self.bias,
        )

    def forward(self, inputs: Sequence[Activation], out_mask: torch.Tensor, tile: int,
                out: torch.Tensor | None, route: str = "auto", in_order: bool = False) -> torch.Tensor:
        act = inputs[0]
        if self.window.pointwise:
            rows = self._rows_product(act.rows, out)
        else:
            rows = run_window(self._compute, act, out_mask, tile, out, route, in_order)
        return self.post.apply_(rows)

    def _rows_product(self, x: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
        if self.groups == 1:
            if out is None:
                return torch.addmm(self.bias, x, self._weight_rows[0])
            return torch.addmm(self.bias, x, self._weight_rows[0], out=out)
        g = self.groups
        y = torch.bmm(x.view(x.shape[0], g, -1).transpose(0, 1), self._weight_rows)   # (g, P, C_out/g)
        y = y.transpose(0, 1).reshape(x.shape[0], -1).add_(self.bias)
        return y if out is None else out.copy_(y)

    def dense(self, x: torch.Tensor) -> torch.Tensor:
        """The layer on full (n, C, H, W) channels-last inputs (for the all-full fast path)."""
        if self.window.pointwise and x.is_contiguous(memory_format=torch.channels_last):
            n, _, height, width = x.shape
            rows = self._rows_product(x.permute(0, 2, 3, 1).reshape(-1, x.shape[1]), None)
            return self.post.apply_(rows).view(n, height, width, -1).permute(0, 3, 1, 2)
        return self.post.apply_dense_(F.conv2d(x, self._weight_cl, self.bias, self.window.stride,
                                               self.window.padding, 1, self.groups))


@dataclass
class Pool:
    """Max or average pooling over a window."""

    kind: str                 # 'max' | 'avg'
    window: Window
    count_include_pad: bool = True
    post: PostOps = field(default_factory=PostOps)

    @classmethod
    def from_module(cls, module: nn.Module) -> Pool:
        if isinstance(module, nn.MaxPool2d):
            if _pair(module.dilation) != (1, 1) or module.return_indices:
                raise NotSupportedError("incremental inference supports max pooling with dilation 1, no indices")
            window = Window(_pair(module.kernel_size), _pair(module.stride or module.kernel_size),
                            _pair(module.padding), bool(module.ceil_mode))
            return cls("max", window)
        if isinstance(module, nn.AvgPool2d):
            if module.ceil_mode or module.divisor_override is not None:
                raise NotSupportedError("incremental inference supports average pooling without ceil_mode "
                                        "or divisor_override")
            window = Window(_pair(module.kernel_size), _pair(module.stride or module.kernel_size),
                            _pair(module.padding))
            return cls("avg", window, bool(module.count_include_pad))
        raise NotSupportedError(f"not a pooling layer: {type(module).__name__}")

    macs_per_position = 0
    reads_context = True

    def output_shape(self, shapes: Sequence[Shape]) -> Shape:
        c, h, w = shapes[0]
        return (c, *self.window.output_size(h, w))

    def propagate(self, masks: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.window.propagate(masks[0])

    def prepare(self, shape_in: Shape) -> None:
        channels, height, width = shape_in
        kernel, stride, padding = self.window.kernel, self.window.stride, self.window.padding
        ceil_mode = self.window.ceil_mode
        if self.kind == "max":
            dense = lambda x: F.max_pool2d(x, kernel, stride, padding, 1, ceil_mode)  # noqa: E731
            on_contexts = lambda x: F.max_pool2d(x, kernel, stride, 0)  # noqa: E731
            pad_row = NEG_INF_ROW
        else:
            divisor = self._divisors(height, width)
            dense = lambda x: F.avg_pool2d(x, kernel, stride, padding, divisor_override=1)  # noqa: E731
            on_contexts = lambda x: F.avg_pool2d(x, kernel, stride, 0, divisor_override=1)  # noqa: E731
            pad_row = ZERO_ROW
            self._divisor = divisor
        self._compute = WindowCompute(self.window, channels, 0, dense, on_contexts, pad_row)

    def _divisors(self, height: int, width: int) -> torch.Tensor:
        """Per output position, what the stock average pool divides the window sum by."""
        ones = torch.ones(1, 1, height, width)
        kernel, stride, padding = self.window.kernel, self.window.stride, self.window.padding
        sums = F.avg_pool2d(F.pad(ones, (padding[1], padding[1], padding[0], padding[0])), kernel, stride,
                            divisor_override=1)
        means = F.avg_pool2d(ones, kernel, stride, padding, False, self.count_include_pad)
        return (sums / means).reshape(-1)

    def forward(self, inputs: Sequence[Activation], out_mask: torch.Tensor, tile: int,
                out: torch.Tensor | None, route: str = "auto", in_order: bool = False) -> torch.Tensor:
        rows = run_window(self._compute, inputs[0], out_mask, tile, out, route, in_order)
        if self.kind == "avg" and rows.numel():
            out_hw = out_mask.shape[1] * out_mask.shape[2]
            positions = out_mask.view(-1).nonzero().squeeze(1)
            rows.div_(self._divisor.index_select(0, positions % out_hw).view(-1, 1))  # window sums -> means
        return self.post.apply_(rows)

    def dense(self, x: torch.Tensor) -> torch.Tensor:
        kernel, stride, padding = self.window.kernel, self.window.stride, self.window.padding
        if self.kind == "max":
            y = F.max_pool2d(x, kernel, stride, padding, 1, self.window.ceil_mode)
        else:
            y = F.avg_pool2d(x, kernel, stride, padding, False, self.count_include_pad)
        return self.post.apply_dense_(y)


@dataclass
class Pointwise:
    """Batch-norm (eval) and clamping activations on their own: row by row."""

    post: PostOps
    macs_per_position = 0
    reads_context = False

    @classmethod
    def batch_norm(cls, module: nn.BatchNorm2d) -> Pointwise:
        if module.training or module.running_mean is None or module.running_var is None:
            raise NotSupportedError("incremental inference needs batch-norm in eval mode with running statistics")
        scale = module.weight.detach() / torch.sqrt(module.running_var + module.eps) if module.affine else \
            1 / torch.sqrt(module.running_var + module.eps)
        shift = (module.bias.detach() if module.affine else 0) - module.running_mean * scale
        return cls(PostOps([("affine", scale.clone(), shift.clone())]))

    @classmethod
    def clamp(cls, low: float, high: float) -> Pointwise:
        return cls(PostOps([("clamp", low, high)]))

    def output_shape(self, shapes: Sequence[Shape]) -> Shape:
        return shapes[0]

    def propagate(self, masks: Sequence[torch.Tensor]) -> torch.Tensor:
        return masks[0]

    def prepare(self, shape_in: Shape) -> None:
        pass

    def forward(self, inputs: Sequence[Activation], out_mask: torch.Tensor, tile: int,
                out: torch.Tensor | None, route: str = "auto", in_order: bool = False) -> torch.Tensor:
        rows = inputs[0].rows
        rows = out.copy_(rows) if out is not None else rows.clone()
        return self.post.apply_(rows)

    def dense(self, x: torch.Tensor) -> torch.Tensor:
        return self.post.apply_dense_(x.clone())


@dataclass
class Add:
    """Element-wise sum of two activations of one shape (residual connection)."""

    post: PostOps = field(default_factory=PostOps)
    macs_per_position = 0
    reads_context = True

    def output_shape(self, shapes: Sequence[Shape]) -> Shape:
        if shapes[0] != shapes[1]:
            raise NotSupportedError(f"residual add of different shapes {shapes[0]} and {shapes[1]}")
        return shapes[0]

    def propagate(self, masks: Sequence[torch.Tensor]) -> torch.Tensor:
        return masks[0] | masks[1]

    def prepare(self, shape_in: Shape) -> None:
        pass

    def forward(self, inputs: Sequence[Activation], out_mask: torch.Tensor, tile: int,
                out: torch.Tensor | None, route: str = "auto", in_order: bool = False) -> torch.Tensor:
        a, b = inputs
        if a.full and b.full:
            rows = torch.add(a.rows, b.rows, out=out) if out is not None else a.rows + b.rows
            return self.post.apply_(rows)
        positions = None
        parts = []
        for act in (a, b):
            if act.full or torch.equal(act.mask, out_mask):
                parts.append(act.rows)
            elif in_order and act.advanceable:
                parts.append(act.read_in_order(out_mask))
            else:
                if positions is None:
                    positions = out_mask.view(-1).nonzero().squeeze(1)
                parts.append(act.gather(positions))
        rows = torch.add(parts[0], parts[1], out=out) if out is not None else parts[0] + parts[1]
        return self.post.apply_(rows)

    def dense(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.post.apply_dense_(x + y)
