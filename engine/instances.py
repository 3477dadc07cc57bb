"""DuckDB database instances shared by the Mallard connections of one process.

DuckDB keeps one database instance per file in a process, and the Python functions
registered on a connection live in that instance's catalog: a second connection that
registered them again failed ("Scalar Function frame_mean already exists"), and one that
used them after the first connection closed used freed memory.  So each file (and each
in-memory database) gets one *root* DuckDB connection that owns the instance: it migrates
the catalog once, holds the registered functions, and stays open while any Mallard
connection to the file is open.  Each Mallard connection is a DuckDB connection of its own
on that instance (``root.cursor()``: its own transaction), so a connection per thread works.

>>> import engine, os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "shared.duckdb")
>>> a, b = engine.connect(path, autocommit=True), engine.connect(path, autocommit=True)
>>> _ = a.execute("CREATE TABLE t AS SELECT 1 AS x")
>>> a.close()
>>> b.execute("SELECT frame_mean(x'010203') + x FROM t").fetchone()
(3.0,)
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import duckdb

from engine.errors import OperationalError, translate


@dataclass
class Instance:
    """One open database: its root connection, the functions registered on it, and state its
    connections share (a video stream reader, say)."""

    root: duckdb.DuckDBPyConnection
    users: int = 0
    functions: dict[str, Callable[..., Any]] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)


_INSTANCES: dict[Hashable, Instance] = {}
_LOCK = threading.Lock()


Prepare = Callable[[Instance, bool], None]


def open_connection(database: str, read_only: bool, config: dict[str, Any],
                    prepare_instance: Prepare) -> tuple[duckdb.DuckDBPyConnection, Hashable, Instance]:
    """A new DuckDB connection on the instance of ``database``, the key to release it by, and
    the instance.

    ``prepare_instance(instance, first)`` runs when the instance is opened (``first``:
    migrate the catalog) and on every later open (it registers the functions that are
    missing; ``instance.functions`` records what is registered, by name).
    """
    key: Hashable = object() if database in (":memory:", "") else (database, read_only, tuple(sorted(config.items())))
    with _LOCK:
        instance = _INSTANCES.get(key)
        if instance is None:
            try:
                root = duckdb.connect(database, read_only=read_only, config=dict(config))
            except duckdb.Error as e:
                raise translate(e) from e
            except (TypeError, ValueError) as e:
                raise OperationalError(f"could not open {database!r}: {e}") from e
            instance = Instance(root)
            try:
                prepare_instance(instance, True)
            except BaseException:
                root.close()
                raise
            _INSTANCES[key] = instance
        else:
            prepare_instance(instance, False)
        instance.users += 1
        try:
            return instance.root.cursor(), key, instance
        except duckdb.Error as e:
            instance.users -= 1
            raise translate(e) from e


def release(key: Hashable) -> None:
    """One connection of the instance closed; the last one closes the instance."""
    with _LOCK:
        instance = _INSTANCES.get(key)
        if instance is None:
            return
        instance.users -= 1
        if instance.users <= 0:
            del _INSTANCES[key]
            instance.root.close()


def open_instances() -> int:
    """How many database instances Mallard holds open in this process (for tests)."""
    with _LOCK:
        return len(_INSTANCES)
