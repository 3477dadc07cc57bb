"""A load generator for the server: real HTTP/1.1 over kept-alive loopback connections, on
asyncio, bounded in time.

*Closed loop* (``rate=None``): ``connections`` clients each send a request as soon as their
previous one is answered (after ``refusal_pause`` when it was refused with 429/503: a client
backing off, not a storm of retries), which measures the throughput a server sustains.  *Open loop* (``rate`` requests a second): requests
start on a fixed schedule whatever the server does, each on a free connection of the pool,
and latency counts from the scheduled start, so a server that falls behind shows it.

The client is a few lines of asyncio streams rather than a general HTTP library: on a
two-core machine the load generator competes with the server it measures, and this one costs
tens of microseconds a request.

>>> result = LoadResult(seconds=2.0, statuses={200: 4, 429: 1}, latencies=[0.010, 0.020, 0.030, 0.040])
>>> result.throughput, result.percentile(50), result.errors
(2.0, 25.0, 0)
"""
from __future__ import annotations

import asyncio
import itertools
import time
import urllib.parse
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Statuses that are refusals (the server's overload control), not errors.
REFUSALS = (429, 503)


@dataclass
class LoadResult:
    """What a load run saw: answers by status, and the latency of each 200 answer (seconds)."""

    seconds: float
    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def throughput(self) -> float:
        """Answered (200) requests per second."""
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def refused(self) -> int:
        return sum(n for status, n in self.statuses.items() if status in REFUSALS)

    @property
    def errors(self) -> int:
        """Answers that are neither 200 nor a refusal (429/503): 5xx errors, 4xx mistakes."""
        return sum(n for status, n in self.statuses.items() if status != 200 and status not in REFUSALS)

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile of the 200 answers' latency, in milliseconds (nan without any)."""
        return float(np.percentile(self.latencies, q)) * 1000 if self.latencies else float("nan")

    def summary(self) -> dict[str, Any]:
        return {"throughput": round(self.throughput, 1), "p50_ms": round(self.percentile(50), 1),
                "p99_ms": round(self.percentile(99), 1), "ok": self.ok, "refused": self.refused,
                "errors": self.errors, "statuses": dict(sorted(self.statuses.items()))}


class _Connection:
    """One kept-alive HTTP/1.1 connection."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, request: bytes) -> int:
        """Send one request; the answer's status (its body is read and dropped)."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length, close = 0, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        if length:
            await self.reader.readexactly(length)
        if close:
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def http_request(url: str, path: str, body: bytes, token: str | None = None) -> bytes:
    """The bytes of a POST of a JSON ``body`` to ``path``."""
    netloc = urllib.parse.urlsplit(url).netloc
    head = [f"POST {path} HTTP/1.1", f"Host: {netloc}", "Content-Type: application/json",
            f"Content-Length: {len(body)}"]
    if token:
        head.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def run_load(url: str, path: str, bodies: Sequence[bytes], *, duration: float, connections: int = 8,
                   rate: float | None = None, warmup: float = 0.0, token: str | None = None,
                   refusal_pause: float = 0.05) -> LoadResult:
    """Send requests of ``bodies`` (cycled) for ``warmup`` + ``duration`` seconds; what the
    last ``duration`` seconds saw."""
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    requests = itertools.cycle([http_request(url, path, body, token) for body in bodies])
    start = time.perf_counter()
    measured_from, end = start + warmup, start + warmup + duration
    statuses: Counter[int] = Counter()
    latencies: list[float] = []

    def record(began: float, status: int) -> None:
        if began >= measured_from:
            statuses[status] += 1
            if status == 200:
                latencies.append(time.perf_counter() - began)

    if rate is None:
        async def client() -> None:
            connection = _Connection(host, port)
            while (began := time.perf_counter()) < end:
                status = await _send(connection, next(requests))
                record(began, status)
                if status != 200:
                    await asyncio.sleep(refusal_pause)
            connection.close()

        await asyncio.gather(*(client() for _ in range(connections)))
    else:
        pool: asyncio.Queue[_Connection] = asyncio.Queue()
        for _ in range(connections):
            pool.put_nowait(_Connection(host, port))

        async def one(scheduled: float, request: bytes) -> None:
            connection = await pool.get()
            try:
                record(scheduled, await _send(connection, request))
            finally:
                pool.put_nowait(connection)

        tasks = []
        for n in itertools.count():
            scheduled = start + n / rate
            if scheduled >= end:
                break
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            tasks.append(asyncio.ensure_future(one(scheduled, next(requests))))
        await asyncio.gather(*tasks)
        while not pool.empty():
            pool.get_nowait().close()
    return LoadResult(seconds=duration, statuses=dict(statuses), latencies=latencies)


async def _send(connection: _Connection, request: bytes) -> int:
    """Send on ``connection``; a kept-alive connection the server closed while it sat idle is
    opened anew once (as HTTP clients do); no answer at all is status 599, an error."""
    for attempt in (1, 2):
        reused = connection.writer is not None
        try:
            return await connection.send(request)
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            connection.close()
            if not reused or attempt == 2:
                break
    return 599


def run(url: str, path: str, bodies: Sequence[bytes], **options: Any) -> LoadResult:
    """:func:`run_load` on an event loop of its own (uvloop when installed)."""
    try:
        import uvloop

        return uvloop.run(run_load(url, path, bodies, **options))
    except ImportError:
        return asyncio.run(run_load(url, path, bodies, **options))
