"""``mallard serve <db file>``: the prediction server on uvicorn.

    mallard serve shop.duckdb [--host 127.0.0.1] [--port 8000] [--token T] [--slo-ms 50] ...

It opens the database (its own connection for statements and model loads, one for the
traffic log), binds the socket, prints ``Mallard serving <db> at http://<host>:<port>`` and
serves until interrupted (Ctrl-C or SIGTERM), then writes what the traffic log still holds and
closes the database.  ``--port 0`` takes a free port (the printed line says which).
``docs/serving.md`` describes every option.
"""
from __future__ import annotations

import argparse
import importlib
import os
import socket
import sys
from collections.abc import Sequence

from engine.errors import Error
from engine.serving.config import ServerConfig


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mallard serve", description="Serve the models of a Mallard database over HTTP.")
    defaults = ServerConfig("")
    p.add_argument("database", help="the database file (the server holds it open for writing)")
    p.add_argument("--host", default=defaults.host, help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=defaults.port, help="port (0: a free one; default 8000)")
    p.add_argument("--token", default=os.environ.get("MALLARD_TOKEN"),
                   help="bearer token every endpoint but health requires (default: $MALLARD_TOKEN, else none)")
    p.add_argument("--slo-ms", type=float, default=defaults.slo_ms, help="latency objective in ms (default 50)")
    p.add_argument("--max-batch", type=int, default=defaults.max_batch, help="largest adaptive batch (default 64)")
    p.add_argument("--fixed-batch", type=int, default=None, help="a fixed batch size instead of adaptive batching")
    p.add_argument("--max-delay-ms", type=float, default=defaults.max_delay_ms,
                   help="longest a batch waits to fill, from its oldest input's arrival (default 2)")
    p.add_argument("--max-queue", type=int, default=defaults.max_queue,
                   help="inputs waiting per model before 429 (default 256)")
    p.add_argument("--deadline-ms", type=float, default=None,
                   help="default deadline of a request (default: the SLO); 503 when it cannot be met")
    p.add_argument("--cache-mb", type=float, default=defaults.cache_mb, help="prediction cache size (default 64; 0: off)")
    p.add_argument("--max-body-mb", type=float, default=defaults.max_body_mb, help="largest request body (default 8)")
    p.add_argument("--max-inputs", type=int, default=defaults.max_inputs, help="inputs per request (default 64)")
    p.add_argument("--log-schema", default=defaults.log_schema,
                   help="schema of the traffic log tables, one per model (default served)")
    p.add_argument("--no-log", action="store_true", help="do not log the served traffic")
    p.add_argument("--log-buffer", type=int, default=defaults.log_buffer,
                   help="rows the traffic log buffers before dropping (and counting) them")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: every core but one, left to HTTP and decoding)")
    p.add_argument("--device", default=defaults.device, help="torch device (default cpu)")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import a module first (one that declares architectures with @architecture); repeatable")
    return p


def config_from(argv: Sequence[str]) -> ServerConfig:
    """The settings of a ``mallard serve`` command line."""
    a = parser().parse_args(list(argv))
    return ServerConfig(
        database=a.database, host=a.host, port=a.port, token=a.token or None, slo_ms=a.slo_ms,
        max_batch=a.max_batch, fixed_batch=a.fixed_batch, max_delay_ms=a.max_delay_ms, max_queue=a.max_queue,
        deadline_ms=a.deadline_ms, cache_mb=a.cache_mb, max_body_mb=a.max_body_mb, max_inputs=a.max_inputs,
        log_schema=None if a.no_log else a.log_schema, log_buffer=a.log_buffer, threads=a.threads, device=a.device,
        imports=tuple(a.imports),
    )


def serve(config: ServerConfig) -> int:
    """Run the server until it is interrupted; the exit status."""
    import uvicorn

    import engine
    from engine.serving.app import ServingState, build_app
    from engine.serving.traffic_log import TrafficLog

    if config.imports and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # modules are found from the current directory, as python -m finds them
    for module in config.imports:
        importlib.import_module(module)
    import torch

    torch.set_num_threads(config.torch_threads)
    connection = engine.connect(config.database, autocommit=True, progress="off")
    log_connection = engine.connect(config.database, autocommit=True, progress="off") if config.log_schema else None
    state = ServingState(config, connection, None)
    if log_connection is not None and config.log_schema is not None:
        metrics = state.metrics
        state.log = TrafficLog(log_connection, config.log_schema, capacity=config.log_buffer,
                               flush_rows=config.log_flush_rows, flush_seconds=config.log_flush_ms / 1000,
                               on_written=metrics.log_rows.inc, on_dropped=metrics.log_dropped.inc)
    sock = socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((config.host, config.port))
    except OSError as e:
        raise engine.OperationalError(f"cannot listen on {config.host}:{config.port}: {e.strerror}") from e
    port = sock.getsockname()[1]
    host = f"[{config.host}]" if ":" in config.host else config.host
    print(f"Mallard serving {config.database} at http://{host}:{port}", flush=True)
    if config.token is None:
        where = "this machine" if config.host in ("127.0.0.1", "localhost", "::1") else f"{config.host}"
        print(f"Warning: no --token: anyone who reaches {where} can predict and run statements on "
              f"{config.database}", file=sys.stderr, flush=True)
    server = uvicorn.Server(uvicorn.Config(build_app(state), log_level="warning", access_log=False,
                                           http=_http(), loop=_loop(), timeout_graceful_shutdown=10))
    try:
        server.run(sockets=[sock])
    finally:
        for con in (connection, log_connection):
            if con is not None:
                con.close()
    return 0


def _http() -> str:
    """httptools (a C parser) when installed, else uvicorn's pure-Python h11."""
    try:
        importlib.import_module("httptools")
        return "httptools"
    except ImportError:
        return "h11"


def _loop() -> str:
    try:
        importlib.import_module("uvloop")
        return "uvloop"
    except ImportError:
        return "asyncio"


def main(argv: Sequence[str] | None = None) -> int:
    """``mallard serve ...``: errors print as one line, as the shell prints them."""
    try:
        return serve(config_from(sys.argv[1:] if argv is None else argv))
    except Error as e:
        print(f"Error ({type(e).__name__}): {e}", file=sys.stderr)
        return 1
    except ImportError as e:
        print(f"Error: {e} (mallard serve needs the serve extra: pip install 'mallard[serve]')", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
