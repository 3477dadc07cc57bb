"""The ``mallard`` command: an interactive SQL shell, one-shot statements, scripts, the demo.

    mallard [database.duckdb]           interactive shell (default: an in-memory database)
    mallard [database] -c "SQL"         run SQL (one or more statements) and exit
    mallard run file.sql [--db PATH]    run a script, stopping at the first error
    mallard demo [--db PATH]            the demo on a real clip
    mallard serve DATABASE [options]    the prediction server (mallard serve --help)
    mallard --server URL [--token T]    the shell, its statements run by a running server

Statements end with ``;`` and may span lines.  Results print as aligned tables (or CSV, or
JSON); an error prints as one line (no traceback) and the shell carries on.  On a terminal
the shell completes keywords and names with Tab, highlights SQL, keeps its history in
``~/.mallard_history`` (Up searches it by prefix, Ctrl-R by any part), and Ctrl-C stops the
running statement; read from a pipe it prints results only, with no terminal control codes.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import engine
from engine.dialect import split_statements
from engine.errors import Error
from engine.result_formats import FORMATS, format_explain, is_explain, render

#: Rows a table shows before it says how many more there are (CSV and JSON print them all).
MAX_ROWS = 40
#: Statements that only read: after any other, the completer reads the catalog's names again.
_READS = re.compile(r"^\s*(?:\(\s*)*(SELECT|WITH|FROM|VALUES|TABLE|EXPLAIN|SHOW|DESCRIBE|SUMMARIZE|VALIDATE|"
                    r"ANALYZE\s+LABELING|PRAGMA\s+show)\b", re.I)
_QUERY = re.compile(r"^\s*(?:\(\s*)*(SELECT|WITH|FROM|VALUES|TABLE)\b", re.I)


@dataclass
class Outcome:
    """What one statement gave back, fetched on the worker thread."""

    names: list[str] | None
    rows: list[Any]
    total: int
    message: str | None
    rowcount: int


class Shell:
    """Runs SQL text against one connection and prints what happened."""

    def __init__(self, con: engine.Connection, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> None:
        self.con = con
        self.stdout = out  # messages and timings always go here
        self.out = out  # results: here, or the file of .output
        self.err = err
        self.timer = False
        self.explain = False
        self.mode = "table"
        #: Called after a statement that may have changed the catalog (the completer's names).
        self.on_catalog_change: Callable[[], None] | None = None

    # Statements ---------------------------------------------------------------------------
    def run_sql(self, sql: str) -> bool:
        """Run every statement of ``sql``, printing results; False at the first error."""
        try:
            statements = split_statements(sql)
        except Error:
            statements = [sql]  # text sqlglot cannot tokenize: let DuckDB read it whole
        return all(self._run_statement(statement) for statement in statements)  # stops at the first error

    def _run_statement(self, statement: str) -> bool:
        started = time.perf_counter()
        try:
            if self.explain and _QUERY.match(statement):
                plan, _ = self._run_interruptibly(lambda: self._fetch(f"EXPLAIN {statement}"))
                self._show(plan)
            outcome, interrupted = self._run_interruptibly(lambda: self._fetch(statement))
        except Error as e:
            self._error(e)
            return False
        finally:
            if self.on_catalog_change is not None and not _READS.match(statement):
                self.on_catalog_change()
        if interrupted:
            print("Interrupted (the statement finished before it could stop)", file=self.err)
        self._show(outcome)
        if self.timer:
            print(f"Run time: {time.perf_counter() - started:.3f} s", file=self.stdout)
        return True

    def _run_interruptibly(self, work: Callable[[], Outcome]) -> tuple[Outcome, bool]:
        """Run ``work`` on a worker thread; Ctrl-C interrupts the connection (the statement
        stops, the shell goes on).  Returns the outcome and whether Ctrl-C was pressed."""
        box: dict[str, Any] = {}
        done = threading.Event()  # not Thread.join: a Ctrl-C inside join() can leave is_alive() wrong

        def target() -> None:
            try:
                box["outcome"] = work()
            except BaseException as e:  # handed to the main thread below
                box["error"] = e
            finally:
                done.set()

        threading.Thread(target=target, name="mallard-statement", daemon=True).start()
        interrupted = False
        while not done.is_set():
            try:
                done.wait(0.05)
            except KeyboardInterrupt:
                interrupted = True
                interrupt = getattr(self.con, "interrupt", None)
                if interrupt is not None:
                    interrupt()
        if "error" in box:
            if interrupted and isinstance(box["error"], Error):
                raise _Interrupted(str(box["error"])) from box["error"]
            raise box["error"]
        return box["outcome"], interrupted

    def _fetch(self, statement: str) -> Outcome:
        cursor = self.con.execute(statement)
        if cursor.description is None:
            return Outcome(None, [], 0, cursor.message, cursor.rowcount)
        names = [d[0] for d in cursor.description]
        if self.mode != "table" or is_explain(names):
            rows = cursor.fetchall()
            return Outcome(names, rows, len(rows), None, -1)
        rows = cursor.fetchmany(MAX_ROWS)
        rest = len(cursor.fetchall()) if len(rows) == MAX_ROWS else 0
        return Outcome(names, rows, len(rows) + rest, None, -1)

    def _show(self, outcome: Outcome) -> None:
        if outcome.names is not None and is_explain(outcome.names):
            print(format_explain(outcome.rows), file=self.out)
        elif outcome.names is not None:
            print(render(self.mode, outcome.names, outcome.rows, outcome.total), file=self.out)
        elif outcome.message:
            print(outcome.message, file=self.stdout)
        elif outcome.rowcount >= 0:
            print(f"{outcome.rowcount} row{'s' if outcome.rowcount != 1 else ''} affected", file=self.stdout)
        self.out.flush()

    def _error(self, error: Error) -> None:
        if isinstance(error, _Interrupted):
            print("Interrupted", file=self.err)
        else:
            print(f"Error ({type(error).__name__}): {error}", file=self.err)

    # Dot commands ---------------------------------------------------------------------------
    def dot_command(self, line: str) -> bool:
        """Handle a ``.command``; False means quit."""
        word, _, argument = line.strip().partition(" ")
        if word in (".quit", ".exit"):
            return False
        handler = _DOT_COMMANDS.get(word)
        if handler is None:
            print(f"Error: unknown command {word}; try .help", file=self.err)
        else:
            handler[0](self, argument.strip())
        return True

    def _help(self, argument: str) -> None:
        lines = [f"{usage:<24} {text}" for usage, text in ((u, t) for _, u, t in _DOT_COMMANDS.values())]
        lines.append(f"{'.quit, .exit':<24} leave the shell")
        print("\n".join(lines), file=self.stdout)

    def _tables(self, argument: str) -> None:
        self.run_sql("SELECT table_schema AS schema, table_name AS name, table_type AS type "
                     "FROM information_schema.tables ORDER BY 1, 2;")

    def _models(self, argument: str) -> None:
        self.run_sql("SHOW MODELS;")

    def _schemas(self, argument: str) -> None:
        self.run_sql("SELECT name, max(version) AS latest_version, count(*) AS versions, max(created_at) AS updated_at"
                     " FROM mallard.schemas GROUP BY name ORDER BY name;")

    def _functions(self, argument: str) -> None:
        from engine.shell_names import mallard_functions

        rows = mallard_functions(self.con)
        print(render(self.mode, ["name", "kind", "arguments", "returns"], rows), file=self.out)

    def _switch(self, attribute: str, argument: str) -> None:
        if argument.lower() not in ("on", "off"):
            print(f"Error: expected on or off, found {argument!r}", file=self.err)
            return
        setattr(self, attribute, argument.lower() == "on")

    def _explain(self, argument: str) -> None:
        self._switch("explain", argument)

    def _timer(self, argument: str) -> None:
        self._switch("timer", argument)

    def _mode(self, argument: str) -> None:
        if argument.lower() not in FORMATS:
            print(f"Error: expected a mode among {', '.join(FORMATS)}, found {argument!r}", file=self.err)
            return
        self.mode = argument.lower()

    def _output(self, argument: str) -> None:
        if self.out is not self.stdout:
            self.out.close()
            self.out = self.stdout
        if argument and argument != "stdout":
            try:
                self.out = open(argument, "w", encoding="utf-8")  # noqa: SIM115 (closed by the next .output)
            except OSError as e:
                print(f"Error: cannot write {argument}: {e.strerror}", file=self.err)

    def close(self) -> None:
        """Close the ``.output`` file, if one is open."""
        self._output("")

    # Reading statements ----------------------------------------------------------------
    def interact(self) -> None:
        """The read-eval-print loop: prompt_toolkit on a terminal, plain lines from a pipe."""
        try:
            if sys.stdin.isatty() and self.stdout.isatty():
                from engine.shell_prompt import prompt_loop

                prompt_loop(self)
            else:
                self.read_lines(sys.stdin)
        finally:
            self.close()

    def read_lines(self, lines: Iterable[str]) -> None:
        """Statements and dot commands from lines of text (a pipe): no prompts, no history."""
        buffer: list[str] = []
        for raw in lines:
            line = raw.rstrip("\n")
            if not buffer and line.strip().startswith("."):
                if not self.dot_command(line):
                    return
                continue
            buffer.append(line)
            text = "\n".join(buffer)
            if statement_complete(text):
                buffer.clear()
                self.run_sql(text)
        if "".join(buffer).strip():
            self.run_sql("\n".join(buffer))


class _Interrupted(engine.OperationalError):
    """The statement stopped because the user pressed Ctrl-C."""


#: Dot command -> (handler, usage, what it does).
_DOT_COMMANDS: dict[str, tuple[Callable[[Shell, str], None], str, str]] = {
    ".help": (Shell._help, ".help", "this list"),
    ".tables": (Shell._tables, ".tables", "tables and views of every schema"),
    ".models": (Shell._models, ".models", "models (SHOW MODELS)"),
    ".schemas": (Shell._schemas, ".schemas", "data schemas and their versions"),
    ".functions": (Shell._functions, ".functions", "Mallard's SQL functions, models and macros"),
    ".explain": (Shell._explain, ".explain on|off", "print each query's plan (EXPLAIN) before its result"),
    ".timer": (Shell._timer, ".timer on|off", "print how long each statement took"),
    ".mode": (Shell._mode, ".mode table|csv|json", "how results print"),
    ".output": (Shell._output, ".output [FILE]", "write results to FILE (no FILE: back to the screen)"),
}


def statement_complete(text: str) -> bool:
    """Whether the typed text ends a statement: a ``;`` outside strings and comments.

    >>> statement_complete("SELECT 'a;"), statement_complete("SELECT 1;  -- done")
    (False, True)
    """
    from sqlglot.tokenizer_core import TokenType

    from engine.dialect import Mallard

    if ";" not in text:
        return False
    try:
        tokens = Mallard().tokenize(text)
    except Exception:
        return False  # an unterminated string or comment: keep reading
    return bool(tokens) and tokens[-1].token_type == TokenType.SEMICOLON


def _connect(database: str, token: str | None = None) -> Any:
    if database.startswith(("http://", "https://")):  # a running server owns the file
        from engine.serving.client import RemoteConnection

        return RemoteConnection(database, token or os.environ.get("MALLARD_TOKEN"))
    return engine.connect(database, autocommit=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "demo":
        from engine.demo import main as demo

        return demo(args[1:])
    if args and args[0] == "serve":
        from engine.serving.server import main as serve

        return serve(args[1:])
    if args and args[0] == "run":
        parser = argparse.ArgumentParser(prog="mallard run", description="Run a SQL script.")
        parser.add_argument("file")
        parser.add_argument("--db", default=":memory:", help="database file (default: in memory)")
        opts = parser.parse_args(args[1:])
        try:
            with open(opts.file, encoding="utf-8") as f:
                script = f.read()
        except OSError as e:
            print(f"Error: cannot read {opts.file}: {e.strerror}", file=sys.stderr)
            return 1
        return _run_once(opts.db, script)
    parser = argparse.ArgumentParser(prog="mallard", description="Mallard SQL shell.")
    parser.add_argument("database", nargs="?", default=":memory:", help="database file (default: in memory)")
    parser.add_argument("-c", "--command", help="run this SQL and exit")
    parser.add_argument("--server", help="send the statements to a running `mallard serve` at this URL")
    parser.add_argument("--token", help="the server's bearer token (default: $MALLARD_TOKEN)")
    opts = parser.parse_args(args)
    if opts.server is not None:
        opts.database = opts.server  # _connect reads a URL as a server to talk to
    if opts.command is not None:
        return _run_once(opts.database, opts.command, opts.token)
    try:
        con = _connect(opts.database, opts.token)
    except Error as e:
        print(f"Error ({type(e).__name__}): {e}", file=sys.stderr)
        return 1
    with con:
        Shell(con).interact()
    return 0


def _run_once(database: str, sql: str, token: str | None = None) -> int:
    try:
        con = _connect(database, token)
    except Error as e:
        print(f"Error ({type(e).__name__}): {e}", file=sys.stderr)
        return 1
    with con:
        ok = Shell(con).run_sql(sql)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
