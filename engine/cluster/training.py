"""Data-parallel training on a Ray cluster: ``CREATE MODEL ... WITH (workers = N)`` under
``SET cluster``.

The statement's process materializes the query into partitions as it does on one machine
(:mod:`engine.training.materialize`); here the partition files travel through Ray's object
store (once each, put by the driver) to ``N`` Ray actors, one CPU each, spread over the
cluster's nodes by a placement group (all ``N`` start together or none does: the
collectives need every rank).  Each actor writes the files into a folder of its own node and
runs the same worker code as a local worker process
(:func:`engine.training.distributed.serve_data_parallel`: ``torch.distributed`` with gloo, or
NCCL on GPUs), meeting the others at rank 0's node address.  Rank 0 returns the trained
weights and every epoch's metrics; the driver builds the model version from them, so the
result is the same as with ``N`` local workers (and as one worker, for architectures without
batch norm: see docs/training.md).

A failure anywhere (an actor or node lost, a worker's error) ends every actor and fails the
statement with Mallard's error; nothing is written.  Grids with ``workers > 1`` (model
hopping) still run on this machine.
"""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

from engine.cluster.connection import connect, session_cluster
from engine.cluster.tasks import BASE_MODULES, HeadWatch, connected, gather, require_modules, task_place, wait_for
from engine.errors import OperationalError
from engine.training.processes import decode, encode

if TYPE_CHECKING:
    from engine.session import Session
    from engine.training.trainer import Configuration, Reporter, Setup, TrainedConfiguration

#: Seconds to wait for the placement group's CPUs before saying the cluster is too small.
PLACEMENT_TIMEOUT_S = 60.0

DataParallel = Callable[["Configuration", "Setup", int, "Reporter"], "TrainedConfiguration"]


def cluster_data_parallel(session: Session) -> DataParallel | None:
    """The data-parallel trainer of the session's cluster, or None without one (train locally)."""
    address = session_cluster(session)
    if address is None:
        return None

    def run(configuration: Configuration, setup: Setup, workers: int, reporter: Reporter) -> TrainedConfiguration:
        ray = connect(address)
        require_modules(ray, {**BASE_MODULES, "torch": "training", "safetensors": "training"},
                        "CREATE MODEL on the cluster")
        return train_on_cluster(ray, configuration, setup, workers, reporter)

    return run


class _Channel:
    """An actor's side of what a local worker says to the statement's process: the messages
    are kept and returned with the actor's result, and the stop a worker waits for is there at once."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send_bytes(self, data: bytes) -> None:
        self.sent.append(decode(data))

    def recv_bytes(self) -> bytes:
        return encode({"type": "stop"})


class DataParallelWorker:
    """One rank of a data-parallel run, as a Ray actor (one CPU)."""

    def address(self) -> tuple[str, int]:
        """This node's address and a port free on it now (rank 0's: where the ranks meet)."""
        import ray

        host = ray.util.get_node_ip_address()
        with socket.socket() as s:
            s.bind((host, 0))
            return host, int(s.getsockname()[1])

    def train(self, setup_json: str, configuration_json: str, rank: int, world: int, init_method: str,
              names: list[str], *blobs: bytes) -> dict[str, Any]:
        """Train rank ``rank`` on the files ``names`` (their bytes in ``blobs``); rank 0 returns the weights."""
        import torch

        from engine.training.distributed import serve_data_parallel
        from engine.training.trainer import Setup

        torch.set_num_threads(1)
        folder = tempfile.mkdtemp(prefix="mallard_ray_training_")
        try:
            for name, blob in zip(names, blobs):
                with open(os.path.join(folder, name), "wb") as f:
                    f.write(blob)
            setup = Setup.from_json(setup_json)
            parent = os.path.join(folder, "parent.safetensors") if setup.parent_weights else None
            local = replace(setup, data=replace(setup.data, folder=folder), parent_weights=parent)
            weights = os.path.join(folder, "data_parallel.safetensors")
            channel = _Channel()
            serve_data_parallel(channel, local.to_json(), configuration_json, rank, world, init_method, weights)
            result: dict[str, Any] = {"messages": channel.sent, "place": asdict(task_place())}
            if rank == 0:
                with open(weights, "rb") as f:
                    result["weights"] = f.read()
            return result
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def train_on_cluster(ray: Any, configuration: Configuration, setup: Setup, workers: int,
                     reporter: Reporter) -> TrainedConfiguration:
    """Train ``configuration`` with ``workers`` ranks as Ray actors (see the module docstring)."""
    import json

    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy
    from safetensors.torch import load

    from engine.training.trainer import EpochMetrics, TrainedConfiguration

    what = "CREATE MODEL on the cluster"
    started = time.perf_counter()
    names = [*setup.data.partitions, *([setup.data.holdout] if setup.data.holdout else [])]
    paths = [setup.data.path(n) for n in names]
    if setup.parent_weights:
        names.append("parent.safetensors")
        paths.append(setup.parent_weights)
    group = placement_group([{"CPU": 1}] * workers, strategy="SPREAD")
    actors: list[Any] = []
    try:
        ready, _ = wait_for(ray, [group.ready()], 1, what, timeout=PLACEMENT_TIMEOUT_S)
        if not ready:
            raise OperationalError(f"{what}: the cluster did not offer {workers} CPUs for workers = {workers} within "
                                   f"{PLACEMENT_TIMEOUT_S:.0f} s (SHOW CLUSTER lists its CPUs); nothing was written")
        blobs = []
        for path in paths:
            with open(path, "rb") as f:
                blobs.append(ray.put(f.read()))
        actor_class = ray.remote(num_cpus=1, max_restarts=0)(DataParallelWorker)
        actors = [actor_class.options(scheduling_strategy=PlacementGroupSchedulingStrategy(group, bundle))
                  .remote() for bundle in range(workers)]
        host, port = gather(ray, [actors[0].address.remote()], what)[0]
        init_method = f"tcp://{host}:{port}"
        configuration_json = json.dumps(asdict(configuration))
        runs = [actor.train.remote(setup.to_json(), configuration_json, rank, workers, init_method, names, *blobs)
                for rank, actor in enumerate(actors)]
        pending = list(runs)
        watch = HeadWatch(what)
        while pending:
            reporter.check()
            ready, pending = wait_for(ray, pending, 1, what, timeout=0.2, watch=watch)
            gather(ray, ready, what)  # a rank that failed fails the statement now (the others wait on it)
        results = gather(ray, runs, what)
    finally:
        if connected(ray):  # a lost head left nothing to clean up from here
            for actor in actors:
                ray.kill(actor)
            remove_placement_group(group)
    messages = results[0]["messages"]
    history = [EpochMetrics(**m["metrics"]) for m in messages if m["type"] == "epoch"]
    places = sorted({(r["place"]["node_address"], r["place"]["node_id"]) for r in results})
    return TrainedConfiguration(configuration, load(results[0]["weights"]), history, time.perf_counter() - started,
                                extra={"workers": workers, "cluster_nodes": len(places)})
