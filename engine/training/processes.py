"""Worker processes: started with ``spawn`` (a fresh interpreter: no DuckDB connection, no
forked threads), talked to through pipes in JSON (never pickle), stopped cleanly.

A worker that fails sends its error's class name and message before it exits; the pool
raises the same :mod:`engine.errors` class in the statement's process.  A cancel check or an
interrupt terminates every worker.

>>> encode({"type": "done", "loss": 0.5}), decode(b'{"type": "stop"}')
(b'{"type": "done", "loss": 0.5}', {'type': 'stop'})
"""
from __future__ import annotations

import json
import multiprocessing
import multiprocessing.connection
import os
import signal
import traceback
from typing import Any, Callable, Iterator

import engine.errors as errors
from engine.errors import OperationalError


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode()


def decode(data: bytes) -> dict[str, Any]:
    return json.loads(data.decode())


def threads_per_worker(workers: int) -> int:
    """Intra-op threads each of ``workers`` processes gets: the cores shared out."""
    return max(1, (os.cpu_count() or 1) // workers)


class WorkerPool:
    """``len(arguments)`` processes running ``target(connection, *arguments[i])``."""

    def __init__(self, target: Callable[..., None], arguments: list[tuple[Any, ...]]) -> None:
        context = multiprocessing.get_context("spawn")
        self.connections: list[Any] = []
        self.processes: list[Any] = []
        try:
            for args in arguments:
                parent, child = context.Pipe()
                process = context.Process(target=target, args=(child, *args), daemon=True)
                process.start()
                child.close()
                self.connections.append(parent)
                self.processes.append(process)
        except BaseException:
            self.terminate()
            raise

    def send(self, worker: int, message: dict[str, Any]) -> None:
        self.connections[worker].send_bytes(encode(message))

    def messages(self, check: Callable[[], None], timeout: float = 0.2) -> Iterator[tuple[int, dict[str, Any]]]:
        """Messages as they come, as (worker, message); ``check`` runs between waits (it raises
        to cancel).  A worker's error message raises its error here."""
        index = {id(c): i for i, c in enumerate(self.connections)}
        while True:
            check()
            ready = multiprocessing.connection.wait(self.connections, timeout=timeout)
            for connection in ready:
                worker = index[id(connection)]
                try:
                    message = decode(connection.recv_bytes())
                except (EOFError, OSError):
                    raise OperationalError(
                        f"training worker {worker} ended unexpectedly (exit code {self.processes[worker].exitcode})"
                    ) from None
                if message.get("type") == "error":
                    raise rebuild_error(message)
                yield worker, message

    def close(self) -> None:
        """Ask every worker to stop, wait for them, and end any that do not."""
        for worker in range(len(self.connections)):
            try:
                self.send(worker, {"type": "stop"})
            except (OSError, ValueError):
                pass
        for process in self.processes:
            process.join(timeout=10)
        self.terminate()

    def terminate(self) -> None:
        """End every worker now (cancel, interrupt, error)."""
        for process in self.processes:
            if process.is_alive():
                process.terminate()
        for process in self.processes:
            process.join(timeout=5)
        for connection in self.connections:
            connection.close()
        self.processes, self.connections = [], []


def rebuild_error(message: dict[str, Any]) -> errors.Error:
    """The engine error a worker reported, as its own class (OperationalError if not an engine error)."""
    kind = getattr(errors, message.get("kind", ""), None)
    text = message.get("message", "")
    if isinstance(kind, type) and issubclass(kind, errors.Error):
        return kind(text)
    return OperationalError(f"a training worker failed: {message.get('kind')}: {text}\n{message.get('trace', '')}")


def worker_entry(connection: Any, body: Callable[[Any], None], threads: int) -> None:
    """Run ``body(connection)`` in a worker: Ctrl-C is the statement's to handle, errors are
    sent back before the worker exits."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch

    torch.set_num_threads(threads)
    try:
        body(connection)
    except BaseException as e:  # noqa: BLE001 - every failure goes back to the statement
        try:
            connection.send_bytes(encode({"type": "error", "kind": type(e).__name__, "message": str(e),
                                          "trace": "".join(traceback.format_exc(limit=6))}))
        except OSError:
            pass
    finally:
        connection.close()
