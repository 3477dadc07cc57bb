"""Video statements.

``LOAD [OR REPLACE] VIDEO '<path>' INTO <table> [WITH (width = 224, height = 224, every = 1)]``
"""
from __future__ import annotations

from sqlglot.generator import Generator

from engine.dialect.base import MallardParserBase, Statement
from engine.options import Option, choice, whole

_SIDE = whole(1, 16384)


class LoadVideo(Statement):
    """Load a video file into a frames table.

    >>> from engine.dialect import parse_statements
    >>> parse_statements("load or replace video 'v.avi' into t with (every = 2)")[0].sql("mallard")
    "LOAD OR REPLACE VIDEO 'v.avi' INTO t WITH (every = 2)"
    """

    PREFIX = "LOAD [OR REPLACE] VIDEO"
    OWNED_AFTER_OPTIONAL = True  # DuckDB has LOAD <extension>, never LOAD OR REPLACE
    OPTIONS = {
        "width": Option(_SIDE, doc="stored frame width in pixels (with only width, height keeps the aspect ratio)"),
        "height": Option(_SIDE, doc="stored frame height in pixels"),
        "every": Option(whole(1, 10**9), 1, "keep every n-th frame"),
        "limit": Option(whole(1, 10**12), doc="stop after this many kept frames"),
        "batch_frames": Option(whole(1, 10**9), doc="store = 'pixels': frames per write batch (performance only)"),
        "store": Option(choice("stream", "pixels"), "stream",
                        "'stream': keep the compressed packets and decode frames on read; 'pixels': decode every "
                        "frame now and store its RGB bytes (for tiny clips)"),
    }
    arg_types = {"this": True, "into": True, "replace": False, "options": False}

    @classmethod
    def parse_body(cls, p: MallardParserBase, flags: dict[str, bool]) -> LoadVideo:
        after = "LOAD OR REPLACE VIDEO" if flags["replace"] else "LOAD VIDEO"
        path = p.expect_string_or_parameter("a video file path", after=after)
        p.expect_words("INTO", after=f"{after} '<path>'")
        into = p.expect_table("a table name", after="INTO")
        options = p.parse_options(after=after)
        return cls(this=path, into=into, replace=flags["replace"], options=options)

    def to_sql(self, g: Generator) -> str:
        return (
            f"LOAD{self._replace_sql()} VIDEO {g.sql(self, 'this')} INTO {g.sql(self, 'into')}"
            f"{self._options_sql(g)}"
        )
