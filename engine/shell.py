"""The ``mallard`` command: an interactive SQL shell, one-shot statements, scripts, the demo.

    mallard [database.duckdb]           interactive shell (default: an in-memory database)
    mallard [database] -c "SQL"         run SQL (one or more statements) and exit
    mallard run file.sql [--db PATH]    run a script, stopping at the first error
    mallard demo [--db PATH]            the demo on a real clip
    mallard serve DATABASE [options]    the prediction server (mallard serve --help)
    mallard --server URL [--token T]    the shell, its statements run by a running server

Statements end with ``;`` and may span lines.  Results print as aligned tables; an error
prints as one line (no traceback) and the shell carries on.  Dot commands: ``.help``,
``.tables``, ``.timer on|off``, ``.quit``.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

import engine
from engine.dialect import split_statements
from engine.errors import Error

MAX_ROWS = 40
MAX_WIDTH = 60
HISTORY = os.path.expanduser("~/.mallard_history")


def format_value(value: Any) -> str:
    """How a value prints in a result table (BLOBs by size, long text shortened)."""
    if value is None:
        return "NULL"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<BLOB {len(value)} bytes>"
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value)
    return text if len(text) <= MAX_WIDTH else text[: MAX_WIDTH - 1] + "…"


def format_table(names: Sequence[str], rows: Sequence[Sequence[Any]], total: int | None = None) -> str:
    """Rows as an aligned text table; numbers right-aligned.

    >>> print(format_table(["n", "name"], [(1, "a"), (22, None)]))
    n  | name
    ---+-----
     1 | a
    22 | NULL
    (2 rows)
    """
    cells = [[format_value(v) for v in row] for row in rows]
    numeric = [all(isinstance(r[i], (int, float)) and not isinstance(r[i], bool) for r in rows if r[i] is not None)
               for i in range(len(names))]
    widths = [max([len(n)] + [len(c[i]) for c in cells]) for i, n in enumerate(names)]
    lines = [" | ".join(n.ljust(w) for n, w in zip(names, widths)).rstrip(),
             "-+-".join("-" * w for w in widths)]
    for row in cells:
        lines.append(" | ".join(c.rjust(w) if num else c.ljust(w)
                                for c, w, num in zip(row, widths, numeric)).rstrip())
    count = len(rows) if total is None else total
    more = f", {count - len(rows)} not shown" if count > len(rows) else ""
    lines.append(f"({count} row{'s' if count != 1 else ''}{more})")
    return "\n".join(lines)


EXPLAIN_COLUMNS = ["explain_key", "explain_value"]


def format_explain(rows: Sequence[Sequence[Any]]) -> str:
    r"""EXPLAIN output (DuckDB's, or Mallard's inference plans) printed whole, not as table cells.

    >>> print(format_explain([("physical_plan", "PROJECTION\n  SEQ_SCAN")]))
    -- physical_plan
    PROJECTION
      SEQ_SCAN
    """
    return "\n".join(f"-- {key}\n{value}" for key, value in rows)


class Shell:
    """Runs SQL text against one connection and prints what happened."""

    def __init__(self, con: engine.Connection, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> None:
        self.con = con
        self.out = out
        self.err = err
        self.timer = False

    def run_sql(self, sql: str) -> bool:
        """Run every statement of ``sql``, printing results; False at the first error."""
        try:
            statements = split_statements(sql)
        except Error:
            statements = [sql]  # text sqlglot cannot tokenize: let DuckDB read it whole
        for statement in statements:
            started = time.perf_counter()
            try:
                cursor = self.con.execute(statement)
                self._show(cursor)
            except Error as e:
                self._error(e)
                return False
            except KeyboardInterrupt:
                self.con.interrupt()
                print("Interrupted", file=self.err)
                return False
            if self.timer:
                print(f"Run time: {time.perf_counter() - started:.3f} s", file=self.out)
        return True

    def _show(self, cursor: engine.Cursor) -> None:
        if cursor.description is not None and [d[0] for d in cursor.description] == EXPLAIN_COLUMNS:
            print(format_explain(cursor.fetchall()), file=self.out)
        elif cursor.description is not None:
            names = [d[0] for d in cursor.description]
            rows = cursor.fetchmany(MAX_ROWS)
            rest = len(cursor.fetchall()) if len(rows) == MAX_ROWS else 0
            print(format_table(names, rows, total=len(rows) + rest), file=self.out)
        elif cursor.message:
            print(cursor.message, file=self.out)
        elif cursor.rowcount >= 0:
            print(f"{cursor.rowcount} row{'s' if cursor.rowcount != 1 else ''} affected", file=self.out)

    def _error(self, error: Error) -> None:
        print(f"Error ({type(error).__name__}): {error}", file=self.err)

    def dot_command(self, line: str) -> bool:
        """Handle a ``.command``; False means quit."""
        word, _, arg = line.strip().partition(" ")
        if word in (".quit", ".exit"):
            return False
        if word == ".help":
            print(__doc__, file=self.out)
        elif word == ".tables":
            self.run_sql("SELECT table_schema AS schema, table_name AS name, table_type AS type "
                         "FROM information_schema.tables ORDER BY 1, 2;")
        elif word == ".timer":
            self.timer = arg.strip().lower() in ("on", "1", "true")
        else:
            print(f"Error: unknown command {word}; try .help", file=self.err)
        return True

    def interact(self) -> None:
        """The read-eval-print loop."""
        try:
            import readline

            if os.path.exists(HISTORY):
                readline.read_history_file(HISTORY)
        except (ImportError, OSError):
            readline = None  # type: ignore[assignment]
        print(f"Mallard {engine.__version__} on {self.con.database}. End statements with ;  (.help, .quit)",
              file=self.out)
        buffer: list[str] = []
        while True:
            try:
                line = input("   ...> " if buffer else "mallard> ")
            except EOFError:
                print(file=self.out)
                break
            except KeyboardInterrupt:
                print("^C", file=self.out)
                buffer.clear()
                continue
            if not buffer and line.strip().startswith("."):
                if not self.dot_command(line):
                    break
                continue
            buffer.append(line)
            text = "\n".join(buffer)
            if statement_complete(text):
                buffer.clear()
                self.run_sql(text)
        if readline is not None:
            with contextlib.suppress(OSError):
                readline.write_history_file(HISTORY)


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
