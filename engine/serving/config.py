"""The server's settings: what ``mallard serve`` takes on its command line.

>>> config = ServerConfig("shop.duckdb", slo_ms=80)
>>> config.deadline_seconds, config.url
(0.08, 'http://127.0.0.1:8000')
>>> ServerConfig("shop.duckdb", max_batch=0)
Traceback (most recent call last):
...
engine.errors.ProgrammingError: mallard serve: --max-batch expects a whole number >= 1, found 0
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from engine.errors import ProgrammingError

MIB = 1 << 20


@dataclass(frozen=True)
class ServerConfig:
    """Everything the server is told (see ``docs/serving.md`` for each option)."""

    database: str
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    slo_ms: float = 50.0              # the latency objective the batcher keeps p99 under
    max_batch: int = 64               # the adaptive batch size stays at or below this
    fixed_batch: int | None = None    # a fixed batch size instead of the adaptive one
    max_delay_ms: float = 2.0         # longest a batch waits to fill (Triton's max queue delay)
    max_queue: int = 256              # inputs waiting per model; more are refused with 429
    deadline_ms: float | None = None  # a request's default deadline (None: the SLO)
    cache_mb: float = 64.0            # prediction cache size; 0 turns it off
    max_body_mb: float = 8.0          # larger request bodies get 413
    max_inputs: int = 64              # inputs per predict request
    max_image_pixels: int = 40_000_000
    log_schema: str | None = "served"  # the traffic log's schema (one table per model); None: no log
    log_buffer: int = 100_000         # rows the log holds before it drops (and counts) them
    log_flush_rows: int = 1024        # the log writes when this many rows wait...
    log_flush_ms: float = 500.0       # ...or this long after the first of them
    threads: int | None = None        # torch threads (None: one per core but one, left to the event loop)
    device: str = "cpu"
    imports: tuple[str, ...] = ()     # modules to import first (they declare architectures)

    def __post_init__(self) -> None:
        for name, lowest in (("port", 0), ("max_batch", 1), ("max_queue", 1), ("max_inputs", 1),
                             ("log_buffer", 1), ("log_flush_rows", 1), ("max_image_pixels", 1)):
            _check_whole(name, getattr(self, name), lowest)
        if self.fixed_batch is not None:
            _check_whole("fixed_batch", self.fixed_batch, 1)
        if self.threads is not None:
            _check_whole("threads", self.threads, 1)
        for name in ("slo_ms", "max_body_mb", "log_flush_ms"):
            if not getattr(self, name) > 0:
                raise ProgrammingError(f"mallard serve: --{name.replace('_', '-')} expects a positive number, found "
                                       f"{getattr(self, name)}")
        for name in ("max_delay_ms", "cache_mb"):
            if not getattr(self, name) >= 0:
                raise ProgrammingError(f"mallard serve: --{name.replace('_', '-')} expects a number >= 0, found "
                                       f"{getattr(self, name)}")
        if self.deadline_ms is not None and not self.deadline_ms > 0:
            raise ProgrammingError(f"mallard serve: --deadline-ms expects a positive number, found {self.deadline_ms}")

    @property
    def torch_threads(self) -> int:
        """Threads torch computes with: as told, else every core but one, which the event loop
        needs for HTTP, JSON and image decoding while a batch runs (one on a single core)."""
        return self.threads if self.threads is not None else max(1, (os.cpu_count() or 2) - 1)

    @property
    def slo_seconds(self) -> float:
        return self.slo_ms / 1000

    @property
    def deadline_seconds(self) -> float:
        return (self.deadline_ms if self.deadline_ms is not None else self.slo_ms) / 1000

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * MIB)

    @property
    def cache_bytes(self) -> int:
        return int(self.cache_mb * MIB)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def _check_whole(name: str, value: object, lowest: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
        raise ProgrammingError(f"mallard serve: --{name.replace('_', '-')} expects a whole number >= {lowest}, "
                               f"found {value!r}")
