"""The Mallard SQL dialect: DuckDB's dialect plus Mallard's extended statements.

The statement classes live in this package's modules (one per capability) and are listed in
:data:`engine.registry.STATEMENTS`; the parser dispatches on each class's ``PREFIX``.

>>> [type(s).__name__ for s in parse_statements("LOAD VIDEO 'a.mp4' INTO clips; SELECT 1")]
['LoadVideo', 'Select']
>>> parse_statements("LOAD VIDEO 'a.mp4' INTO clips")[0].sql("mallard")
"LOAD VIDEO 'a.mp4' INTO clips"
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.errors import ErrorLevel, ParseError, TokenError
from sqlglot.generators.duckdb import DuckDBGenerator
from sqlglot.tokenizer_core import Token, TokenType

from engine.dialect.base import SETTING_SLOT, MallardParserBase, Statement, prefix_groups
from engine.errors import ProgrammingError


@lru_cache(maxsize=1)
def statements_by_first_word() -> dict[str, tuple[type[Statement], ...]]:
    """Statement classes by the first word of their prefix, longest prefix first."""
    from engine.registry import STATEMENTS

    table: dict[str, list[type[Statement]]] = {}
    for cls in sorted(STATEMENTS, key=lambda c: -len(prefix_groups(c.PREFIX))):
        table.setdefault(prefix_groups(cls.PREFIX)[0].words[0], []).append(cls)
    return {word: tuple(classes) for word, classes in table.items()}


def setting_names() -> frozenset[str]:
    from engine.registry import SETTINGS

    return frozenset(SETTINGS)


def _line_col(sql: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset."""
    line = sql.count("\n", 0, offset) + 1
    col = offset - (sql.rfind("\n", 0, offset) + 1) + 1
    return line, col


def _positional_placeholder(parser: MallardParser) -> exp.Placeholder:
    """A ``?``, remembering where it stands in the text: parameters bind in text order."""
    node = exp.Placeholder()
    assert parser._prev is not None
    node.meta["offset"] = parser._prev.start
    return node


class MallardParser(MallardParserBase):
    """DuckDB's parser, with Mallard's statements tried first on their leading words."""

    PLACEHOLDER_PARSERS = {
        **MallardParserBase.PLACEHOLDER_PARSERS,
        TokenType.PLACEHOLDER: _positional_placeholder,
    }
    # predict(<model>, (<query>), name => value, ...) is Mallard's table function (engine.planner.
    # lift_predictions), not BigQuery's ML.PREDICT, which sqlglot would parse with at most 3 arguments
    FUNCTIONS = {name: f for name, f in MallardParserBase.FUNCTIONS.items() if name != "PREDICT"}

    def _parse_statement(self) -> exp.Expr | None:
        curr = self._curr
        if curr is not None and curr.token_type not in (TokenType.IDENTIFIER, TokenType.STRING):
            candidates = statements_by_first_word().get(curr.text.upper())
            if candidates:
                start = self._index
                for cls in candidates:
                    self._retreat(start)
                    flags = self._match_prefix(cls)
                    if flags is None:
                        continue
                    node = cls.parse_body(self, flags)
                    if node is not None:
                        return node
                self._retreat(start)
        return super()._parse_statement()

    def _match_prefix(self, cls: type[Statement]) -> dict[str, bool] | None:
        """Consume ``cls``'s prefix; the optional groups' flags, or None if it is not there."""
        flags: dict[str, bool] = {}
        owned = False
        done: list[str] = []
        for group in prefix_groups(cls.PREFIX):
            if group.words == (SETTING_SLOT,):
                self.match_words("SESSION") or self.match_words("LOCAL")
                if not self._curr or self._curr.text.lower() not in setting_names():
                    return None
                flags["setting"] = True
            elif group.flag:
                flags[group.flag] = self.match_words(*group.words)
                owned = owned or (flags[group.flag] and cls.OWNED_AFTER_OPTIONAL)
            elif not self.match_words(*group.words):
                if owned:
                    self.fail(f"Expected {' '.join(group.words)} after {' '.join(done)}, found {self.found()}")
                return None
            if group.flag is None or flags.get(group.flag):
                done.extend(group.words)
        return flags

    def _parse_csv(self, parse_method: Any, sep: TokenType = TokenType.COMMA) -> list[Any]:
        """sqlglot's, except that an empty item between two separators (``a,, b``) is an
        error, as DuckDB's own parser has it (sqlglot silently drops it)."""
        items = []
        parse_result = parse_method()
        if parse_result is not None:
            items.append(parse_result)
        while self._match(sep):
            if isinstance(parse_result, exp.Expr):
                self._add_comments(parse_result)
            if self._curr is not None and self._curr.token_type == sep:
                self.raise_error(f"Expected an item after {self._prev.text if self._prev else sep.name}, "
                                 f"found {self.found()}")
            parse_result = parse_method()
            if parse_result is not None:
                items.append(parse_result)
        return items

    def _warn_unsupported(self) -> None:
        """sqlglot logs a warning for statements it keeps as text; Mallard hands those to DuckDB."""

    def raise_error(self, message: str, token: Token | None = None) -> None:
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


class MallardGenerator(DuckDBGenerator):
    """DuckDB's generator; an extended statement writes itself (``Statement.to_sql``)."""

    def sql(self, expression: str | exp.Expr | None, key: str | None = None, comment: bool = True) -> str:
        if isinstance(expression, Statement) and key is None:
            return expression.to_sql(self)
        return super().sql(expression, key, comment)


class Mallard(DuckDB):
    """DuckDB's SQL plus Mallard's statements; registered with sqlglot as ``"mallard"``."""

    Parser = MallardParser
    Generator = MallardGenerator


def parse_statements(sql: str) -> list[exp.Expr]:
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
        raise ProgrammingError(_describe_parse_error(e)) from e
    except TokenError as e:
        raise ProgrammingError(f"Could not read the SQL text: {e}") from e
    except RecursionError as e:
        raise ProgrammingError("the statement is nested too deeply to parse") from e
    return [t for t in trees if isinstance(t, exp.Expr)]


def _describe_parse_error(error: ParseError) -> str:
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
    for token in [*tokens, Token(TokenType.SEMICOLON, ";")]:
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


def parse_in_script(sql: str, start: int, end: int) -> list[exp.Expr]:
    """Parse the statement at ``sql[start:end]``; errors give positions in the whole script."""
    try:
        return parse_statements(sql[start:end])
    except ProgrammingError:
        prefix = "".join(c if c == "\n" else " " for c in sql[:start])
        return parse_statements(prefix + sql[start:end])  # raises with script-wide positions


def is_extended(node: exp.Expr) -> bool:
    """True for Mallard's own statements (as opposed to DuckDB SQL)."""
    return isinstance(node, Statement)


__all__ = [
    "Mallard",
    "MallardParser",
    "Statement",
    "is_extended",
    "parse_in_script",
    "parse_statements",
    "split_statements",
    "statement_spans",
    "statements_by_first_word",
]
