"""The training loop: one configuration's network, optimizer and random stream
(:class:`ModelRun`), and the steps it goes through, written as generators so that several
models can interleave (Hydra's shard alternation) and a model can stop between any two
steps (a cancel check).

An epoch visits the partitions in the configuration's order; a *visit* trains on one
partition's rows in a seeded order, in batches; after the epoch the held-out rows are
evaluated.  Everything is seeded by the configuration's ``seed``, so the same data and seed
give the same weights, bit for bit, whichever process runs the visits.

>>> import duckdb, tempfile
>>> from engine.training.options import parse_options
>>> from engine.training.source import resolve_data, source_relation
>>> from engine.training.materialize import materialize
>>> duck = duckdb.connect()
>>> rel = source_relation(duck, "SELECT range AS id, (range % 7) / 7.0 AS x, "
...                        "CASE WHEN range % 7 < 3 THEN 'low' ELSE 'high' END AS label FROM range(300)")
>>> options = parse_options({"architecture": "mlp", "epochs": 3, "lr": 0.1})
>>> data = materialize(rel, resolve_data(rel, options), options, tempfile.mkdtemp())
>>> setup = Setup.of(data, options)
>>> run = ModelRun(options.configurations[0], setup)
>>> history = drain(train_steps(run, range(3), Reporter()), run)
>>> len(history), history[-1].val_accuracy > 0.9
(3, True)
"""
from __future__ import annotations

import json
import time
from collections.abc import Generator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.errors import DataError, ProgrammingError
from engine.training.architectures import architecture_kind, build_network
from engine.training.batches import PartitionReader, batch_slices, partition_order, row_order, to_tensors
from engine.training.materialize import TrainingData
from engine.training.objective import row_losses
from engine.training.optimizers import load_optimizer_tensors, make_optimizer, optimizer_tensors
from engine.training.options import Configuration, TrainingOptions
from engine.training.progress import CancelCheck, Cancelled, ProgressCallback, TrainingProgress

#: Rows per batch when evaluating the held-out rows.
EVAL_BATCH = 1024

Steps = Generator[None, None, Any]


@dataclass(frozen=True)
class Setup:
    """What every configuration of a run shares (round-trips through JSON for workers)."""

    data: TrainingData
    hidden: tuple[int, ...] = (128, 64)
    freeze: tuple[str, ...] = ()
    pipeline_stages: int = 1
    micro_batches: int = 1
    device_memory: int | None = None
    device: str = "cpu"
    parent_architecture: str | None = None
    parent_weights: str | None = None        # safetensors file of the model fine-tuned from
    configurations: int = 1

    @classmethod
    def of(cls, data: TrainingData, options: TrainingOptions, parent_architecture: str | None = None,
           parent_weights: str | None = None) -> Setup:
        """The setup of a run's materialized data and options."""
        return cls(data, options.hidden, options.freeze, options.pipeline_stages, options.micro_batches,
                   options.device_memory, options.device, parent_architecture, parent_weights,
                   len(options.configurations))

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.data.classes)

    def to_json(self) -> str:
        """JSON for worker processes."""
        values = asdict(self)
        values["data"] = self.data.to_json()
        return json.dumps(values)

    @classmethod
    def from_json(cls, text: str) -> Setup:
        """The inverse of :meth:`to_json`."""
        values = json.loads(text)
        values["data"] = TrainingData.from_json(values["data"])
        values["hidden"], values["freeze"] = tuple(values["hidden"]), tuple(values["freeze"])
        return cls(**values)


@dataclass(frozen=True)
class EpochMetrics:
    """What one epoch of one configuration gave."""

    epoch: int                      # 1-based
    train_loss: float               # mean loss over the epoch's training rows
    val_loss: float | None          # mean loss over the held-out rows (None without any)
    val_accuracy: float | None
    rows: int                       # training rows seen
    seconds: float


class Reporter:
    """Counts rows and loss per configuration, calls the progress callback now and then,
    and raises :class:`Cancelled` when the cancel check says so."""

    def __init__(self, progress: ProgressCallback | None = None, cancel: CancelCheck | None = None,
                 interval: float = 0.25) -> None:
        self.progress = progress
        self.cancel = cancel
        self.interval = interval
        self._last = 0.0
        self._started = time.perf_counter()
        self.rows: dict[int, int] = {}

    def check(self) -> None:
        """Raise Cancelled if the cancel check says so."""
        if self.cancel is not None and self.cancel():
            raise Cancelled("training was cancelled; nothing was kept")

    def batch(self, run: Any, epoch: int, rows: int, epoch_loss: float) -> None:
        """A batch of ``rows`` rows was trained; ``epoch_loss`` is the epoch's mean loss so far."""
        self.check()
        index = run.configuration.index
        self.rows[index] = self.rows.get(index, 0) + rows
        now = time.perf_counter()
        if self.progress is not None and now - self._last >= self.interval:
            self._last = now
            self.report(index, run.setup.configurations, epoch, run.configuration.epochs,
                        self.rows[index], run.setup.data, epoch_loss)

    def report(self, index: int, configurations: int, epoch: int, epochs: int, done: int,
               data: TrainingData, loss: float) -> None:
        """Call the progress callback with the figures so far."""
        if self.progress is None:
            return
        elapsed = max(time.perf_counter() - self._started, 1e-9)
        total_rows = sum(self.rows.values())
        self.progress(TrainingProgress(
            configuration=index, configurations=configurations, epoch=epoch + 1, epochs=epochs,
            rows_done=done, rows_total=sum(data.partition_rows) * epochs, loss=loss,
            rows_per_second=total_rows / elapsed,
        ))


class ModelRun:
    """One configuration in training: network, optimizer, random stream and history."""

    def __init__(self, configuration: Configuration, setup: Setup, rotation: int = 0) -> None:
        self.configuration = configuration
        self.setup = setup
        self.rotation = rotation
        self.device = check_device(setup.device)
        with torch.random.fork_rng(devices=[]):  # the caller's random stream is left alone
            self.network = build_initial(configuration, setup).to(self.device)
            self.rng = torch.get_rng_state()
        self.optimizer = make_optimizer((p for p in self.network.parameters() if p.requires_grad), configuration)
        self.history: list[EpochMetrics] = []
        self.bytes_read = 0
        self.stopped_early = False
        self.pipeline: Any = None
        if setup.pipeline_stages > 1 or setup.micro_batches > 1:
            from engine.training.pipeline import Pipeline

            self.pipeline = Pipeline(self.network, setup.pipeline_stages, setup.micro_batches,
                                     sample_shape=_network_input_shape(setup.data))
        self.train_mode()

    # The steps ----------------------------------------------------------------------
    def rows_to_read(self, index: np.ndarray) -> tuple[np.ndarray, int]:
        """Which of a batch's rows this process reads, and the batch's row count."""
        return index, len(index)

    def step(self, x: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None, rows: int) -> Steps:
        """One gradient step on a batch (or this process's slice of it); returns the sum of
        the rows' losses."""
        self.optimizer.zero_grad(set_to_none=True)
        if self.pipeline is not None:
            total = self.pipeline.step(x, target, weight, rows)
        else:
            summed = row_losses(self.network(x), target, weight).sum()
            total = float(summed.detach())
            (summed / rows).backward()
        self.optimizer.step()
        return total
        yield  # a generator: spilled models pause inside a step

    def predict(self, x: torch.Tensor) -> Steps:
        """Logits of ``x`` in eval mode, without gradients."""
        self.network.eval()
        with torch.no_grad():
            logits = self.network(x)
        self.train_mode()
        return logits
        yield

    def train_mode(self) -> None:
        """Training mode, with frozen submodules kept in eval mode (batch norm statistics fixed)."""
        self.network.train()
        for name in self.setup.freeze:
            self.network.get_submodule(name).eval()

    # The state ----------------------------------------------------------------------
    def final_state(self) -> dict[str, torch.Tensor]:
        """The trained weights, on the CPU."""
        return {k: v.detach().to("cpu").clone() for k, v in self.network.state_dict().items()}

    def portable_state(self) -> dict[str, torch.Tensor]:
        """Weights, optimizer state and random stream: everything a model carries when it hops."""
        tensors = {f"network.{k}": v.detach().to("cpu") for k, v in self.network.state_dict().items()}
        tensors.update({k: v.detach().to("cpu") for k, v in optimizer_tensors(self.optimizer, self.network).items()})
        tensors["rng"] = self.rng
        return tensors

    def load_portable_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Take the state :meth:`portable_state` gave (after a hop)."""
        self.network.load_state_dict({k[8:]: v for k, v in tensors.items() if k.startswith("network.")})
        self.optimizer.state.clear()
        load_optimizer_tensors(self.optimizer, self.network, tensors)
        self.rng = tensors["rng"].clone()

    def with_own_rng(self) -> RngStream:
        """Run with this model's own random stream (dropout draws the same numbers wherever it runs)."""
        return RngStream(self)


class RngStream:
    """Context: torch's random stream is the run's (``run.rng``) inside, the caller's outside."""

    def __init__(self, run: Any) -> None:
        self.run = run

    def __enter__(self) -> None:
        self.saved = torch.get_rng_state()
        torch.set_rng_state(self.run.rng)

    def __exit__(self, *exc: Any) -> None:
        self.run.rng = torch.get_rng_state()
        torch.set_rng_state(self.saved)


def check_device(device: str) -> torch.device:
    """The torch device for ``device``; OperationalError when a GPU is asked for and absent."""
    from engine.errors import OperationalError

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise OperationalError(
                f"device = '{device}' asks for a GPU, but torch sees none (torch.cuda.is_available() is False "
                f"with torch {torch.__version__}); train with device = 'cpu'"
            )
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise OperationalError(f"device = '{device}': this machine has {torch.cuda.device_count()} GPU(s)")
    return torch.device(device)


# Building the network -----------------------------------------------------------------

def build_initial(configuration: Configuration, setup: Setup) -> nn.Module:
    """The configuration's network before training: seeded initialization, the parent
    model's weights when fine-tuning, frozen submodules; checked against the data's input."""
    data = setup.data
    name = configuration.architecture or setup.parent_architecture
    if name is None:
        raise ProgrammingError("training needs an architecture (or from_model)")
    kind = architecture_kind(name)
    if kind != data.kind:
        given = "an image column" if data.kind == "image" else "numeric columns"
        raise DataError(f"architecture {name} takes {'images' if kind == 'image' else 'numeric columns'}, "
                        f"but the training query gives {given} ({', '.join(data.inputs)})")
    _check_registered_input_size(name, data)
    torch.manual_seed(configuration.seed)
    network = build_network(name, num_classes=setup.num_classes,
                            in_features=data.input_shape[0] if kind == "numeric" else None, hidden=setup.hidden)
    if setup.parent_weights is not None:
        from engine.inference.weights import from_safetensors

        with open(setup.parent_weights, "rb") as f:
            load_parent(network, from_safetensors(f.read()), name, data)
    for module_name in setup.freeze:
        try:
            network.get_submodule(module_name).requires_grad_(False)
        except AttributeError:
            children = ", ".join(n for n, _ in network.named_children())
            raise ProgrammingError(f"freeze: {name} has no submodule {module_name!r}; its submodules are {children}") from None
    _check_input_fits(network, name, data)
    return network


def _check_registered_input_size(name: str, data: TrainingData) -> None:
    from engine.extensions import architectures

    spec = architectures().get(name)
    if (data.kind == "image" and spec is not None and spec.input_size is not None
            and tuple(spec.input_size) != tuple(data.input_shape[:2])):
        raise DataError(f"architecture {name} takes {spec.input_size[0]}x{spec.input_size[1]} images, "
                        f"the training images are {data.input_shape[0]}x{data.input_shape[1]}")


def load_parent(network: nn.Module, parent: dict[str, torch.Tensor], name: str, data: TrainingData) -> None:
    """Copy the parent model's weights; a classifier of another class count starts fresh, any
    other mismatch means the data's input does not fit the parent model."""
    own = network.state_dict()
    classifier = _classifier_keys(network)
    for key, tensor in own.items():
        if key not in parent:
            raise DataError(f"from_model: the parent's weights lack {key}; is it a {name}?")
        if parent[key].shape == tensor.shape:
            with torch.no_grad():
                tensor.copy_(parent[key])
        elif key not in classifier:
            raise DataError(
                f"from_model: the training data does not fit the parent model: its {key} has shape "
                f"{tuple(parent[key].shape)}, the data's input {data.input_shape} needs {tuple(tensor.shape)}"
            )


def _classifier_keys(network: nn.Module) -> set[str]:
    classifier = getattr(network, "classifier", None)
    if not isinstance(classifier, nn.Module):
        return set()
    ids = {id(t) for t in list(classifier.parameters()) + list(classifier.buffers())}
    return {k for k, v in network.state_dict(keep_vars=True).items() if id(v) in ids}


def _network_input_shape(data: TrainingData) -> tuple[int, ...]:
    if data.kind == "image":
        h, w, c = data.input_shape
        return (c, h, w)
    return tuple(data.input_shape)


def _check_input_fits(network: nn.Module, name: str, data: TrainingData) -> None:
    was_training = network.training
    network.eval()
    try:
        with torch.no_grad():
            network(torch.zeros((1, *_network_input_shape(data))))
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise DataError(f"architecture {name} does not take inputs of shape {data.input_shape}: {first}") from e
    finally:
        network.train(was_training)


# The loop -------------------------------------------------------------------------------

def visit_steps(run: Any, epoch: int, partition: int, reporter: Reporter) -> Steps:
    """Train ``run`` on one partition's rows; returns (sum of losses, rows)."""
    data = run.setup.data
    with PartitionReader(data, data.partitions[partition]) as reader:
        order = row_order(run.configuration.seed, epoch, partition, reader.rows)
        total, rows = 0.0, 0
        for index in batch_slices(order, run.configuration.batch_size):
            mine, batch_rows = run.rows_to_read(index)
            batch = to_tensors(reader.take(mine), data, run.setup.device)
            loss = yield from run.step(batch.x, batch.target, batch.weight, batch_rows)
            total += loss
            rows += len(mine)
            reporter.batch(run, epoch, len(index), total / max(rows, 1))
        run.bytes_read += reader.bytes_read
    return total, rows


def validation_steps(run: Any, reporter: Reporter) -> Steps:
    """Mean loss and accuracy of ``run`` over the held-out rows; (None, None) without any."""
    data = run.setup.data
    if data.holdout is None:
        return None, None
    total, correct, rows = 0.0, 0, 0
    with PartitionReader(data, data.holdout) as reader:
        for index in batch_slices(np.arange(reader.rows), EVAL_BATCH):
            reporter.check()
            batch = to_tensors(reader.take(index), data, run.setup.device)
            logits = yield from run.predict(batch.x)
            total += float(row_losses(logits, batch.target, batch.weight).sum())
            correct += int((logits.argmax(1) == batch.labels).sum())
            rows += len(index)
    return total / rows, correct / rows


def epoch_steps(run: Any, epoch: int, reporter: Reporter) -> Steps:
    """One epoch: every partition in the configuration's order, then validation."""
    started = time.perf_counter()
    total, rows = 0.0, 0
    data = run.setup.data
    for partition in partition_order(run.configuration.seed, epoch, len(data.partitions), run.rotation):
        loss, n = yield from visit_steps(run, epoch, partition, reporter)
        total, rows = total + loss, rows + n
    val_loss, val_accuracy = yield from validation_steps(run, reporter)
    metrics = EpochMetrics(epoch + 1, total / max(rows, 1), val_loss, val_accuracy, rows, time.perf_counter() - started)
    run.history.append(metrics)
    return metrics


def train_steps(run: Any, epochs: range, reporter: Reporter) -> Steps:
    """The epochs ``epochs`` (0-based) of ``run``; returns its history."""
    for epoch in epochs:
        yield from epoch_steps(run, epoch, reporter)
    return list(run.history)


def drain(steps: Steps, run: Any = None) -> Any:
    """Run a generator of steps to its end (with ``run``'s own random stream); its return value."""
    with run.with_own_rng() if run is not None else _no_stream():
        while True:
            try:
                next(steps)
            except StopIteration as stop:
                return stop.value


def interleave(pairs: list[tuple[Any, Steps]], clock: dict[int, float] | None = None) -> list[Any]:
    """Run the (run, generator) pairs round-robin, one step each in turn, each with its run's
    random stream; their return values.  ``clock`` gathers the seconds each run took."""
    results: list[Any] = [None] * len(pairs)
    live = list(enumerate(pairs))
    while live:
        still = []
        for i, (run, steps) in live:
            started = time.perf_counter()
            try:
                with run.with_own_rng():
                    next(steps)
                still.append((i, (run, steps)))
            except StopIteration as stop:
                results[i] = stop.value
            if clock is not None:
                clock[run.configuration.index] = clock.get(run.configuration.index, 0.0) + time.perf_counter() - started
        live = still
    return results


class _no_stream:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


@dataclass
class TrainedConfiguration:
    """A trained configuration: its weights, history and what it cost."""

    configuration: Configuration
    state: dict[str, torch.Tensor]
    history: list[EpochMetrics]
    seconds: float
    stopped_early: bool = False
    bytes_read: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> EpochMetrics:
        """The last epoch's metrics."""
        return self.history[-1]

    def metrics(self) -> dict[str, Any]:
        """The metrics stored with the model version."""
        last = self.final
        return {"train_loss": last.train_loss, "val_loss": last.val_loss, "val_accuracy": last.val_accuracy,
                "epochs_run": len(self.history), "stopped_early": self.stopped_early, **self.extra}


def finished(run: Any, seconds: float) -> TrainedConfiguration:
    """The result of a run that has stopped training."""
    return TrainedConfiguration(run.configuration, run.final_state(), list(run.history), seconds,
                                run.stopped_early, run.bytes_read)
