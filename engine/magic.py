"""IPython magics: ``%load_ext engine`` adds ``%sql`` and ``%%sql``.

    %sql SELECT 42 AS answer               # a line: returns a pandas DataFrame
    %%sql                                  # a cell: every statement runs, the last one's rows return
    LOAD VIDEO 'data/carphone.mp4' INTO clip;
    SELECT count(*) FROM clip
    %sql --connect demo.duckdb             # bind the magics to a database file
    %sql --conn con                        # ... or to a Connection held in a notebook variable
    %%sql --out frames_df                  # also store the DataFrame in a variable

Statements without rows return None and print their summary.  Errors show as one line,
not a traceback.
"""
from __future__ import annotations

import re
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class

import engine
from engine.errors import Error

_OPTION = re.compile(r"""^(--connect|--conn|--out|-o)\s+("[^"]*"|'[^']*'|\S+)\s*""")


def _split_options(line: str) -> tuple[dict[str, str], str]:
    """Leading ``--flag value`` options of a magic line, and the SQL after them.

    >>> _split_options("--conn con SELECT 1")
    ({'conn': 'con'}, 'SELECT 1')
    """
    options: dict[str, str] = {}
    rest = line.strip()
    while rest.startswith("-"):
        match = _OPTION.match(rest)
        if match is None:
            raise engine.InterfaceError(f"unknown or incomplete option in {rest.split()[0]!r}; expected "
                                        "--connect PATH, --conn VARIABLE or --out VARIABLE")
        options[match.group(1).lstrip("-")] = match.group(2).strip("'\"")
        rest = rest[match.end():]
    return options, rest


@magics_class
class SqlMagics(Magics):
    """The ``%sql`` / ``%%sql`` magics, bound to one Mallard connection."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self.connection: engine.Connection | None = None
        self._owned = False  # whether the magics opened the connection (and so close it)

    def _connection(self) -> engine.Connection:
        if self.connection is None or self.connection.closed:
            self._use(engine.connect(":memory:", autocommit=True), owned=True)
        assert self.connection is not None
        return self.connection

    def _use(self, connection: engine.Connection, owned: bool) -> None:
        self.close()
        self.connection, self._owned = connection, owned

    def _namespace(self) -> dict[str, Any]:
        """The notebook's variables."""
        if self.shell is None:
            raise engine.InterfaceError("the %sql magics need an IPython shell")
        namespace: dict[str, Any] = self.shell.user_ns
        return namespace

    def close(self) -> None:
        """Close the connection the magics opened (a bound notebook variable stays open)."""
        if self.connection is not None and self._owned:
            self.connection.close()
        self.connection, self._owned = None, False

    @line_cell_magic
    def sql(self, line: str, cell: str | None = None) -> Any:
        try:
            options, query = _split_options(line)
            if "connect" in options:
                self._use(engine.connect(options["connect"], autocommit=True), owned=True)
            if "conn" in options:
                bound = self._namespace().get(options["conn"])
                if not isinstance(bound, engine.Connection):
                    raise engine.InterfaceError(
                        f"--conn {options['conn']}: expected a variable holding an engine.Connection, "
                        f"found {type(bound).__name__}")
                self._use(bound, owned=False)
            text = cell if cell is not None else query
            if not text.strip():
                return None
            result = self._run(text)
        except Error as e:
            print(f"Error ({type(e).__name__}): {e}")
            return None
        out = options.get("out") or options.get("o")
        if out:
            self._namespace()[out] = result
        return result

    def _run(self, text: str) -> Any:
        cursor = self._connection().execute(text)
        if cursor.description is not None:
            return cursor.fetch_df()
        if cursor.message:
            print(cursor.message)
        elif cursor.rowcount >= 0:
            print(f"{cursor.rowcount} rows affected")
        return None


def load_ipython_extension(ipython: Any) -> None:
    ipython.register_magics(SqlMagics)
