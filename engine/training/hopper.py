"""Cerebro's model hopper: a grid trained by several worker processes, where partition ``p``
belongs to worker ``p % workers`` and *models* move between workers, not data.

Each model has its visit plan: every epoch, every partition once, in the order
:func:`engine.training.batches.partition_order` gives it (rotated by the model's place in
the grid).  A worker trains one model at a time; when it is free it takes the free model,
whose next partition it holds, with the most visits left.  A model's whole training state
(weights, optimizer state, random stream) travels as a safetensors file.

Guarantee: a model's result equals training it alone, sequentially, over the same plan
(bit for bit when the processes use the same number of threads): the schedule changes where
and when each visit runs, never what it computes.  Successive halving makes models wait at
each rung until every active model reached it.  When halving leaves fewer models than
workers, the idle workers' cores go to the models left: their visits run with
``cores // models`` torch threads (a different thread count changes the order of float sums,
so those models equal sequential training within float tolerance, not bit for bit; the
difference can grow over the epochs they train so).

>>> from engine.training.options import parse_options
>>> grid = parse_options({"architecture": "mlp", "lr": [0.1, 0.01, 0.001]}).configurations
>>> schedule = HopperSchedule(grid, partitions=4, workers=2, survivors={})
>>> visit = schedule.next_for(0)
>>> visit.partition % 2, schedule.remaining(visit.model)
(0, 20)
"""
from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from engine.errors import InternalError
from engine.training.batches import partition_order
from engine.training.grid import ranking_key
from engine.training.options import Configuration
from engine.training.processes import WorkerPool, threads_per_worker
from engine.training.progress import TrainingProgress
from engine.training.trainer import EpochMetrics, ModelRun, Reporter, Setup, TrainedConfiguration


@dataclass(frozen=True)
class Visit:
    """One model training on one partition."""

    model: int
    epoch: int
    partition: int
    last_of_epoch: bool


class HopperSchedule:
    """Which model visits which partition next, on which worker (pure bookkeeping)."""

    def __init__(self, configurations: Sequence[Configuration], partitions: int, workers: int,
                 survivors: dict[int, int]) -> None:
        self.workers = workers
        self.plans = {
            c.index: [Visit(c.index, e, p, i == partitions - 1)
                      for e in range(c.epochs) for i, p in enumerate(partition_order(c.seed, e, partitions, c.index))]
            for c in configurations
        }
        self.position = dict.fromkeys(self.plans, 0)
        self.epochs_done = dict.fromkeys(self.plans, 0)
        self.busy: set[int] = set()
        self.active = set(self.plans)
        self.stopped: set[int] = set()
        self.survivors = dict(survivors)
        self.history: dict[int, list[Any]] = {m: [] for m in self.plans}

    def owner(self, partition: int) -> int:
        """The worker holding ``partition``."""
        return partition % self.workers

    def remaining(self, model: int) -> int:
        """Visits ``model`` has still to make."""
        return len(self.plans[model]) - self.position[model]

    def _blocked(self, model: int) -> bool:
        return self.epochs_done[model] in self.survivors  # waits at a rung not yet decided

    def next_for(self, worker: int) -> Visit | None:
        """The visit ``worker`` should run now, or None."""
        candidates = [m for m in self.active if m not in self.busy and self.remaining(m) > 0 and not self._blocked(m)
                      and self.owner(self.plans[m][self.position[m]].partition) == worker]
        if not candidates:
            return None
        model = max(candidates, key=lambda m: (self.remaining(m), -m))
        self.busy.add(model)
        return self.plans[model][self.position[model]]

    def complete(self, visit: Visit, metrics: Any = None) -> None:
        """``visit`` is done (with the epoch's metrics when it was the epoch's last)."""
        self.busy.discard(visit.model)
        self.position[visit.model] += 1
        if visit.last_of_epoch:
            self.epochs_done[visit.model] += 1
            self.history[visit.model].append(metrics)
        self._decide_rungs()

    def _decide_rungs(self) -> None:
        for rung in sorted(self.survivors):
            if any(self.epochs_done[m] < rung or m in self.busy for m in self.active):
                return
            ranked = sorted(self.active, key=lambda m: ranking_key(self.history[m], m))
            keep = ranked[:self.survivors.pop(rung)]
            self.stopped |= self.active - set(keep)
            self.active = set(keep)

    def finished(self) -> bool:
        """True when every active model has made its visits."""
        return not self.busy and all(self.remaining(m) == 0 for m in self.active)


def train_hopper(configurations: Sequence[Configuration], setup: Setup, workers: int, survivors: dict[int, int],
                 reporter: Reporter) -> tuple[list[TrainedConfiguration], dict[str, Any]]:
    """Train the grid with ``workers`` processes; the results, and the schedule's accounting
    (visits, hops, bytes of data and of model state moved)."""
    from safetensors.torch import load_file, save_file

    folder = os.path.join(setup.data.folder, "models")
    os.makedirs(folder, exist_ok=True)
    paths = {c.index: os.path.join(folder, f"model_{c.index}.safetensors") for c in configurations}
    for c in configurations:
        save_file(ModelRun(c, setup, rotation=c.index).portable_state(), paths[c.index])
    schedule = HopperSchedule(configurations, len(setup.data.partitions), workers, survivors)
    by_index = {c.index: c for c in configurations}
    accounting = _Accounting(workers)
    epoch_totals: dict[int, list[float]] = {m: [0.0, 0, 0.0] for m in paths}
    seconds = dict.fromkeys(paths, 0.0)
    pool = WorkerPool("hopper", [{"setup_json": setup.to_json(), "threads": threads_per_worker(workers)}
                                 for _ in range(workers)])
    try:
        idle = set(range(workers))

        def dispatch() -> None:
            """Give every idle worker a visit, if one can run there now."""
            for worker in sorted(idle):
                visit = schedule.next_for(worker)
                if visit is not None:
                    idle.discard(worker)
                    threads = _visit_threads(workers, len(schedule.active))
                    accounting.assign(worker, visit.model, os.path.getsize(paths[visit.model]), threads)
                    pool.send(worker, {"type": "visit", "configuration": asdict(by_index[visit.model]),
                                       "state": paths[visit.model], "threads": threads, **asdict(visit)})

        dispatch()
        for worker, message in pool.messages(reporter.check):
            if message["type"] == "progress":
                if reporter.progress is not None:
                    reporter.progress(TrainingProgress(**message["progress"]))
                continue
            visit = Visit(message["model"], message["epoch"], message["partition"], message["last_of_epoch"])
            totals = epoch_totals[visit.model]
            totals[0] += message["loss"]
            totals[1] += message["rows"]
            totals[2] += message["seconds"]
            seconds[visit.model] += message["seconds"]
            accounting.data_bytes[worker] += message["bytes_read"]
            metrics = None
            if visit.last_of_epoch:
                metrics = EpochMetrics(visit.epoch + 1, totals[0] / max(totals[1], 1), message["val_loss"],
                                       message["val_accuracy"], int(totals[1]), totals[2])
                epoch_totals[visit.model] = [0.0, 0, 0.0]
            schedule.complete(visit, metrics)
            idle.add(worker)
            if schedule.finished():
                break
            dispatch()
            if len(idle) == workers:
                raise InternalError(f"the model hopper has nothing to run but is not finished: {schedule.position}")
    except BaseException:
        pool.terminate()
        raise
    pool.close()
    results = []
    for c in configurations:
        tensors = load_file(paths[c.index])
        state = {k[8:]: v for k, v in tensors.items() if k.startswith("network.")}
        results.append(TrainedConfiguration(c, state, list(schedule.history[c.index]), seconds[c.index],
                                            stopped_early=c.index in schedule.stopped))
    return results, accounting.summary(sum(os.path.getsize(setup.data.path(p)) for p in setup.data.partitions))


def _visit_threads(workers: int, active: int) -> int:
    """Torch threads for a visit: a worker's share of the cores, or, when fewer models are
    left than workers (successive halving), the cores shared among the models left."""
    if active >= workers:
        return threads_per_worker(workers)
    return max(1, (os.cpu_count() or 1) // max(1, active))


class _Accounting:
    """Visits, hops and bytes per worker."""

    def __init__(self, workers: int) -> None:
        self.visits = [0] * workers
        self.hops = [0] * workers
        self.state_bytes = [0] * workers
        self.data_bytes = [0] * workers
        self.wide_visits = 0       # visits given the idle workers' cores (fewer models left than workers)
        self.where: dict[int, int] = {}

    def assign(self, worker: int, model: int, size: int, threads: int = 1) -> None:
        """Count a visit of ``model`` on ``worker`` (a hop when the model was elsewhere)."""
        self.visits[worker] += 1
        self.wide_visits += threads > threads_per_worker(len(self.visits))
        if self.where.get(model) != worker:
            self.hops[worker] += 1
            self.state_bytes[worker] += size
        self.where[model] = worker

    def summary(self, dataset_bytes: int) -> dict[str, Any]:
        """The accounting, per worker, as plain values."""
        return {"workers": len(self.visits), "visits": self.visits, "hops": self.hops,
                "model_bytes_received": self.state_bytes, "data_bytes_read": self.data_bytes,
                "dataset_bytes": dataset_bytes, "wide_visits": self.wide_visits}


# The worker side ---------------------------------------------------------------------

def serve_visits(connection: Any, setup_json: str) -> None:
    """A hopper worker: runs the visits it is sent until told to stop."""
    from safetensors.torch import load_file, save_file

    from engine.training.processes import decode, encode
    from engine.training.trainer import drain, validation_steps, visit_steps

    setup = Setup.from_json(setup_json)
    runs: dict[int, ModelRun] = {}

    def send_progress(progress: TrainingProgress) -> None:
        """Forward a progress report to the statement's process."""
        connection.send_bytes(encode({"type": "progress", "progress": asdict(progress)}))

    while True:
        message = decode(connection.recv_bytes())
        if message["type"] == "stop":
            return
        if "threads" in message:
            import torch

            torch.set_num_threads(int(message["threads"]))
        configuration = Configuration(**message["configuration"])
        run = runs.get(configuration.index)
        if run is None:
            if len(runs) >= max(setup.configurations, 1) or len(runs) >= 64:  # networks kept built, bounded
                runs.pop(next(iter(runs)))
            run = runs[configuration.index] = ModelRun(configuration, setup, rotation=configuration.index)
        run.load_portable_state(load_file(message["state"]))
        run.bytes_read = 0
        reporter = Reporter(progress=send_progress)
        started = time.perf_counter()
        loss, rows = drain(visit_steps(run, message["epoch"], message["partition"], reporter), run)
        val_loss, val_accuracy = (drain(validation_steps(run, reporter), run) if message["last_of_epoch"]
                                  else (None, None))
        save_file({k: v.contiguous() for k, v in run.portable_state().items()}, message["state"])
        connection.send_bytes(encode({
            "type": "done", "model": message["model"], "epoch": message["epoch"], "partition": message["partition"],
            "last_of_epoch": message["last_of_epoch"], "loss": loss, "rows": rows, "val_loss": val_loss,
            "val_accuracy": val_accuracy, "seconds": time.perf_counter() - started, "bytes_read": run.bytes_read,
        }))
