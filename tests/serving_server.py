"""Starting the real server (``mallard serve``) in a subprocess on a free loopback port, for
the tests and the notebook: no mocks, real HTTP."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from engine.serving.client import ServingClient

ROOT = Path(__file__).resolve().parent.parent
MALLARD = str(Path(sys.executable).parent / "mallard")


@dataclass
class RunningServer:
    """A server process, its URL and its token."""

    process: subprocess.Popen[str]
    url: str
    token: str | None

    def client(self, token: str | bool | None = True) -> ServingClient:
        """A client with the server's token (``token=False``: none; a string: that one)."""
        chosen = self.token if token is True else (None if token is False else token)
        return ServingClient(self.url, token=chosen if isinstance(chosen, str) else None, timeout=120)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, as a service manager stops it; the exit status (-15: ended by the signal, after a
        clean shutdown, as uvicorn does)."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)


def start_server(database: Path, *options: str, token: str | None = None, timeout: float = 180) -> RunningServer:
    """``mallard serve <database> --port 0 ...``, waited for until every model is loaded."""
    args = [MALLARD, "serve", str(database), "--port", "0", "--import", "tests.serving_models", *options]
    if token is not None:
        args += ["--token", token]
    env = {**os.environ, "CI": "1", "PYTHONPATH": str(ROOT)}
    errors = Path(f"{database}.stderr")
    with errors.open("w") as stderr:  # a file, not a pipe nobody reads: the server never blocks on it
        process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
    started = time.monotonic()
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("Mallard serving"):
        process.kill()
        raise RuntimeError(f"the server did not start: {line}{errors.read_text()}")
    server = RunningServer(process, line.rsplit(" ", 1)[1].strip(), token)
    server.client().wait_ready(timeout=max(1.0, timeout - (time.monotonic() - started)))
    return server
