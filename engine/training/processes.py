"""Worker processes: each a fresh interpreter (``python -m engine.training.worker``, so no
DuckDB connection, no forked threads, and no re-import of the caller's script), talking to
the statement's process over a socket pair in JSON (never pickle), stopped cleanly.

The first message a worker receives names its *role* (:data:`engine.training.worker.ROLES`)
and its arguments.  A worker that fails sends its error's class name and message before it
exits; the pool raises the same :mod:`engine.errors` class in the statement's process.  A
cancel check or an interrupt terminates every worker.

>>> encode({"type": "done", "loss": 0.5}), decode(b'{"type": "stop"}')
(b'{"type": "done", "loss": 0.5}', {'type': 'stop'})
"""
from __future__ import annotations

import contextlib
import json
import multiprocessing.connection
import os
import socket
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import engine.errors as errors
from engine.errors import OperationalError


def encode(message: dict[str, Any]) -> bytes:
    """A message as JSON bytes."""
    return json.dumps(message).encode()


def decode(data: bytes) -> dict[str, Any]:
    """The message in JSON bytes."""
    return json.loads(data.decode())


def threads_per_worker(workers: int) -> int:
    """Intra-op threads each of ``workers`` processes gets: the cores shared out."""
    return max(1, (os.cpu_count() or 1) // workers)


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])  # the folder holding the engine package
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


class WorkerPool:
    """One worker process per entry of ``arguments``, each in ``role``."""

    def __init__(self, role: str, arguments: list[dict[str, Any]]) -> None:
        self.connections: list[multiprocessing.connection.Connection] = []
        self.processes: list[subprocess.Popen[bytes]] = []
        try:
            for args in arguments:
                ours, theirs = socket.socketpair()
                process = subprocess.Popen(
                    [sys.executable, "-m", "engine.training.worker", str(theirs.fileno())],
                    pass_fds=[theirs.fileno()], env=_environment(), stdin=subprocess.DEVNULL,
                )
                theirs.close()
                connection = multiprocessing.connection.Connection(ours.detach())
                connection.send_bytes(encode({"role": role, "arguments": args}))
                self.connections.append(connection)
                self.processes.append(process)
        except BaseException:
            self.terminate()
            raise

    def send(self, worker: int, message: dict[str, Any]) -> None:
        """Send ``message`` to ``worker``."""
        self.connections[worker].send_bytes(encode(message))

    def messages(self, check: Callable[[], None], timeout: float = 0.2) -> Iterator[tuple[int, dict[str, Any]]]:
        """Messages as they come, as (worker, message); ``check`` runs between waits (it raises
        to cancel).  A worker's error message raises its error here."""
        index = {id(c): i for i, c in enumerate(self.connections)}
        while True:
            check()
            for connection in multiprocessing.connection.wait(self.connections, timeout=timeout):
                worker = index[id(connection)]
                try:
                    message = decode(connection.recv_bytes())  # type: ignore[union-attr]
                except (EOFError, OSError):
                    code = self.processes[worker].wait(timeout=5)
                    raise OperationalError(f"training worker {worker} ended unexpectedly (exit code {code})") from None
                if message.get("type") == "error":
                    raise rebuild_error(message)
                yield worker, message

    def close(self) -> None:
        """Ask every worker to stop, wait for them, and end any that do not."""
        for worker in range(len(self.connections)):
            with contextlib.suppress(OSError, ValueError):
                self.send(worker, {"type": "stop"})
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
        self.terminate()

    def terminate(self) -> None:
        """End every worker now (cancel, interrupt, error)."""
        for process in self.processes:
            if process.poll() is None:
                process.kill()
        for process in self.processes:
            process.wait()
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


def report_failure(connection: Any, error: BaseException) -> None:
    """Send ``error`` to the statement's process (a worker's last message)."""
    with contextlib.suppress(OSError):
        connection.send_bytes(encode({"type": "error", "kind": type(error).__name__, "message": str(error),
                                      "trace": "".join(traceback.format_exc(limit=6))}))
