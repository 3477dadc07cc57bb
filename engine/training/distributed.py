"""Data-parallel training (``workers = N`` for one configuration): N processes join a
``torch.distributed`` group (gloo on the CPU, NCCL on GPUs), each builds the same network
from the same seed, reads the partitions itself, and trains on its slice of every batch;
``DistributedDataParallel`` all-reduces the gradients in buckets during the backward pass.

The batches are those of plain training (same partition and row order); worker ``r`` takes
the ``r``-th of N nearly equal slices of each.  Its loss is its rows' summed loss over the
whole batch's row count, times N (DDP averages over the N workers), so the averaged gradient
is the batch's: the weights equal one worker's up to the order of float additions.

Rendezvous goes through a file in the run's temporary folder (no network port is chosen).
Worker 0 evaluates the held-out rows and writes the final weights.

>>> import numpy as np
>>> [s.tolist() for s in np.array_split(np.arange(5), 2)]
[[0, 1, 2], [3, 4]]
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from engine.training.options import Configuration
from engine.training.processes import WorkerPool, decode, encode, threads_per_worker
from engine.training.progress import TrainingProgress
from engine.training.trainer import EpochMetrics, ModelRun, Reporter, Setup, TrainedConfiguration


class DataParallelRun(ModelRun):
    """A configuration trained by one of N data-parallel workers."""

    def __init__(self, configuration: Configuration, setup: Setup, rank: int, world: int) -> None:
        super().__init__(configuration, setup, rotation=configuration.index)
        from torch.nn.parallel import DistributedDataParallel

        self.rank, self.world = rank, world
        device_ids = [self.device.index or 0] if self.device.type == "cuda" else None
        self.parallel = DistributedDataParallel(self.network, device_ids=device_ids)

    def rows_to_read(self, index: np.ndarray) -> tuple[np.ndarray, int]:
        """This worker's slice of a batch's rows, and the batch's row count."""
        return np.array_split(index, self.world)[self.rank], len(index)

    def step(self, x: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None, rows: int) -> Any:
        """One step on this worker's slice; DDP averages the gradients over the workers."""
        from engine.training.objective import row_losses

        self.optimizer.zero_grad(set_to_none=True)
        summed = row_losses(self.parallel(x), target, weight).sum()
        (summed / rows * self.world).backward()
        self.optimizer.step()
        return float(summed.detach())
        yield


def train_data_parallel(configuration: Configuration, setup: Setup, workers: int,
                        reporter: Reporter) -> TrainedConfiguration:
    """Train one configuration with ``workers`` data-parallel processes."""
    from safetensors.torch import load_file

    rendezvous = os.path.join(setup.data.folder, "rendezvous")
    weights = os.path.join(setup.data.folder, "data_parallel.safetensors")
    threads = threads_per_worker(workers)
    arguments = [{"setup_json": setup.to_json(), "configuration_json": json.dumps(asdict(configuration)),
                  "rank": rank, "world": workers, "rendezvous": rendezvous, "weights": weights, "threads": threads}
                 for rank in range(workers)]
    history: list[EpochMetrics] = []
    started = time.perf_counter()
    pool = WorkerPool("data_parallel", arguments)
    try:
        finished_workers = 0
        for _, message in pool.messages(reporter.check):
            if message["type"] == "progress" and reporter.progress is not None:
                reporter.progress(TrainingProgress(**message["progress"]))
            elif message["type"] == "epoch":
                history.append(EpochMetrics(**message["metrics"]))
            elif message["type"] == "done":
                finished_workers += 1
                if finished_workers == workers:
                    break
    except BaseException:
        pool.terminate()
        raise
    pool.close()
    state = load_file(weights)
    return TrainedConfiguration(configuration, state, history, time.perf_counter() - started,
                                extra={"workers": workers})


def serve_data_parallel(connection: Any, setup_json: str, configuration_json: str, rank: int, world: int,
                        rendezvous: str, weights: str) -> None:
    """One data-parallel worker: trains its slices of every batch, then waits to be stopped."""
    import torch.distributed as dist
    from safetensors.torch import save_file

    from engine.training.batches import partition_order
    from engine.training.trainer import drain, validation_steps, visit_steps

    setup = Setup.from_json(setup_json)
    configuration = Configuration(**json.loads(configuration_json))
    backend = "nccl" if setup.device.startswith("cuda") else "gloo"
    # ``rendezvous``: a file the local workers share, or a tcp:// address (rank 0's, on a cluster)
    init_method = rendezvous if "://" in rendezvous else f"file://{rendezvous}"
    if init_method.startswith(("file://", "tcp://127.")):
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    dist.init_process_group(backend, init_method=init_method, rank=rank, world_size=world)
    try:
        run = DataParallelRun(configuration, setup, rank, world)

        def send_progress(progress: TrainingProgress) -> None:
            """Forward a progress report to the statement's process."""
            connection.send_bytes(encode({"type": "progress", "progress": asdict(progress)}))

        reporter = Reporter(progress=send_progress if rank == 0 else None)
        partitions = len(setup.data.partitions)
        for epoch in range(configuration.epochs):
            started = time.perf_counter()
            totals = torch.zeros(2, dtype=torch.float64)
            for partition in partition_order(configuration.seed, epoch, partitions, run.rotation):
                loss, rows = drain(visit_steps(run, epoch, partition, reporter), run)
                totals += torch.tensor([loss, rows], dtype=torch.float64)
            dist.all_reduce(totals)
            if rank == 0:
                val_loss, val_accuracy = drain(validation_steps(run, reporter), run)
                metrics = EpochMetrics(epoch + 1, float(totals[0]) / max(float(totals[1]), 1.0), val_loss, val_accuracy,
                                       int(totals[1]), time.perf_counter() - started)
                connection.send_bytes(encode({"type": "epoch", "metrics": asdict(metrics)}))
            dist.barrier()
        if rank == 0:
            save_file({k: v.contiguous() for k, v in run.final_state().items()}, weights)
        dist.barrier()
        connection.send_bytes(encode({"type": "done", "rank": rank}))
        decode(connection.recv_bytes())  # wait for stop
    finally:
        dist.destroy_process_group()
