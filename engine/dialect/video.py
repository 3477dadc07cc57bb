"""Video statements.

``LOAD [OR REPLACE] VIDEO '<path>' INTO <table> [WITH (width = 224, height = 224, every = 1)]``
"""
from __future__ import annotations

from typing import Any

from engine.dialect.base import MallardParserMixin, Statement


class LoadVideo(Statement):
    """Decode a video file into a frames table.

    >>> from engine.dialect import parse_statements
    >>> parse_statements("load or replace video 'v.avi' into t with (every = 2)")[0].sql("mallard")
    "LOAD OR REPLACE VIDEO 'v.avi' INTO t WITH (every = 2)"
    """

    NAME = "LOAD VIDEO"
    FIRST = "LOAD"
    ROUTE = r"LOAD\s+(?:OR\s+REPLACE\b|VIDEO\b)"
    arg_types = {"this": True, "into": True, "replace": False, "options": False}

    @classmethod
    def parse(cls, p: MallardParserMixin) -> "LoadVideo | None":
        replace = p.match_words("OR", "REPLACE")
        if not p.match_words("VIDEO"):
            if replace:
                p.raise_error(f"Expected VIDEO after LOAD OR REPLACE, found {p.found()}")  # type: ignore[attr-defined]
            return None  # DuckDB's own LOAD <extension>
        after = "LOAD OR REPLACE VIDEO" if replace else "LOAD VIDEO"
        path = p.expect_string_or_parameter("a video file path", after=after)
        p.expect_words("INTO", after=f"{after} '<path>'")
        into = p.expect_table("a table name", after="INTO")
        options = p.parse_options(after=after)
        return cls(this=path, into=into, replace=replace, options=options)

    def to_sql(self, g: Any) -> str:
        return (
            f"LOAD{self._replace_sql()} VIDEO {g.sql(self, 'this')} INTO {g.sql(self, 'into')}"
            f"{self._options_sql(g)}"
        )
