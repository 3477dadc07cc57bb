"""The Mallard SQL dialect: DuckDB's dialect plus Mallard's extended statements.

Statements are :class:`~engine.dialect.base.Statement` subclasses defined in the modules of
this package (one module per capability); importing the package imports them all, and the
dialect's parser and generator tables are built from their registry.

>>> from engine.dialect import parse_statements
>>> [type(s).__name__ for s in parse_statements("LOAD VIDEO 'a.mp4' INTO clips; SELECT 1")]
['LoadVideo', 'Select']
>>> parse_statements("LOAD VIDEO 'a.mp4' INTO clips")[0].sql("mallard")
"LOAD VIDEO 'a.mp4' INTO clips"
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.errors import ErrorLevel, ParseError, TokenError
from sqlglot.generators.duckdb import DuckDBGenerator
from sqlglot.parsers.duckdb import DuckDBParser
from sqlglot.tokens import Token, TokenType

from engine.dialect.base import STATEMENTS, MallardParserMixin, Statement
from engine.errors import ProgrammingError

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")


def _by_first_word() -> dict[str, tuple[type[Statement], ...]]:
    table: dict[str, list[type[Statement]]] = {}
    for cls in STATEMENTS:
        table.setdefault(cls.FIRST, []).append(cls)
    return {word: tuple(classes) for word, classes in table.items()}


def _line_col(sql: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset."""
    line = sql.count("\n", 0, offset) + 1
    col = offset - (sql.rfind("\n", 0, offset) + 1) + 1
    return line, col


class MallardParser(MallardParserMixin, DuckDBParser):
    """DuckDB's parser, with Mallard's statements tried first on their leading word."""

    STATEMENTS_BY_FIRST = _by_first_word()

    def _parse_statement(self) -> exp.Expr | None:
        curr = self._curr
        if curr is not None and curr.token_type not in (TokenType.IDENTIFIER, TokenType.STRING):
            candidates = self.STATEMENTS_BY_FIRST.get(curr.text.upper())
            if candidates:
                start = self._index
                for cls in candidates:
                    self._retreat(start)
                    self._advance()
                    node = cls.parse(self)
                    if node is not None:
                        return node
                self._retreat(start)
        return super()._parse_statement()

    def raise_error(self, message: str, token: Token | None = None) -> None:  # type: ignore[override]
        """Like sqlglot's, but the column is where the offending token starts."""
        sql = self.sql or ""
        if message == "Invalid expression / Unexpected token":
            message = f"Expected the end of the statement, found {self.found()}"
        token = token or self._curr
        if token:
            start = min(token.start, len(sql))
        else:  # at the end of the text: point just past the last token
            token = self._prev or Token.string("")
            start = min(token.end + 1 if self._prev else 0, len(sql))
        line, col = _line_col(sql, start)
        line_start = sql.rfind("\n", 0, start) + 1
        line_end = sql.find("\n", start)
        line_text = sql[line_start: None if line_end < 0 else line_end]
        width = max(1, min(token.end, len(sql) - 1) - start + 1)
        pointer = " " * (col - 1) + "^" * width
        error = ParseError.new(
            f"{message} (line {line}, column {col})\n  {line_text}\n  {pointer}",
            description=message,
            line=line,
            col=col,
            start_context=sql[max(0, start - 50): start],
            highlight=sql[start: start + width],
            end_context=sql[start + width: start + width + 50],
        )
        if self.error_level == ErrorLevel.IMMEDIATE:
            raise error
        self.errors.append(error)


class Mallard(DuckDB):
    """DuckDB's SQL plus Mallard's statements; registered with sqlglot as ``"mallard"``."""

    Parser = MallardParser

    class Generator(DuckDBGenerator):
        TRANSFORMS = {
            **DuckDBGenerator.TRANSFORMS,
            **{cls: (lambda g, e: e.to_sql(g)) for cls in STATEMENTS},
        }


def parse_statements(sql: str) -> list[exp.Expression]:
    """Parse SQL text (one or more statements) into ASTs; errors are ProgrammingError.

    >>> parse_statements("LOAD VIDEO INTO t")
    Traceback (most recent call last):
    ...
    engine.errors.ProgrammingError: Expected a video file path (a quoted string) after LOAD VIDEO, found 'INTO' (line 1, column 12)
      LOAD VIDEO INTO t
                 ^^^^
    """
    try:
        trees = sqlglot.parse(sql, read=Mallard, error_level=ErrorLevel.IMMEDIATE)
    except ParseError as e:
        raise ProgrammingError(_describe_parse_error(sql, e)) from e
    except TokenError as e:
        raise ProgrammingError(f"Could not read the SQL text: {e}") from e
    return [t for t in trees if t is not None]


def _describe_parse_error(sql: str, error: ParseError) -> str:
    detail: dict[str, Any] = error.errors[0] if error.errors else {}
    message = str(error)
    if detail.get("line") is not None and "(line " not in message:
        message = f"{detail.get('description') or message} (line {detail['line']}, column {detail.get('col')})"
    return message


def statement_spans(sql: str) -> list[tuple[int, int]]:
    """(start, end) offsets of each statement of a script, split on semicolons outside
    strings and comments.

    >>> statement_spans("SELECT 1; SELECT 2")
    [(0, 8), (10, 18)]
    """
    try:
        tokens = Mallard().tokenize(sql)
    except TokenError as e:
        raise ProgrammingError(f"Could not read the SQL text: {e}") from e
    spans: list[tuple[int, int]] = []
    first: Token | None = None
    last: Token | None = None
    for token in tokens + [Token(TokenType.SEMICOLON, ";")]:
        if token.token_type == TokenType.SEMICOLON:
            if first is not None and last is not None:
                spans.append((first.start, last.end + 1))
            first = last = None
            continue
        first = first or token
        last = token
    return spans


def split_statements(sql: str) -> list[str]:
    """The statements of a SQL script as text.

    >>> split_statements("SELECT ';'; -- a comment; here\\nSELECT 2;")
    ["SELECT ';'", 'SELECT 2']
    """
    return [sql[a:b] for a, b in statement_spans(sql)]


def parse_in_script(sql: str, start: int, end: int) -> list[exp.Expression]:
    """Parse the statement at ``sql[start:end]``; errors give positions in the whole script."""
    try:
        return parse_statements(sql[start:end])
    except ProgrammingError:
        prefix = "".join(c if c == "\n" else " " for c in sql[:start])
        return parse_statements(prefix + sql[start:end])  # raises with script-wide positions


def is_extended(node: exp.Expression) -> bool:
    """True for Mallard's own statements (as opposed to DuckDB SQL)."""
    return isinstance(node, Statement)
