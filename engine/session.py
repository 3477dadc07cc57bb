"""The state behind one connection: its DuckDB connection, transaction, settings and router.

Executors receive the session; it gives them the DuckDB connection, all-or-nothing writes
(:meth:`Session.atomic`), settings, progress bars, and the functions Mallard plans.
"""
from __future__ import annotations

import os
import sys
import weakref
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

import duckdb
from sqlglot import exp

from engine.errors import ProgrammingError, translate
from engine.router import Router
from engine.settings import SessionSettings

#: Hooks that list the function names Mallard plans for a session (e.g. model names);
#: capabilities append theirs.  Each returns a dict name -> description object.
PLANNED_FUNCTION_SOURCES: list[Callable[["Session"], dict[str, Any]]] = []


class Session:
    """One connection's state; see the module docstring."""

    def __init__(self, duck: duckdb.DuckDBPyConnection, database: str, autocommit: bool, read_only: bool) -> None:
        self.duck = duck
        self.database = database
        self.autocommit = autocommit
        self.read_only = read_only
        self.settings = SessionSettings()
        self.in_transaction = False
        self._router: Router | None = None
        self._functions: dict[str, Any] | None = None
        self.state: dict[str, Any] = {}  # per-session caches of the capabilities
        self.script_state: dict[str, Any] = {}  # per execute(): work shared by one script's statements
        self._pending: weakref.ref[Any] | None = None  # the cursor whose rows are live on duck

    # The one unfinished result DuckDB allows -------------------------------------------
    def claim(self, cursor: Any) -> None:
        """``cursor`` is about to run a statement: park the previous cursor's live rows."""
        owner = self._pending() if self._pending is not None else None
        if owner is not None and owner is not cursor:
            owner._detach()
        self._pending = weakref.ref(cursor)

    def quiesce(self) -> None:
        """Leave no unfinished result on the DuckDB connection (DuckDB requires it before
        register, create_function and the like): a cursor's live rows are read into memory."""
        owner = self._pending() if self._pending is not None else None
        if owner is not None:
            owner._detach()
        self._pending = None
        self.duck.abort()

    def register(self, name: str, table: Any) -> None:
        """Expose an Arrow table (or batch, or DataFrame) to SQL as ``name``."""
        self.quiesce()
        self.duck.register(name, table)

    def unregister(self, name: str) -> None:
        self.quiesce()
        self.duck.unregister(name)

    # Transactions -----------------------------------------------------------------
    def begin_implicit(self) -> None:
        """In manual-commit mode, open the transaction the next statement runs in."""
        if not self.autocommit and not self.in_transaction:
            self.duck.execute("BEGIN")
            self.in_transaction = True

    def commit(self) -> None:
        if self.in_transaction:
            self.quiesce()
            self.in_transaction = False
            try:
                self.duck.execute("COMMIT")
            except duckdb.Error as e:
                self._rollback_quietly()
                self.catalog_changed()
                raise translate(e) from e

    def rollback(self) -> None:
        if self.in_transaction:
            self.quiesce()
            self.in_transaction = False
            self._rollback_quietly()
            self.catalog_changed()

    def _rollback_quietly(self) -> None:
        try:
            self.duck.execute("ROLLBACK")
        except duckdb.Error:
            pass  # no transaction was open (DuckDB ended it already)

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """All-or-nothing writes of one extended statement.

        Outside a transaction this is a transaction of its own.  Inside one (manual-commit
        mode, or after BEGIN) a failure rolls the whole transaction back, as a failed
        statement aborts a transaction in DuckDB.
        """
        own = not self.in_transaction
        if own:
            self.duck.execute("BEGIN")
            self.in_transaction = True
        try:
            yield
        except BaseException:
            self.rollback()
            raise
        else:
            if own:
                self.commit()
        finally:
            self.catalog_changed()

    # SQL helpers ------------------------------------------------------------------
    def sql(self, query: str | exp.Expression, params: Sequence[Any] | None = None) -> duckdb.DuckDBPyConnection:
        """Run one statement on DuckDB, translating errors to PEP 249 classes."""
        text = query if isinstance(query, str) else query.sql("duckdb")
        try:
            return self.duck.execute(text, params) if params else self.duck.execute(text)
        except duckdb.Error as e:
            raise translate(e) from e

    def table_exists(self, table: exp.Table) -> bool:
        """Whether a table or view of that name exists (names compare case-insensitively)."""
        query = (
            "SELECT count(*) FROM information_schema.tables WHERE lower(table_schema) = lower(?)"
            " AND lower(table_name) = lower(?) AND table_catalog = coalesce(?, current_database())"
        )
        params = [table.db or "main", table.name, table.catalog or None]
        return bool(self.sql(query, params).fetchone()[0])

    # Router and planned functions -------------------------------------------------
    def catalog_changed(self) -> None:
        """Forget cached catalog views (after a commit, rollback or extended statement)."""
        self._functions = None
        self._router = None

    @property
    def functions(self) -> dict[str, Any]:
        """Function name -> what it is, for every function Mallard plans in this session."""
        if self._functions is None:
            found: dict[str, Any] = {}
            for source in PLANNED_FUNCTION_SOURCES:
                found.update(source(self))
            self._functions = found
        return self._functions

    @property
    def router(self) -> Router:
        if self._router is None:
            self._router = Router(frozenset(self.functions))
        return self._router

    # Progress -------------------------------------------------------------------------
    def progress(self, total: int | None, desc: str, unit: str = "it") -> Any:
        """A tqdm progress bar on a terminal (outside CI), else a silent stand-in."""
        from tqdm.auto import tqdm

        mode = self.settings["progress"]
        if mode == "off":
            disable: bool | None = True
        elif mode == "on":
            disable = False
        else:
            disable = True if os.environ.get("CI") else None  # None: only on a TTY
        return tqdm(total=total, desc=desc, unit=unit, disable=disable, file=sys.stderr, leave=False)

    def require_writable(self, what: str) -> None:
        if self.read_only:
            raise ProgrammingError(f"{what} writes to the database, which is open read-only")
