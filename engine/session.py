"""The state behind one connection, and the one entry point every statement goes through.

:meth:`Session.execute` takes SQL text and parameters from a cursor (the DB-API, the
shell, the ``%%sql`` magic and the HTTP server all come through a cursor) and:

1. sends plain DuckDB SQL straight to DuckDB (the fast path: no sqlglot);
2. otherwise splits the text into statements, parses each, binds the parameters into the
   tree (a count mismatch is a ProgrammingError), plans it (:mod:`engine.planner`) and runs
   its executor (:data:`engine.registry.EXECUTORS`), which returns one result shape
   (:class:`~engine.statement_result.StatementResult`: a DuckDB relation or Arrow rows, plus
   a rowcount);
3. opens the result's rows on the DuckDB connection for the cursor to fetch.

What a statement registers on the DuckDB connection (its result, the relations of its
inference scans) is released when the statement ends: when its rows are all fetched, or its
cursor runs another statement or closes.  DuckDB allows one unfinished result per
connection: when another cursor runs a statement, the first cursor's unread rows are read
into memory first (:meth:`claim`).  A lock serializes cursors used from several threads.

Executors receive the session; it gives them the DuckDB connection, all-or-nothing writes
(:meth:`atomic`), settings, progress bars and the catalog views the planner reads.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import sys
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import duckdb
from sqlglot import exp

from engine.errors import Error, OperationalError, ProgrammingError, translate
from engine.instances import Instance
from engine.settings import SessionSettings

if TYPE_CHECKING:
    from engine.router import Router
    from engine.statement_result import StatementResult

Parameters = Sequence[Any] | Mapping[str, Any] | None

_names = itertools.count(1)


class ResultOwner(Protocol):
    """What the session needs of a cursor: to read its unread rows into memory."""

    def _detach(self) -> None: ...


@dataclass(frozen=True)
class Opened:
    """What a statement left for its cursor: rows pending on the DuckDB connection (or none)."""

    has_rows: bool
    rowcount: int = -1
    message: str | None = None


class Session:
    """One connection's state and statement path; see the module docstring."""

    def __init__(self, duck: duckdb.DuckDBPyConnection, database: str, autocommit: bool, read_only: bool,
                 settings: SessionSettings, instance: Instance | None = None) -> None:
        self.duck = duck
        #: The database instance the connection belongs to (shared with the process's other
        #: connections to the same file): ``instance.state`` holds what they share.
        self.instance = instance if instance is not None else Instance(duck)
        self.database = database
        self.autocommit = autocommit
        self.read_only = read_only
        self.settings = settings
        self.in_transaction = False
        self.lock = threading.RLock()
        self.cancel = threading.Event()  # set by Connection.interrupt(): long work stops at its next check
        self._router: Router | None = None
        self._functions: dict[str, Any] | None = None
        self.state: dict[str, Any] = {}  # per-session caches of the capabilities
        self.script_state: dict[str, Any] = {}  # per execute(): work shared by one script's statements
        self._pending: weakref.ref[ResultOwner] | None = None  # the cursor whose rows are live on duck
        self._scopes: dict[int, tuple[weakref.ref[ResultOwner], list[str]]] = {}  # cursor id -> its names
        self._scope: list[str] | None = None  # names registered by the statement now running
        self._statement_functions: set[str] = set()  # those of them that are functions

    # The one entry point ------------------------------------------------------------------
    def execute(self, owner: ResultOwner, sql: str, parameters: Parameters = None) -> Opened:
        """Run ``sql`` (one statement, or a script whose last statement's result is kept) for
        ``owner`` (a cursor); see the module docstring."""
        if not isinstance(sql, str):
            raise ProgrammingError(f"expected the statement as a str, found {type(sql).__name__}")
        self.claim(owner)
        if self.cancel.is_set():
            self.cancel.clear()
        try:
            if not self.router.needs_mallard(sql) and ";" not in sql.rstrip().rstrip(";"):
                return self._run_plain(sql, parameters)
            return self._run_script(owner, sql, parameters)
        finally:
            self._pending = weakref.ref(owner)  # whatever is left on DuckDB is this statement's

    def _run_script(self, owner: ResultOwner, sql: str, parameters: Parameters) -> Opened:
        from engine.dialect import parse_in_script, statement_spans

        spans = statement_spans(sql)
        if not spans:
            raise ProgrammingError("expected a SQL statement, found only whitespace or comments")
        if parameters and len(spans) > 1:
            raise ProgrammingError(
                f"parameters need a single statement; found {len(spans)} statements separated by ;")
        self.script_state = {}  # a new script: nothing shared with the previous execute()
        opened = Opened(False)
        for start, end in spans:
            self.finish(owner)
            text = sql[start:end]
            if not self.router.needs_mallard(text):
                opened = self._run_plain(text, parameters)
                continue
            for node in parse_in_script(sql, start, end):
                opened = self._run_tree(owner, node, text, parameters)
        return opened

    def _run_tree(self, owner: ResultOwner, node: exp.Expr, text: str, parameters: Parameters) -> Opened:
        from engine.dialect.base import Statement
        from engine.dialect.parameters import bind_parameters
        from engine.executors.planned import run_planned_statement
        from engine.registry import EXECUTORS

        executor = EXECUTORS.get(type(node)) if isinstance(node, Statement) else None
        bound = bind_parameters(node, parameters) if executor is not None else node
        self.begin_implicit()
        self._scope = self._scopes.setdefault(id(owner), (weakref.ref(owner), []))[1]
        try:
            if executor is None:
                result = run_planned_statement(self, node, text, parameters)
            else:
                result = executor(self, bound)
            return self._open(owner, result)
        except BaseException:
            self.finish(owner)
            raise
        finally:
            self._scope = None

    def _open(self, owner: ResultOwner, result: StatementResult) -> Opened:
        """Make ``result``'s rows the pending result of the DuckDB connection."""
        if result.rows is None:
            self.finish(owner)
            return Opened(False, result.rowcount, result.message)
        name = f"__mallard_result_{next(_names)}"
        self.register_for_statement(name, result.rows)
        try:
            self.duck.execute(exp.select("*").from_(exp.to_identifier(name, quoted=True)).sql("duckdb"))
        except duckdb.Error as e:
            raise translate(e) from e
        return Opened(True, result.rowcount, result.message)

    def _run_drop(self, sql: str, parameters: Parameters) -> Opened:
        """``DROP ...``: a label view dropped as a table is dropped as the view it is, and the
        label storage no view reads any more goes with it (:mod:`engine.labeling.storage`)."""
        from engine.labeling.storage import drop_orphans, rewrite_drop, session_runner

        with self.atomic():
            rewritten = rewrite_drop(self, sql) if parameters is None else None
            if rewritten is not None:
                self.sql(rewritten)
            else:
                self._execute_plain(sql, parameters)
            drop_orphans(session_runner(self))
        self.catalog_changed()  # as for any DROP: what the planner sees may have gone
        return Opened(False)

    def _execute_plain(self, sql: str, parameters: Parameters) -> None:
        """DuckDB runs the text as it is; its errors as PEP 249 ones (with what to do instead
        where it refused to change a label view)."""
        try:
            if parameters is None:
                self.duck.execute(sql)
            else:
                self.duck.execute(sql, parameters)
        except duckdb.Error as e:
            raise self._explained(translate(e), sql) from e
        except (TypeError, ValueError, NotImplementedError, OverflowError) as e:
            raise ProgrammingError(f"could not bind the parameters: {e}") from e

    def _explained(self, error: Error, sql: str) -> Error:
        """``error`` with what to do instead where DuckDB refused to change a label view."""
        from engine.labeling.storage import view_write_hint

        hint = view_write_hint(self, sql, str(error))
        return error if hint is None else type(error)(f"{error}. {hint}")

    def _run_plain(self, sql: str, parameters: Parameters) -> Opened:
        """The fast path: DuckDB runs the text as it is."""
        from engine.router import statement_kind

        kind = statement_kind(sql)
        if kind == "begin" and self.in_transaction and not self.autocommit:
            return Opened(False)  # manual-commit mode already opened the transaction: BEGIN is a no-op
        if kind not in ("begin", "end"):
            self.begin_implicit()
        if kind == "drop":
            return self._run_drop(sql, parameters)
        duck = self.duck
        try:
            self._execute_plain(sql, parameters)
        except Error as e:
            if kind == "end" and isinstance(e.__cause__, duckdb.Error):  # DuckDB ended the transaction
                self.in_transaction = False
                self.catalog_changed()
            raise
        if kind == "begin":
            self.in_transaction = True
        elif kind == "end":
            self.in_transaction = False
            self.catalog_changed()
        if kind == "rows":
            return Opened(True)
        if kind == "dml":
            return Opened(False, duck.rowcount)
        if kind == "other":
            description = duck.description
            if description is not None and not (len(description) == 1 and description[0][0] in ("Count", "Success")):
                return Opened(True)
            self.catalog_changed()  # CREATE, DROP, ALTER... may have changed what the planner sees
        return Opened(False)

    # Results and what statements register -------------------------------------------------
    def claim(self, owner: ResultOwner) -> None:
        """``owner`` is about to run a statement: the previous owner's live rows go to memory,
        and ``owner``'s own earlier statement ends."""
        previous = self._pending() if self._pending is not None else None
        if previous is not None and previous is not owner:
            previous._detach()
        elif previous is None and self._pending is not None:
            self.duck.abort()  # its cursor is gone: nobody will read those rows
            self._pending = None
        if self._scopes:
            self._release_abandoned()
        self.finish(owner)
        self._pending = weakref.ref(owner)

    def _release_abandoned(self) -> None:
        """Release what the statements of cursors that no longer exist registered."""
        for key, (ref, names) in list(self._scopes.items()):
            if ref() is None:
                del self._scopes[key]
                self._unregister_all(names)

    def finish(self, owner: ResultOwner) -> None:
        """End ``owner``'s statement: discard its unread rows on DuckDB, release what it registered."""
        current = self._pending() if self._pending is not None else None
        if current is owner:
            self.duck.abort()
            self._pending = None
        _ref, names = self._scopes.pop(id(owner), (None, []))
        if names and current is not None and current is not owner:
            self.quiesce()  # another cursor's rows are pending: read them into memory first
        self._unregister_all(names)

    def _unregister_all(self, names: list[str]) -> None:
        for name in names:
            with contextlib.suppress(duckdb.Error):  # the connection is closing or the name is gone
                if name in self._statement_functions:
                    self._statement_functions.discard(name)
                    self.duck.remove_function(name)
                else:
                    self.duck.unregister(name)

    def quiesce(self) -> None:
        """Leave no unfinished result on the DuckDB connection (DuckDB requires it before
        register, create_function and the like): a cursor's live rows are read into memory."""
        owner = self._pending() if self._pending is not None else None
        if owner is not None:
            owner._detach()
        self._pending = None
        self.duck.abort()

    def register(self, name: str, rows: Any) -> None:
        """Expose an Arrow table (or batch, reader, relation) to SQL as ``name``; the caller unregisters it."""
        self.quiesce()
        self.duck.register(name, rows)

    def unregister(self, name: str) -> None:
        self.quiesce()
        self.duck.unregister(name)

    def register_function_for_statement(self, name: str, function: Any, parameters: list[str], returns: str) -> None:
        """Make ``function`` (vectorized: Arrow arrays in, an Arrow array out; NULL in, NULL
        out) callable from SQL as ``name`` until the running statement ends."""
        if self._scope is None:
            raise OperationalError(f"{name} can only be registered while a statement runs")
        self.quiesce()
        with contextlib.suppress(duckdb.Error):  # a function of that name left by a statement that failed midway
            self.duck.remove_function(name)
        from duckdb.func import ARROW

        self.duck.create_function(name, function, [duckdb.sqltype(p) for p in parameters], duckdb.sqltype(returns),
                                  type=ARROW, side_effects=False)
        self._scope.append(name)
        self._statement_functions.add(name)

    def register_for_statement(self, name: str, rows: Any) -> None:
        """Expose ``rows`` as ``name`` until the running statement ends (its cursor finishes)."""
        if self._scope is None:
            raise OperationalError(f"{name} can only be registered while a statement runs")
        self.register(name, rows)
        self._scope.append(name)

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
        with contextlib.suppress(duckdb.Error):  # no transaction was open (DuckDB ended it already)
            self.duck.execute("ROLLBACK")

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """All-or-nothing writes of one extended statement.

        Outside a transaction this is a transaction of its own.  Inside one (manual-commit
        mode, or after BEGIN) a failure rolls the whole transaction back, as a failed
        statement aborts a transaction in DuckDB.
        """
        own = not self.in_transaction
        if own:
            self.quiesce()
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
    def sql(self, query: str | exp.Expr, params: Sequence[Any] | None = None) -> duckdb.DuckDBPyConnection:
        """Run one statement on DuckDB, translating errors to PEP 249 classes."""
        text = query if isinstance(query, str) else query.sql("duckdb")
        try:
            return self.duck.execute(text, params) if params else self.duck.execute(text)
        except duckdb.Error as e:
            raise translate(e) from e

    def row(self, query: str | exp.Expr, params: Sequence[Any] | None = None) -> tuple[Any, ...]:
        """The one row of a query that always returns one (an aggregate without GROUP BY)."""
        found = self.sql(query, params).fetchone()
        if found is None:
            raise OperationalError(f"expected a row from {query if isinstance(query, str) else query.sql('duckdb')}")
        return found

    def scalar(self, query: str | exp.Expr, params: Sequence[Any] | None = None) -> Any:
        """The first value of the first row of a query (None when it has no row)."""
        row = self.sql(query, params).fetchone()
        return None if row is None else row[0]

    def relation(self, query: str | exp.Expr, params: Parameters = None) -> duckdb.DuckDBPyRelation:
        """A DuckDB relation over a query (the result shape of statements whose rows SQL computes)."""
        text = query if isinstance(query, str) else query.sql("duckdb")
        try:
            if not params:
                return self.duck.sql(text)
            return self.duck.sql(text, params=dict(params) if isinstance(params, Mapping) else list(params))
        except duckdb.Error as e:
            raise translate(e) from e
        except (TypeError, ValueError, NotImplementedError, OverflowError) as e:
            raise ProgrammingError(f"could not bind the parameters: {e}") from e

    def table_exists(self, table: exp.Table) -> bool:
        """Whether a table or view of that name exists (names compare case-insensitively)."""
        query = (
            "SELECT count(*) FROM information_schema.tables WHERE lower(table_schema) = lower(?)"
            " AND lower(table_name) = lower(?) AND table_catalog = coalesce(?, current_database())"
        )
        params = [table.db or "main", table.name, table.catalog or None]
        row = self.sql(query, params).fetchone()
        return bool(row and row[0])

    # Router and planned functions -------------------------------------------------
    def catalog_changed(self) -> None:
        """Forget cached catalog views (after a commit, rollback or extended statement)."""
        self._functions = None
        self._router = None

    @property
    def functions(self) -> dict[str, Any]:
        """Function name -> what it is, for every function Mallard plans in this session."""
        if self._functions is None:
            from engine.registry import PLANNED_FUNCTION_SOURCES

            found: dict[str, Any] = {}
            for source in PLANNED_FUNCTION_SOURCES:
                found.update(source(self))
            self._functions = found
        return self._functions

    @property
    def router(self) -> Router:
        if self._router is None:
            from engine.router import Router

            self._router = Router(frozenset(self.functions))
        return self._router

    # Progress and cancellation --------------------------------------------------------
    def progress(self, total: int | None, desc: str, unit: str = "it") -> Any:
        """A tqdm progress bar on a terminal (outside CI), else a silent stand-in (then tqdm,
        75 ms to import, is not imported)."""
        if not self.shows_progress():
            return SilentProgress(total)
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False)

    def shows_progress(self) -> bool:
        """Whether :meth:`progress` would draw a bar (work that costs something to size a bar,
        such as counting a query's rows, skips it when nobody sees the bar)."""
        mode = self.settings["progress"]
        if mode != "auto":
            return bool(mode == "on")
        if os.environ.get("CI"):
            return False
        try:
            return sys.stderr.isatty()
        except (AttributeError, ValueError):  # replaced or closed stderr
            return False

    def check_cancelled(self, what: str) -> None:
        """Raise OperationalError when the connection was interrupted (long work calls this between steps)."""
        if self.cancel.is_set():
            self.cancel.clear()
            raise OperationalError(f"{what} was interrupted; nothing half-made was kept")

    def require_writable(self, what: str) -> None:
        if self.read_only:
            raise ProgrammingError(f"{what} writes to the database, which is open read-only")


class SilentProgress:
    """What :meth:`Session.progress` returns when no bar is shown: counts, shows nothing."""

    def __init__(self, total: int | None) -> None:
        self.total = total
        self.n: float = 0

    def update(self, n: float = 1) -> None:
        self.n += n

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        """Nothing to show."""

    def refresh(self) -> None:
        """Nothing to show."""

    def close(self) -> None:
        """Nothing to close."""

    def __enter__(self) -> SilentProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
