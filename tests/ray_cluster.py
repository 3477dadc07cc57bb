"""A real two-node Ray cluster on loopback for the cluster tests and the benchmark: a head
started with ``ray start --head`` and a second node joining it with ``ray start --address``,
each a ``--block`` subprocess in its own process group, so stopping it stops every Ray
process it started (and nothing else).  One CPU per node, a small object store, a temporary
``--temp-dir``: the multi-node code path on one shared machine."""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RAY = str(Path(sys.executable).parent / "ray")
OBJECT_STORE_BYTES = 200 * 1024 * 1024
#: Seconds a node has to exit after SIGTERM before SIGKILL (a joined node's ``ray start --block``
#: was seen to outlast 40 s after SIGTERM while its head exited at once).
STOP_GRACE_S = 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LocalRayCluster:
    """The processes of a running local cluster and the address to connect to."""

    address: str
    temp_dir: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def add_node(self, cpus: int = 1) -> subprocess.Popen[bytes]:
        """Start one more node joining the head."""
        process = _start([RAY, "start", "--block", f"--address={self.address}", "--node-ip-address=127.0.0.1",
                          f"--num-cpus={cpus}", f"--object-store-memory={OBJECT_STORE_BYTES}",
                          "--disable-usage-stats"])
        self.processes.append(process)
        return process

    def wait_for_nodes(self, count: int, timeout: float = 90) -> None:
        """Until ``count`` nodes are alive (asked of the head with ``ray status``'s own call)."""
        import ray

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in self.processes:
                if p.poll() is not None:
                    raise RuntimeError(f"a Ray node exited with status {p.returncode} while starting")
            if ray.is_initialized() and sum(n["Alive"] for n in ray.nodes()) >= count:
                return
            time.sleep(0.5)
        raise RuntimeError(f"the local Ray cluster did not reach {count} nodes in {timeout} s")

    def stop(self) -> None:
        """SIGTERM to each node's process group (its Ray processes), SIGKILL to what remains."""
        for p in reversed(self.processes):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in reversed(self.processes):
            try:
                p.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(10)
        for p in self.processes:  # workers the raylets forked into groups of their own
            with _suppress():
                os.killpg(p.pid, signal.SIGKILL)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _suppress() -> Any:
    import contextlib

    return contextlib.suppress(ProcessLookupError, PermissionError)


#: The test clusters use token authentication with a token of their own (never ~/.ray/auth_token).
AUTH = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}


def _start(command: list[str]) -> subprocess.Popen[bytes]:
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", **AUTH)
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)


def start_cluster(nodes: int = 2) -> LocalRayCluster:
    """A head and ``nodes - 1`` more nodes on loopback, one CPU each (not connected to yet)."""
    port = free_port()
    temp_dir = tempfile.mkdtemp(prefix="mray", dir="/tmp")  # short: Ray's socket paths must stay short
    head = _start([RAY, "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
                   "--num-cpus=1", "--include-dashboard=false", f"--temp-dir={temp_dir}",
                   f"--ray-client-server-port={free_port()}", f"--object-store-memory={OBJECT_STORE_BYTES}",
                   "--disable-usage-stats"])
    cluster = LocalRayCluster(f"127.0.0.1:{port}", temp_dir, [head])
    _wait_for_port(port, head)
    for _ in range(nodes - 1):
        cluster.add_node()
    return cluster


def _wait_for_port(port: int, head: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if head.poll() is not None:
            raise RuntimeError(f"ray start --head exited with status {head.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"the Ray head did not open port {port} in {timeout} s")


@contextmanager
def running_cluster(nodes: int = 2) -> Iterator[LocalRayCluster]:
    """A started cluster, stopped (with this process disconnected from it) at the end."""
    saved = {name: os.environ.get(name) for name in AUTH}
    os.environ.update(AUTH)  # this process (the driver) connects with the cluster's token
    cluster = start_cluster(nodes)
    try:
        yield cluster
    finally:
        from engine.cluster.connection import disconnect

        disconnect()
        cluster.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
