"""Building blocks of Mallard's extended statements.

Each extended statement is one :class:`Statement` subclass: its ``arg_types`` name its
children, ``parse`` reads it after its leading word, and ``to_sql`` writes it back.  The
class registers itself when it is defined, so adding a statement is adding one class (in a
module of this package, which the dialect imports).  ``ROUTE`` is the regular expression
the router's cheap check uses to notice the statement without parsing.
"""
from __future__ import annotations

import re
from typing import Any, ClassVar

from sqlglot import exp
from sqlglot.tokens import TokenType

#: Every extended statement class, in definition order.
STATEMENTS: list[type["Statement"]] = []


class Statement(exp.Expression):
    """Base of every extended statement.

    Subclasses set ``FIRST`` (the leading word, upper case), ``ROUTE`` (a regex matching
    the start of the statement for the router), ``NAME`` (e.g. ``"LOAD VIDEO"``) and
    implement ``parse`` and ``to_sql``.
    """

    FIRST: ClassVar[str] = ""
    ROUTE: ClassVar[str] = ""
    #: The statement's name as users know it (the README documents each one by it).
    NAME: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.FIRST:
            STATEMENTS.append(cls)

    @classmethod
    def route(cls) -> str:
        """The router's regex for this statement (``ROUTE`` unless computed)."""
        return cls.ROUTE

    @classmethod
    def parse(cls, p: "MallardParserMixin") -> "Statement | None":
        """Read the statement after ``FIRST``; return None (having retreated) if it is not ours."""
        raise NotImplementedError

    def to_sql(self, g: Any) -> str:
        raise NotImplementedError

    # Small helpers for to_sql ------------------------------------------------------
    def _replace_sql(self) -> str:
        return " OR REPLACE" if self.args.get("replace") else ""

    def _options_sql(self, g: Any) -> str:
        options = self.args.get("options") or []
        if not options:
            return ""
        inner = ", ".join(f"{g.sql(o, 'this')} = {g.sql(o, 'value')}" for o in options)
        return f" WITH ({inner})"


def option_dict(node: exp.Expression) -> dict[str, exp.Expression]:
    """The ``WITH (name = value, ...)`` options of a statement, keyed by lower-case name."""
    return {o.name.lower(): o.args["value"] for o in node.args.get("options") or []}


def bind_parameters(node: exp.Expression, params: Any) -> exp.Expression:
    """A copy of ``node`` with its ``?`` placeholders replaced by the bound values, in order.

    >>> from engine.dialect import parse_statements
    >>> bind_parameters(parse_statements("LOAD VIDEO ? INTO t")[0], ["a.mp4"]).sql("mallard")
    "LOAD VIDEO 'a.mp4' INTO t"
    """
    from engine.errors import ProgrammingError

    tree = node.copy()
    holders = list(tree.find_all(exp.Placeholder))
    values = list(params or [])
    if isinstance(params, dict):
        raise ProgrammingError("Mallard statements take positional (?) parameters, found named ones")
    if len(holders) != len(values):
        raise ProgrammingError(f"expected {len(holders)} parameter(s) for the ? in the statement, found {len(values)}")
    for holder, value in zip(holders, values):
        holder.replace(exp.convert(value))
    return tree


def literal_value(node: exp.Expression | None) -> Any:
    """The Python value of a literal option value.

    Numbers, strings, booleans, NULL, arrays of those, and bare words (read as strings).

    >>> import sqlglot
    >>> literal_value(sqlglot.parse_one("[1, -2.5, 'a', TRUE]"))
    [1, -2.5, 'a', True]
    """
    if node is None or isinstance(node, exp.Null):
        return None
    if isinstance(node, exp.Paren):
        return literal_value(node.this)
    if isinstance(node, exp.Boolean):
        return bool(node.this)
    if isinstance(node, exp.Literal):
        if node.is_string:
            return node.this
        text = node.this
        return int(text) if re.fullmatch(r"[0-9]+", text) else float(text)
    if isinstance(node, exp.Neg):
        value = literal_value(node.this)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return -value
    if isinstance(node, (exp.Array, exp.Tuple)):
        return [literal_value(e) for e in node.expressions]
    if isinstance(node, (exp.Column, exp.Identifier, exp.Var)) and "." not in node.sql():
        return node.name
    raise ValueError(f"expected a literal (number, string, boolean or list), found {node.sql()}")


class MallardParserMixin:
    """Parsing helpers shared by the extended statements (mixed into the dialect's parser)."""

    # Provided by sqlglot's Parser.
    _curr: Any
    _prev: Any
    _index: int

    def match_words(self, *words: str) -> bool:
        """Consume ``words`` if they come next (case-insensitive); else consume nothing."""
        return bool(self._match_text_seq(*words))  # type: ignore[attr-defined]

    def expect_words(self, *words: str, after: str) -> None:
        if not self.match_words(*words):
            self.raise_error(f"Expected {' '.join(words)} after {after}, found {self.found()}")  # type: ignore[attr-defined]

    def found(self) -> str:
        """How the next token reads in an error message."""
        if not self._curr:
            return "the end of the statement"
        if self._curr.token_type == TokenType.STRING:
            return f"'{self._curr.text}'"
        return repr(self._curr.text)

    def expect_string(self, what: str, after: str) -> exp.Literal:
        if not self._curr or self._curr.token_type != TokenType.STRING:
            self.raise_error(f"Expected {what} (a quoted string) after {after}, found {self.found()}")  # type: ignore[attr-defined]
        return self._parse_string()  # type: ignore[attr-defined]

    def expect_string_or_parameter(self, what: str, after: str) -> exp.Expression:
        """A quoted string, or a ``?`` bound at execution (see :func:`bind_parameters`)."""
        if self._curr and self._curr.token_type == TokenType.PLACEHOLDER:
            self._advance()  # type: ignore[attr-defined]
            return exp.Placeholder()
        return self.expect_string(what, after)

    def expect_table(self, what: str, after: str) -> exp.Table:
        if not self._curr or self._curr.token_type in (TokenType.STRING, TokenType.SEMICOLON, TokenType.L_PAREN):
            self.raise_error(f"Expected {what} after {after}, found {self.found()}")  # type: ignore[attr-defined]
        table = self._parse_table_parts()  # type: ignore[attr-defined]
        if not isinstance(table, exp.Table) or not table.name:
            self.raise_error(f"Expected {what} after {after}, found {self.found()}")  # type: ignore[attr-defined]
        return table

    def expect_name(self, what: str, after: str) -> exp.Identifier:
        if not self._curr or self._curr.token_type in (TokenType.STRING, TokenType.SEMICOLON, TokenType.L_PAREN, TokenType.NUMBER):
            self.raise_error(f"Expected {what} after {after}, found {self.found()}")  # type: ignore[attr-defined]
        ident = self._parse_id_var(any_token=True)  # type: ignore[attr-defined]
        if ident is None:
            self.raise_error(f"Expected {what} after {after}, found {self.found()}")  # type: ignore[attr-defined]
        return ident

    def parse_names(self, what: str, after: str) -> list[exp.Identifier]:
        names = [self.expect_name(what, after)]
        while self._match(TokenType.COMMA):  # type: ignore[attr-defined]
            names.append(self.expect_name(what, after=","))
        return names

    def parse_options(self, after: str) -> list[exp.Property]:
        """``WITH (name = value, ...)`` if it comes next, else an empty list."""
        if not self._match(TokenType.WITH):  # type: ignore[attr-defined]
            return []
        return self.parse_properties(f"WITH in {after}", "option", "WITH options")

    def parse_properties(self, after: str, noun: str = "option", where: str = "WITH options") -> list[exp.Property]:
        """``(name = value, ...)``: names lower-cased, values any expression; ``noun`` and
        ``where`` name them in error messages (``Expected = after option width``)."""
        if not self._match(TokenType.L_PAREN):  # type: ignore[attr-defined]
            self.raise_error(f"Expected ( after {after}, found {self.found()}")  # type: ignore[attr-defined]
        options: list[exp.Property] = []
        while True:
            name = self.expect_name(f"an {noun} name" if noun[0] in "aeiou" else f"a {noun} name", after=f"{after} (")
            if not self._match(TokenType.EQ):  # type: ignore[attr-defined]
                self.raise_error(f"Expected = after {noun} {name.name}, found {self.found()}")  # type: ignore[attr-defined]
            value = self._parse_bitwise()  # type: ignore[attr-defined]
            if value is None:
                self.raise_error(f"Expected a value for {noun} {name.name}, found {self.found()}")  # type: ignore[attr-defined]
            options.append(exp.Property(this=exp.var(name.name.lower()), value=value))
            if self._match(TokenType.COMMA):  # type: ignore[attr-defined]
                continue
            if self._match(TokenType.R_PAREN):  # type: ignore[attr-defined]
                return options
            self.raise_error(f"Expected , or ) in {where}, found {self.found()}")  # type: ignore[attr-defined]
