"""Session statements: ``SET``/``RESET`` of Mallard settings and ``SHOW MALLARD SETTINGS``.

``SET`` and ``RESET`` of a name that is not a Mallard setting stay DuckDB's statements.
"""
from __future__ import annotations

from sqlglot.generator import Generator
from sqlglot.tokenizer_core import TokenType

from engine.dialect.base import MallardParserBase, Statement


def _setting_name(p: MallardParserBase) -> str:
    """The setting name the prefix's ``{setting}`` slot stands before (checked by the parser)."""
    token = p.current()
    assert token is not None
    p.advance()
    return token.text.lower()


class SetSetting(Statement):
    """Change a Mallard setting for this connection: ``SET <mallard setting> = <value>``.

    >>> from engine.dialect import parse_statements
    >>> parse_statements("set progress to 'off'")[0].sql("mallard")
    "SET progress = 'off'"
    """

    PREFIX = "SET {setting}"
    arg_types = {"this": True, "value": True}

    @classmethod
    def parse_body(cls, p: MallardParserBase, flags: dict[str, bool]) -> SetSetting:
        name = _setting_name(p)
        if not (p.match_token(TokenType.EQ) or p.match_words("TO")):
            p.fail(f"Expected = or TO after SET {name}, found {p.found()}")
        value = p.parse_value()
        if value is None:
            p.fail(f"Expected a value for SET {name}, found {p.found()}")
        return cls(this=name, value=value)

    def to_sql(self, g: Generator) -> str:
        return f"SET {self.this} = {g.sql(self, 'value')}"


class ResetSetting(Statement):
    """Put a Mallard setting of this connection back to its default: ``RESET <mallard setting>``.

    >>> from engine.dialect import parse_statements
    >>> parse_statements("reset progress")[0].sql("mallard")
    'RESET progress'
    """

    PREFIX = "RESET {setting}"
    arg_types = {"this": True}

    @classmethod
    def parse_body(cls, p: MallardParserBase, flags: dict[str, bool]) -> ResetSetting:
        return cls(this=_setting_name(p))

    def to_sql(self, g: Generator) -> str:
        return f"RESET {self.this}"


class ShowSettings(Statement):
    """``SHOW MALLARD SETTINGS``: name, value, default and description of each setting.

    >>> from engine.dialect import parse_statements
    >>> parse_statements("show mallard settings")[0].sql("mallard")
    'SHOW MALLARD SETTINGS'
    """

    PREFIX = "SHOW MALLARD SETTINGS"
    arg_types = {}

    @classmethod
    def parse_body(cls, p: MallardParserBase, flags: dict[str, bool]) -> ShowSettings:
        return cls()

    def to_sql(self, g: Generator) -> str:
        return "SHOW MALLARD SETTINGS"
