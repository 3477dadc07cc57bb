"""The ``WITH (...)`` options of ``CREATE MODEL ... AS <query>``, validated, and the grid of
configurations they describe.

Options arrive as plain Python values (what the statement's option parser makes of its
literals: ``str``, ``int``, ``float``, ``bool``, ``list``, ``None``).  A *hyperparameter*
(:data:`GRID_OPTIONS`) may be a list: every combination is one configuration, trained in
the same statement.  Other options take one value (``classes``, ``inputs`` and ``freeze``
take a list as their one value).

| option | default | meaning |
| --- | --- | --- |
| ``architecture`` | (required unless ``from_model``) | ``'mlp'`` (numeric columns), ``'small_cnn'``, ``'tiny_cnn'`` (images), or a registered one |
| ``label`` | ``'label'`` | the column of class names (VARCHAR) or class ids (integer) |
| ``probs`` | none | a column of class probabilities (a LABEL run's ``probs``): noise-aware loss |
| ``weight`` | none | a column of per-row loss weights (a LABEL run's ``weight``) |
| ``key`` | ``id``, else ``frame_id``, else the row's values | the column whose seeded hash picks the held-out rows |
| ``inputs`` | every other column | the input columns: one image BLOB (with ``height``, ``width``) or numeric columns and numeric lists |
| ``classes`` | the LABEL run's, else the distinct labels | the classes, in class-id order |
| ``holdout`` | 0.2 | fraction of rows held out for validation (by the key's hash) |
| ``epochs`` | 5 | passes over the training rows |
| ``lr`` | 0.01 | learning rate |
| ``batch_size`` | 64 | rows per gradient step |
| ``optimizer`` | ``'sgd'`` | ``'sgd'`` or ``'adam'`` |
| ``momentum`` | 0.9 | SGD momentum |
| ``weight_decay`` | 0 | L2 penalty |
| ``seed`` | 0 | initialization, data order and (the first seed) the held-out split |
| ``hidden`` | ``[128, 64]`` | ``mlp``'s hidden layer widths |
| ``partitions`` | 4 | partitions the training rows are split into (Cerebro's unit of data) |
| ``from_model`` | none | fine-tune from this catalog model's current version |
| ``freeze`` | none | submodules (``'features'`` or a list) kept fixed while fine-tuning |
| ``successive_halving`` | false | stop the worse half of a grid at epochs 1, 2, 4, ... (``true``, or the reduction factor) |
| ``pipeline_stages``, ``micro_batches`` | 1, 1 | GPipe: stages and micro-batches per batch |
| ``device_memory`` | none | Hydra: bytes of parameters, gradients and optimizer state resident at once (``'64MB'``) |
| ``workers`` | 1; a grid: one per core | processes: data-parallel for one configuration, model hopping for a grid |
| ``device`` | ``'cpu'`` | ``'cpu'``, ``'cuda'`` or ``'cuda:<n>'`` |
| ``description`` | none | free text for ``SHOW MODELS`` |

>>> options = parse_options({"architecture": "mlp", "lr": [0.1, 0.01], "batch_size": [32, 64]})
>>> len(options.configurations), options.configurations[0].lr, options.configurations[0].batch_size
(4, 0.1, 32)
>>> parse_memory("64MB"), parse_memory("1.5GB"), parse_memory(4096)
(67108864, 1610612736, 4096)
>>> parse_options({"architecture": "mlp", "lrr": 0.1})
Traceback (most recent call last):
...
engine.errors.ProgrammingError: unknown training option 'lrr'; expected one of architecture, label, probs, ...
"""
from __future__ import annotations

import itertools
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.errors import DataError, ProgrammingError

#: Hyperparameters: a list of values makes a grid.
GRID_OPTIONS = ("architecture", "epochs", "lr", "batch_size", "optimizer", "momentum", "weight_decay", "seed")

#: Every option, in the order the documentation lists them.
OPTIONS = (
    "architecture", "label", "probs", "weight", "key", "inputs", "classes", "holdout",
    "epochs", "lr", "batch_size", "optimizer", "momentum", "weight_decay", "seed", "hidden", "partitions",
    "from_model", "freeze", "successive_halving", "pipeline_stages", "micro_batches", "device_memory",
    "workers", "device", "description",
)

OPTIMIZERS = ("sgd", "adam")

_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
#: The largest device_memory accepted (beyond it torch cannot even express the block).
MAX_DEVICE_MEMORY = 1 << 50


@dataclass(frozen=True)
class Configuration:
    """One point of the grid: the hyperparameters one model is trained with."""

    index: int
    architecture: str | None
    epochs: int
    lr: float
    batch_size: int
    optimizer: str
    momentum: float
    weight_decay: float
    seed: int

    def as_dict(self) -> dict[str, Any]:
        """The hyperparameters (without the index), as stored with the model version."""
        values = asdict(self)
        values.pop("index")
        return values


@dataclass(frozen=True)
class TrainingOptions:
    """Validated training options; ``configurations`` is the expanded grid (one or more)."""

    configurations: tuple[Configuration, ...]
    label: str = "label"
    probs: str | None = None
    weight: str | None = None
    key: str | None = None
    inputs: tuple[str, ...] | None = None
    classes: tuple[Any, ...] | None = None
    holdout: float = 0.2
    hidden: tuple[int, ...] = (128, 64)
    partitions: int = 4
    from_model: str | None = None
    freeze: tuple[str, ...] = ()
    successive_halving: int = 0          # reduction factor; 0: off
    pipeline_stages: int = 1
    micro_batches: int = 1
    device_memory: int | None = None     # bytes
    workers: int | None = None           # None: 1 for one configuration, one per core for a grid
    device: str = "cpu"
    description: str | None = None
    given: dict[str, Any] = field(default_factory=dict)  # the options as written, for the catalog

    @property
    def is_grid(self) -> bool:
        """True when there is more than one configuration."""
        return len(self.configurations) > 1

    @property
    def split_seed(self) -> int:
        """The seed of the held-out split: the first configuration's."""
        return self.configurations[0].seed

    def worker_count(self, cores: int | None = None) -> int:
        """Processes to use: the ``workers`` option, else one per core (at most one per configuration) for a grid."""
        if self.workers is not None:
            return self.workers
        if not self.is_grid or self.device_memory is not None or self.pipeline_stages > 1:
            return 1
        return max(1, min(cores or os.cpu_count() or 1, len(self.configurations)))


def parse_options(raw: Mapping[str, Any]) -> TrainingOptions:
    """Check every option and expand the grid; ProgrammingError for an unknown option or a
    missing architecture, DataError for a bad value."""
    names = {str(k).lower(): v for k, v in raw.items()}
    unknown = sorted(set(names) - set(OPTIONS))
    if unknown:
        raise ProgrammingError(f"unknown training option {unknown[0]!r}; expected one of {', '.join(OPTIONS)}")
    if "architecture" not in names and "from_model" not in names:
        raise ProgrammingError(
            "training needs WITH (architecture = '<name>'): 'mlp' for numeric columns, 'small_cnn' or "
            "'tiny_cnn' for images (or from_model = '<model>' to fine-tune one)"
        )
    grid = {name: _grid_values(name, names.get(name, _DEFAULTS.get(name))) for name in GRID_OPTIONS}
    configurations = tuple(
        Configuration(index, **dict(zip(GRID_OPTIONS, values)))
        for index, values in enumerate(itertools.product(*(grid[n] for n in GRID_OPTIONS)))
    )
    single = {name: _single(name, value) for name, value in names.items() if name not in GRID_OPTIONS}
    options = TrainingOptions(configurations=configurations, given=dict(names), **single)
    _check_combination(options)
    return options


_DEFAULTS: dict[str, Any] = {
    "architecture": None, "epochs": 5, "lr": 0.01, "batch_size": 64, "optimizer": "sgd",
    "momentum": 0.9, "weight_decay": 0.0, "seed": 0,
}


def _grid_values(name: str, value: Any) -> tuple[Any, ...]:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise DataError(f"training option {name}: expected a value or a non-empty list of values, found []")
    checked = tuple(_hyperparameter(name, v) for v in values)
    if len(set(checked)) != len(checked):
        raise DataError(f"training option {name}: the list {value!r} repeats a value")
    return checked


def _hyperparameter(name: str, value: Any) -> Any:
    where = f"training option {name}"
    if name == "architecture":
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise DataError(f"{where}: expected an architecture name such as 'mlp', found {value!r}")
        return value.lower()
    if name in ("epochs", "batch_size"):
        return _whole(where, value, minimum=1)
    if name == "seed":
        return _whole(where, value, minimum=0)
    if name == "lr":
        return _number(where, value, low=0.0, low_open=True)
    if name == "momentum":
        return _number(where, value, low=0.0, high=1.0, high_open=True)
    if name == "weight_decay":
        return _number(where, value, low=0.0)
    if name == "optimizer":
        if not isinstance(value, str) or value.lower() not in OPTIMIZERS:
            raise DataError(f"{where}: expected one of {', '.join(repr(o) for o in OPTIMIZERS)}, found {value!r}")
        return value.lower()
    raise AssertionError(name)


def _single(name: str, value: Any) -> Any:
    where = f"training option {name}"
    if name in ("label", "probs", "weight", "key", "from_model", "description"):
        if not isinstance(value, str) or not value:
            what = "free text" if name == "description" else ("a model name" if name == "from_model" else "a column name")
            raise DataError(f"{where}: expected {what}, found {value!r}")
        return value
    if name in ("inputs", "freeze"):
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
            raise DataError(f"{where}: expected a name or a list of names, found {value!r}")
        return tuple(values)
    if name == "classes":
        if not isinstance(value, list) or len(value) < 2 or len(set(map(str, value))) != len(value):
            raise DataError(f"{where}: expected a list of at least two distinct classes, found {value!r}")
        if not (all(isinstance(v, str) for v in value) or all(_is_int(v) for v in value)):
            raise DataError(f"{where}: expected class names (strings) or class ids (integers), found {value!r}")
        return tuple(value)
    if name == "holdout":
        return _number(where, value, low=0.0, high=1.0, high_open=True)
    if name == "hidden":
        values = [value] if _is_int(value) else value
        if not isinstance(values, list) or not values or not all(_is_int(v) and v > 0 for v in values):
            raise DataError(f"{where}: expected a list of positive layer widths such as [128, 64], found {value!r}")
        return tuple(values)
    if name in ("partitions", "pipeline_stages", "micro_batches", "workers"):
        return _whole(where, value, minimum=1)
    if name == "successive_halving":
        if value is True:
            return 2
        if value is False or value is None:
            return 0
        if _is_int(value) and value >= 2:
            return int(value)
        raise DataError(f"{where}: expected true, false, or a reduction factor of at least 2, found {value!r}")
    if name == "device_memory":
        return parse_memory(value)
    if name == "device":
        if not isinstance(value, str) or not re.match(r"^(cpu|cuda(:\d+)?)$", value.lower()):
            raise DataError(f"{where}: expected 'cpu', 'cuda' or 'cuda:<n>', found {value!r}")
        return value.lower()
    raise AssertionError(name)


def parse_memory(value: Any) -> int:
    """Bytes from ``'64MB'``, ``'1.5GB'``, ``'512KiB'`` or a whole number of bytes."""
    if _is_int(value) and value > 0:
        return _at_most_max_memory(value, int(value))
    match = _MEMORY.match(value) if isinstance(value, str) else None
    if match is None or float(match.group(1)) <= 0:
        raise DataError(f"training option device_memory: expected a size such as '64MB' or '1GB', found {value!r}")
    unit = match.group(2).lower().replace("i", "").replace("b", "")
    return _at_most_max_memory(value, int(float(match.group(1)) * _UNITS[unit]))


def _at_most_max_memory(value: Any, size: int) -> int:
    if size > MAX_DEVICE_MEMORY:
        raise DataError(f"training option device_memory: expected a size of at most 1024TB, found {value!r}")
    return size


def _check_combination(options: TrainingOptions) -> None:
    if options.pipeline_stages > 1 or options.micro_batches > 1:
        smallest = min(c.batch_size for c in options.configurations)
        if options.micro_batches > smallest:
            raise DataError(
                f"micro_batches = {options.micro_batches} is more than batch_size = {smallest}: "
                "each micro-batch needs at least one row"
            )
    if options.pipeline_stages > 1 and options.device_memory is not None:
        raise DataError("pipeline_stages and device_memory cannot be combined: choose pipelining or spilling")
    parallel = options.workers is not None and options.workers > 1
    if parallel and (options.pipeline_stages > 1 or options.device_memory is not None):
        raise DataError("workers > 1 cannot be combined with pipeline_stages or device_memory (one device each)")
    if options.successive_halving and len({c.epochs for c in options.configurations}) > 1:
        raise DataError("successive_halving needs one epochs value for the whole grid, found a list")
    if options.successive_halving and not options.is_grid:
        raise DataError("successive_halving needs a grid: give some option a list of values")
    if options.is_grid and options.holdout == 0:
        raise DataError("a grid picks its best configuration on held-out rows: holdout must be above 0")
    if options.probs is not None and options.probs == options.label and "label" in options.given:
        raise DataError(f"label and probs name the same column {options.probs!r}")


def _whole(where: str, value: Any, minimum: int) -> int:
    if not _is_int(value) or value < minimum:
        kind = "positive" if minimum == 1 else "non-negative"
        raise DataError(f"{where}: expected a {kind} whole number, found {value!r}")
    return int(value)


def _number(where: str, value: Any, low: float, high: float | None = None,
            low_open: bool = False, high_open: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        ok = (value > low if low_open else value >= low) and (
            high is None or (value < high if high_open else value <= high))
    if not ok:
        lo = f"{'above' if low_open else 'at least'} {low:g}"
        hi = "" if high is None else f" and {'below' if high_open else 'at most'} {high:g}"
        raise DataError(f"{where}: expected a number {lo}{hi}, found {value!r}")
    return float(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
