"""Model selection in one process: every configuration of the grid trained over the same
partitions, with optional successive halving, and the best one picked by held-out accuracy.

Without spilling the configurations train one after another; with ``device_memory`` their
shards alternate (Hydra): each model pauses after every shard and the next model's shard
runs, all within one device arena.  Either way a configuration's weights depend only on its
own options and the data, never on the others or on the schedule.

Successive halving (off by default): with reduction factor ``eta`` and ``n``
configurations, the grid is cut after epoch ``max(i + 1, E // eta**(s-i))`` (``s =
floor(log_eta n)``, ``i = 0..s-1``, rungs before the last epoch only) to the best
``ceil(n / eta**(i+1))`` by held-out accuracy; the others stop and keep the metrics they
reached.  Eight configurations and eight epochs: 4 after epoch 1, 2 after epoch 2, 1 after
epoch 4 (20 epochs of work instead of 64).

>>> rung_survivors(epochs=8, configurations=8, eta=2)
{1: 4, 2: 2, 4: 1}
>>> rung_survivors(epochs=4, configurations=8, eta=2)
{1: 4, 2: 2, 3: 1}
>>> rung_survivors(epochs=2, configurations=8, eta=2)
{1: 4}
>>> rung_survivors(epochs=4, configurations=8, eta=0)
{}
"""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

from engine.training.options import Configuration
from engine.training.trainer import (
    ModelRun,
    Reporter,
    Setup,
    TrainedConfiguration,
    check_device,
    drain,
    finished,
    interleave,
    train_steps,
)


def rung_survivors(epochs: int, configurations: int, eta: int) -> dict[int, int]:
    """Epoch -> how many configurations continue after it (successive halving's rungs)."""
    if not eta or configurations < 2:
        return {}
    levels = 0
    while eta ** (levels + 1) <= configurations:
        levels += 1
    survivors: dict[int, int] = {}
    count = configurations
    for i in range(levels):
        rung = max(i + 1, epochs // eta ** (levels - i))  # distinct rungs, even when epochs are few
        count = math.ceil(count / eta)
        if rung >= epochs:
            break
        survivors[rung] = min(count, survivors.get(rung, count))
    return survivors


def ranking_key(history: Sequence[Any], index: int) -> tuple[float, float, int]:
    """Better first: higher held-out accuracy, then lower held-out loss, then the earlier configuration."""
    last = history[-1] if history else None
    accuracy = last.val_accuracy if last is not None and last.val_accuracy is not None else -1.0
    loss = last.val_loss if last is not None and last.val_loss is not None else math.inf
    return (-accuracy, loss, index)


def best_configuration(results: Sequence[TrainedConfiguration]) -> int:
    """Position in ``results`` of the best configuration that ran to its end."""
    candidates = [i for i, r in enumerate(results) if not r.stopped_early] or list(range(len(results)))
    return min(candidates, key=lambda i: ranking_key(results[i].history, results[i].configuration.index))


def train_in_process(configurations: Sequence[Configuration], setup: Setup, survivors: dict[int, int],
                     reporter: Reporter) -> list[TrainedConfiguration]:
    """Train every configuration here (see the module docstring)."""
    arena = None
    if setup.device_memory is not None:
        from engine.training.spilling import DeviceArena, SpilledRun

        arena = DeviceArena(setup.device_memory, check_device(setup.device))
        runs: list[Any] = [SpilledRun(c, setup, arena, rotation=c.index) for c in configurations]
    else:
        runs = [ModelRun(c, setup, rotation=c.index) for c in configurations]
    try:
        clock: dict[int, float] = {}
        active, start = runs, 0
        for stop in [*sorted(survivors), None]:
            pairs = [(run, train_steps(run, range(start, stop or run.configuration.epochs), reporter))
                     for run in active]
            if arena is not None:
                interleave(pairs, clock)
            else:
                for run, steps in pairs:
                    started = time.perf_counter()
                    drain(steps, run)
                    index = run.configuration.index
                    clock[index] = clock.get(index, 0.0) + time.perf_counter() - started
            if stop is not None:
                ranked = sorted(active, key=lambda r: ranking_key(r.history, r.configuration.index))
                for run in ranked[survivors[stop]:]:
                    run.stopped_early = True
                active, start = ranked[:survivors[stop]], stop
        return [_result(run, clock.get(run.configuration.index, 0.0), arena) for run in runs]
    finally:
        for run in runs:
            if hasattr(run, "close"):
                run.close()


def _result(run: Any, seconds: float, arena: Any) -> TrainedConfiguration:
    result = finished(run, seconds)
    if arena is not None:
        result.extra.update(peak_resident_bytes=arena.peak_bytes, device_memory=arena.budget,
                            shards=len(run.shards), bytes_moved=run.bytes_moved)
    if getattr(run, "pipeline", None) is not None:
        from engine.training.pipeline import expected_bubble

        result.extra.update(pipeline_stages=len(run.pipeline.stages), bubble=run.pipeline.bubble(),
                            expected_bubble=expected_bubble(len(run.pipeline.stages), run.pipeline.micro_batches),
                            stage_balance=run.pipeline.balance_efficiency(),
                            stages=[",".join(names) for names in run.pipeline.stage_names])
    return result
