"""Session statements: ``SET``/``RESET`` of Mallard settings and ``SHOW MALLARD SETTINGS``.

``SET`` and ``RESET`` of a name that is not a Mallard setting stay DuckDB's statements.
"""
from __future__ import annotations

import re
from typing import Any

from sqlglot.tokens import TokenType

from engine.dialect.base import MallardParserMixin, Statement
from engine.settings import SETTINGS


def _settings_route(verb: str) -> str:
    names = "|".join(re.escape(n) for n in sorted(SETTINGS, key=len, reverse=True))
    return rf"{verb}\s+(?:SESSION\s+|LOCAL\s+)?(?:{names})\b"


def _setting_name(p: MallardParserMixin) -> str | None:
    p.match_words("SESSION") or p.match_words("LOCAL")
    curr = p._curr
    if not curr or curr.text.lower() not in SETTINGS:
        return None
    p._advance()  # type: ignore[attr-defined]
    return curr.text.lower()


class SetSetting(Statement):
    """``SET <mallard setting> = <value>``.

    >>> from engine.dialect import parse_statements
    >>> parse_statements("set progress to 'off'")[0].sql("mallard")
    "SET progress = 'off'"
    """

    NAME = "SET"
    FIRST = "SET"
    arg_types = {"this": True, "value": True}

    @classmethod
    def route(cls) -> str:
        return _settings_route("SET")

    @classmethod
    def parse(cls, p: MallardParserMixin) -> "SetSetting | None":
        name = _setting_name(p)
        if name is None:
            return None
        if not (p._match(TokenType.EQ) or p.match_words("TO")):  # type: ignore[attr-defined]
            p.raise_error(f"Expected = or TO after SET {name}, found {p.found()}")  # type: ignore[attr-defined]
        value = p._parse_bitwise()  # type: ignore[attr-defined]
        if value is None:
            p.raise_error(f"Expected a value for SET {name}, found {p.found()}")  # type: ignore[attr-defined]
        return cls(this=name, value=value)

    def to_sql(self, g: Any) -> str:
        return f"SET {self.this} = {g.sql(self, 'value')}"


class ResetSetting(Statement):
    """``RESET <mallard setting>`` back to its default."""

    NAME = "RESET"
    FIRST = "RESET"
    arg_types = {"this": True}

    @classmethod
    def route(cls) -> str:
        return _settings_route("RESET")

    @classmethod
    def parse(cls, p: MallardParserMixin) -> "ResetSetting | None":
        name = _setting_name(p)
        return None if name is None else cls(this=name)

    def to_sql(self, g: Any) -> str:
        return f"RESET {self.this}"


class ShowSettings(Statement):
    """``SHOW MALLARD SETTINGS``: name, value, default and description of each setting."""

    NAME = "SHOW MALLARD SETTINGS"
    FIRST = "SHOW"
    ROUTE = r"SHOW\s+MALLARD\s+SETTINGS\b"
    arg_types: dict[str, bool] = {}

    @classmethod
    def parse(cls, p: MallardParserMixin) -> "ShowSettings | None":
        if not p.match_words("MALLARD"):
            return None
        p.expect_words("SETTINGS", after="SHOW MALLARD")
        return cls()

    def to_sql(self, g: Any) -> str:
        return "SHOW MALLARD SETTINGS"
