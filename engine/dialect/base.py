"""Building blocks of Mallard's extended statements.

Each extended statement is one :class:`Statement` subclass.  Its grammar is written once:
``PREFIX`` holds the leading words as users write them (``"LOAD [OR REPLACE] VIDEO"``; a
bracketed group is optional and sets the flag named after its last word, here
``replace``), and ``parse_body`` reads the rest.  The router's cheap check and the parser's
dispatch are both derived from ``PREFIX``.  ``arg_types`` name the node's children,
``to_sql`` writes it back, and ``OPTIONS`` declares its ``WITH (...)`` options (read by
:mod:`engine.options`).  Statement classes are listed in :mod:`engine.registry`.

>>> prefix_groups("LOAD [OR REPLACE] VIDEO")
(PrefixGroup(words=('LOAD',), flag=None), PrefixGroup(words=('OR', 'REPLACE'), flag='replace'), PrefixGroup(words=('VIDEO',), flag=None))
>>> prefix_regex("DROP MODEL [IF EXISTS]")
'DROP\\\\s+MODEL\\\\b'
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from sqlglot import exp
from sqlglot.parsers.duckdb import DuckDBParser
from sqlglot.tokenizer_core import Token, TokenType

if TYPE_CHECKING:
    from sqlglot.generator import Generator

    from engine.options import Option


#: A prefix word standing for any of Mallard's setting names (``SET {setting}``).
SETTING_SLOT = "{setting}"


class PrefixGroup(NamedTuple):
    """Words of a statement's prefix that come together; ``flag`` names an optional group."""

    words: tuple[str, ...]
    flag: str | None


@cache
def prefix_groups(prefix: str) -> tuple[PrefixGroup, ...]:
    """The groups of a ``PREFIX`` string, in order."""
    groups: list[PrefixGroup] = []
    for optional, required in re.findall(r"\[([^\]]+)\]|(\S+)", prefix):
        if optional:
            words = tuple(optional.upper().split())
            groups.append(PrefixGroup(words, words[-1].lower()))
        else:
            groups.append(PrefixGroup((required if required == SETTING_SLOT else required.upper(),), None))
    return tuple(groups)


def prefix_regex(prefix: str, settings: tuple[str, ...] = (), owned_after_optional: bool = False) -> str:
    """A regular expression matching the start of a statement with this prefix (its required
    words; trailing optional groups need not be there).  With ``owned_after_optional`` an
    optional group alone claims the statement (``LOAD OR REPLACE`` is Mallard's even when
    ``VIDEO`` is missing, so the error can say so)."""
    groups = prefix_groups(prefix)
    if owned_after_optional:
        first = next(i for i, g in enumerate(groups) if g.flag)
        lead = r"\s+".join(re.escape(w) for g in groups[:first] for w in g.words)
        claims = [r"\s+".join(re.escape(w) for w in groups[first].words),
                  r"\s+".join(re.escape(w) for w in groups[first + 1].words)]
        return rf"{lead}\s+(?:{'|'.join(claims)})\b"
    parts: list[str] = []
    last_required = max(i for i, g in enumerate(groups) if g.flag is None)
    for index, group in enumerate(groups[: last_required + 1]):
        if group.words == (SETTING_SLOT,):
            names = "|".join(re.escape(n) for n in sorted(settings, key=len, reverse=True)) or "(?!)"
            text = rf"(?:SESSION\s+|LOCAL\s+)?(?:{names})"
        else:
            text = r"\s+".join(re.escape(w) for w in group.words)
        parts.append(rf"(?:{text}\s+)?" if group.flag else text + (r"\s+" if index < last_required else ""))
    return "".join(parts) + r"\b"


class Statement(exp.Expression):
    """Base of every extended statement (see the module docstring)."""

    PREFIX: ClassVar[str] = ""
    #: Whether the prefix's first optional group alone makes the statement Mallard's (no
    #: DuckDB statement starts so): then a missing word after it is a parse error of ours.
    OWNED_AFTER_OPTIONAL: ClassVar[bool] = False
    OPTIONS: ClassVar[Mapping[str, Option]] = {}
    #: The statement's name as users know it: its prefix without optional words (derived).
    NAME: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.PREFIX:
            cls.NAME = " ".join(w for g in prefix_groups(cls.PREFIX) if g.flag is None
                                for w in g.words if w != SETTING_SLOT)

    @classmethod
    def parse_body(cls, p: MallardParserBase, flags: dict[str, bool]) -> Statement | None:
        """Read what follows the prefix; None (the parser retreats) when the words are not ours."""
        raise NotImplementedError

    def to_sql(self, g: Generator) -> str:
        raise NotImplementedError

    # Small helpers for to_sql ------------------------------------------------------
    def _replace_sql(self) -> str:
        return " OR REPLACE" if self.args.get("replace") else ""

    def _options_sql(self, g: Generator) -> str:
        options = self.args.get("options") or []
        if not options:
            return ""
        inner = ", ".join(f"{g.sql(o, 'this')} = {g.sql(o, 'value')}" for o in options)
        return f" WITH ({inner})"


class MallardParserBase(DuckDBParser):
    """DuckDB's parser plus the helpers extended statements read their bodies with."""

    def match_words(self, *words: str) -> bool:
        """Consume ``words`` if they come next (case-insensitive); else consume nothing."""
        return bool(self._match_text_seq(*words))

    def expect_words(self, *words: str, after: str) -> None:
        if not self.match_words(*words):
            self.fail(f"Expected {' '.join(words)} after {after}, found {self.found()}")

    def fail(self, message: str) -> None:
        """Raise a parse error at the current token (sqlglot's raise_error, typed)."""
        self.raise_error(message)

    def found(self) -> str:
        """How the next token reads in an error message."""
        if not self._curr:
            return "the end of the statement"
        if self._curr.token_type == TokenType.STRING:
            return f"'{self._curr.text}'"
        return repr(self._curr.text)

    def at_end(self) -> bool:
        return not self._curr or self._curr.token_type == TokenType.SEMICOLON

    def expect_end(self, after: str) -> None:
        if not self.at_end():
            self.fail(f"Expected the end of the statement after {after}, found {self.found()}")

    def expect_string(self, what: str, after: str) -> exp.Expr:
        if not self._curr or self._curr.token_type != TokenType.STRING:
            self.fail(f"Expected {what} (a quoted string) after {after}, found {self.found()}")
        string = self._parse_string()
        assert string is not None
        return string

    def expect_string_or_parameter(self, what: str, after: str) -> exp.Expr:
        """A quoted string, or a ``?`` bound at execution."""
        if self._curr and self._curr.token_type == TokenType.PLACEHOLDER:
            placeholder = self._parse_placeholder()
            assert placeholder is not None
            return placeholder
        return self.expect_string(what, after)

    def expect_table(self, what: str, after: str) -> exp.Table:
        """A table name: one to three identifiers separated by dots, each non-empty."""
        if not self._curr or self._curr.token_type in (TokenType.STRING, TokenType.SEMICOLON, TokenType.L_PAREN,
                                                       TokenType.DOT, TokenType.NUMBER):
            self.fail(f"Expected {what} after {after}, found {self.found()}")
        start = self._curr
        table = self._parse_table_parts()
        parts = [table.args.get(k) for k in ("catalog", "db", "this")] if isinstance(table, exp.Table) else [None]
        if not isinstance(table, exp.Table) or not all(
                part is None or (isinstance(part, exp.Identifier) and part.name) for part in parts) or not table.name:
            self.fail(f"Expected {what} after {after}, found {_text_of(start)}")
        assert isinstance(table, exp.Table)
        return table

    def expect_name(self, what: str, after: str) -> exp.Identifier:
        if not self._curr or self._curr.token_type in (TokenType.STRING, TokenType.SEMICOLON, TokenType.L_PAREN,
                                                       TokenType.NUMBER, TokenType.DOT, TokenType.COMMA,
                                                       TokenType.R_PAREN):
            self.fail(f"Expected {what} after {after}, found {self.found()}")
        ident = self._parse_id_var(any_token=True)
        if not isinstance(ident, exp.Identifier) or not ident.name:
            self.fail(f"Expected {what} after {after}, found {self.found()}")
        assert isinstance(ident, exp.Identifier)
        return ident

    def parse_names(self, what: str, after: str) -> list[exp.Identifier]:
        names = [self.expect_name(what, after)]
        while self._match(TokenType.COMMA):
            names.append(self.expect_name(what, after=","))
        return names

    def parse_options(self, after: str) -> list[exp.Property]:
        """``WITH (name = value, ...)`` if it comes next, else an empty list."""
        if not self._match(TokenType.WITH):
            return []
        return self.parse_properties(f"WITH in {after}", "option", "WITH options")

    def parse_properties(self, after: str, noun: str = "option", where: str = "WITH options") -> list[exp.Property]:
        """``(name = value, ...)``: names lower-cased, values any expression; ``noun`` and
        ``where`` name them in error messages (``Expected = after option width``)."""
        if not self._match(TokenType.L_PAREN):
            self.fail(f"Expected ( after {after}, found {self.found()}")
        options: list[exp.Property] = []
        while True:
            article = "an" if noun[0] in "aeiou" else "a"
            name = self.expect_name(f"{article} {noun} name", after=f"{after} (")
            if not self._match(TokenType.EQ):
                self.fail(f"Expected = after {noun} {name.name}, found {self.found()}")
            value = self._parse_bitwise()
            if value is None:
                self.fail(f"Expected a value for {noun} {name.name}, found {self.found()}")
            options.append(exp.Property(this=exp.var(name.name.lower()), value=value))
            if self._match(TokenType.COMMA):
                continue
            if self._match(TokenType.R_PAREN):
                return options
            self.fail(f"Expected , or ) in {where}, found {self.found()}")

    def parse_subquery_or_table(self, what: str, after: str) -> exp.Expr:
        """``<table>`` or ``(<query>)``: where rows come from."""
        if self._match(TokenType.L_PAREN):
            query = self._parse_select()
            if query is None:
                self.fail(f"Expected a query (SELECT ...) after {after} (, found {self.found()}")
            if not self._match(TokenType.R_PAREN):
                self.fail(f"Expected ) after the query in {after}, found {self.found()}")
            return exp.Subquery(this=query)
        return self.expect_table(what, after=after)

    def parse_query(self, after: str) -> exp.Query:
        """A query (``SELECT ...``, ``WITH ... SELECT ...``, ``(SELECT ...)``, ``FROM t``) up to the
        end of the statement; its text as written is in ``meta["text"]``."""
        found, first = self.found(), self._curr
        if self._match(TokenType.L_PAREN, advance=False):  # (SELECT ...) [UNION ...]: as DuckDB's statements
            query = self._parse_query_modifiers(self._parse_set_operations(self._parse_expression()))
        else:
            query = self._parse_select()
        while isinstance(query, exp.Subquery) and query.is_wrapper:  # (SELECT ...): the query inside
            query = query.this
        if not isinstance(query, exp.Query):
            self.fail(f"Expected a query (SELECT ...) after {after}, found {found}")
        assert isinstance(query, exp.Query)
        self.expect_end(after="the query")
        if first is not None and self._prev is not None:
            query.meta["text"] = self._find_sql(first, self._prev)  # as written (lineage records it)
        return query

    def current(self) -> Token | None:
        """The next token, not consumed."""
        return self._curr

    def following(self) -> Token | None:
        """The token after the next one, not consumed."""
        return self._next

    def advance(self) -> None:
        self._advance()

    def match_token(self, token_type: TokenType) -> bool:
        return bool(self._match(token_type))

    def parse_value(self) -> exp.Expr | None:
        """An expression up to the next keyword of the statement (``_parse_bitwise``)."""
        return self._parse_bitwise()

    def parse_condition(self) -> exp.Expr | None:
        """A full SQL expression (``CASE``, ``AND``/``OR``, comparisons...)."""
        return self._parse_assignment()


def _text_of(token: Token | None) -> str:
    return "the end of the statement" if token is None else repr(token.text)
