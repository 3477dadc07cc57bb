"""Running Mallard's work as Ray tasks: the module check on every node, bounded submission,
results in order, and every failure translated into one of Mallard's errors.

A task whose worker process dies (killed, out of memory, its node lost) is retried by Ray
up to :data:`RETRIES` times; past that, or on any failure of Ray itself, the statement fails
with an :class:`~engine.errors.OperationalError` and the driver writes nothing.  An error
Mallard raises inside a task (a labeling function's :class:`~engine.errors.DataError`) is
raised again on the driver as itself.

Losing the head mid-statement (its process killed, its machine gone) is noticed while the
driver waits: every :data:`HEAD_CHECK_S` seconds without results it checks that the head
still answers, and after :data:`HEAD_LOSS_S` seconds of silence it leaves the cluster and
fails the statement with an OperationalError, before Ray's own reconnection timeout would end
the whole process.  Nothing is written: results reach DuckDB only after every task is back.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from engine.errors import Error, OperationalError

#: Times Ray runs a task again after its worker process died.
RETRIES = 3

#: The modules every Mallard task needs on a node, and the package that provides each.
BASE_MODULES = {"engine": "mallard", "duckdb": "duckdb", "pyarrow": "pyarrow", "numpy": "numpy"}

#: Seconds the driver waits on tasks between checks that the head still answers.
HEAD_CHECK_S = 1.0
#: Seconds the head may stay silent before the statement fails (Ray's driver gives up after 60).
HEAD_LOSS_S = 5.0

_checked: set[tuple[str, ...]] = set()


@dataclass
class HeadWatch:
    """Notices a lost head while a statement waits on the cluster (see the module docstring)."""

    what: str
    silent_since: float | None = field(default=None)

    def check(self) -> None:
        """OperationalError (after leaving the cluster) once the head has been silent too long."""
        from engine.cluster.connection import connected_address, disconnect, head_answers

        if head_answers():
            self.silent_since = None
            return
        now = time.monotonic()
        if self.silent_since is None:
            self.silent_since = now
        if now - self.silent_since < HEAD_LOSS_S:
            return
        address = connected_address()
        disconnect()  # before Ray's driver, reconnecting in vain, ends this process
        raise OperationalError(
            f"{self.what}: lost the Ray cluster's head at {address} (it stopped answering for {HEAD_LOSS_S:.0f} s); "
            "nothing was written. Start the head again and reconnect (SET cluster), or SET cluster = 'none' to "
            "work on this machine"
        )


def wait_for(ray: Any, refs: list[Any], num_returns: int, what: str,
             timeout: float | None = None, watch: HeadWatch | None = None) -> tuple[list[Any], list[Any]]:
    """``ray.wait(refs, num_returns, timeout)`` that checks the head while it waits (see :class:`HeadWatch`)."""
    if len(refs) == 0 or num_returns <= 0:
        return [], list(refs)
    watch = watch or HeadWatch(what)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        step = HEAD_CHECK_S if deadline is None else max(0.0, min(HEAD_CHECK_S, deadline - time.monotonic()))
        ready, pending = ray.wait(refs, num_returns=num_returns, timeout=step)
        if len(ready) >= num_returns:
            return ready, pending
        watch.check()
        if deadline is not None and time.monotonic() >= deadline:
            return ready, pending


def connected(ray: Any) -> bool:
    """Whether this process is still connected (cleanup after a lost head has nothing to ask)."""
    return bool(ray.is_initialized())


@dataclass(frozen=True)
class TaskPlace:
    """Where a task ran: its node (id and address) and worker process."""

    node_id: str
    node_address: str
    pid: int


def task_place() -> TaskPlace:
    """Called inside a task: where it runs."""
    import os

    import ray

    context = ray.get_runtime_context()
    return TaskPlace(context.get_node_id(), ray.util.get_node_ip_address(), os.getpid())


def require_modules(ray: Any, modules: dict[str, str], what: str) -> None:
    """OperationalError unless every live node imports each module (module -> who needs it)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from engine.cluster import probe

    names = sorted(modules)
    nodes = [n for n in ray.nodes() if n["Alive"]]
    key = (*names, *sorted(n["NodeID"] for n in nodes))
    if key in _checked:
        return
    ray.cloudpickle.register_pickle_by_value(probe)
    check = ray.remote(num_cpus=0, max_retries=RETRIES)(probe.missing_modules)
    refs = [check.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(names)
            for n in nodes]
    for node, missing in zip(nodes, gather(ray, refs, f"{what}: checking the cluster's Python packages")):
        if missing:
            listed = "; ".join(f"{name} (needed by {modules[name]}): {error}" for name, error in missing.items())
            raise OperationalError(
                f"{what}: the cluster node {node['NodeManagerAddress']} cannot import {listed}. Install them on "
                f"every node (the same versions as here); nothing was run or written"
            )
    _checked.add(key)


def ordered_results(ray: Any, submit: Callable[[Any], Any], inputs: Iterable[Any], what: str,
                    in_flight: int) -> Iterator[Any]:
    """Submit ``submit(input)`` for each input with at most ``in_flight`` tasks pending, and
    yield their results in input order; on any failure cancel the rest and raise."""
    pending: dict[int, Any] = {}
    done: dict[int, Any] = {}
    next_out = 0
    try:
        for i, item in enumerate(inputs):
            pending[i] = submit(item)
            while len(pending) >= in_flight:
                _collect(ray, pending, done, what)
            while next_out in done:
                yield done.pop(next_out)
                next_out += 1
        while pending:
            _collect(ray, pending, done, what)
            while next_out in done:
                yield done.pop(next_out)
                next_out += 1
    finally:
        if connected(ray):
            for ref in pending.values():
                ray.cancel(ref, force=True)


def partition_results(ray: Any, submit: Callable[[Any], Any], reader: Any, rows_per_task: int, what: str,
                      in_flight: int, bar: Any) -> list[Any]:
    """Every partition of ``rows_per_task`` rows of ``reader`` (Arrow batches) submitted as a
    task, the results in partition order, ``bar`` advanced per partition; the reader is closed
    at the end (its connection takes no other query while the read is open)."""
    results: list[Any] = []
    try:
        with bar:
            for result in ordered_results(ray, submit, row_partitions(reader, rows_per_task), what, in_flight):
                results.append(result)
                bar.update(1)
    finally:
        reader.close()
    return results


def row_partitions(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """The rows of ``batches`` again, in partitions of exactly ``rows`` rows (the last one fewer).

    >>> batch = pa.record_batch({"x": list(range(5))})
    >>> [len(p) for p in row_partitions([batch, batch, batch], 4)]
    [4, 4, 4, 3]
    """
    held: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        held.append(batch)
        count += len(batch)
        while count >= rows:
            table = pa.Table.from_batches(held)
            yield table.slice(0, rows).combine_chunks().to_batches()[0]
            rest = table.slice(rows)
            held, count = rest.combine_chunks().to_batches() if len(rest) else [], len(rest)
    if count:
        yield pa.Table.from_batches(held).combine_chunks().to_batches()[0]


def _collect(ray: Any, pending: dict[int, Any], done: dict[int, Any], what: str) -> None:
    ready, _ = wait_for(ray, list(pending.values()), 1, what)
    index = next(i for i, ref in pending.items() if ref == ready[0])
    done[index] = gather(ray, [pending.pop(index)], what)[0]


def gather(ray: Any, refs: list[Any], what: str) -> list[Any]:
    """``ray.get(refs)`` with Ray's failures as Mallard's errors (and a lost head noticed)."""
    try:
        wait_for(ray, refs, len(refs), what)
        return list(ray.get(refs))
    except ray.exceptions.RayTaskError as e:
        raise task_error(e, what) from e
    except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.OwnerDiedError,
            ray.exceptions.ObjectLostError) as e:
        raise OperationalError(
            f"{what}: a Ray worker died and the task failed again after {RETRIES} retries ({type(e).__name__}); "
            "nothing was written"
        ) from e
    except ray.exceptions.RayError as e:
        raise OperationalError(f"{what}: the Ray cluster failed ({type(e).__name__}: {e}); nothing was written") from e


def task_error(error: Any, what: str) -> Error:
    """The Mallard error for an exception raised inside a task."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, Error):
        return cause
    if isinstance(cause, ImportError):
        return OperationalError(
            f"{what}: a cluster node cannot import {cause.name or cause} ({cause}); install it on every node, or "
            "define the function where the nodes can import it; nothing was written"
        )
    kind = type(cause).__name__ if cause is not None else type(error).__name__
    return OperationalError(f"{what}: a task failed on the cluster: {kind}: {cause or error}; nothing was written")
