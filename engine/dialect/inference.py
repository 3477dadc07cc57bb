"""Inference statements: the model catalog and EXPLAIN of queries that call models.

``CREATE [OR REPLACE] MODEL <name> FROM '<weights file>' WITH (architecture = '...', ...)``
``DROP MODEL [IF EXISTS] <name>``
``SHOW MODELS``
``EXPLAIN [ANALYZE] <query calling model functions>``
"""
from __future__ import annotations

import re
from typing import Any

from sqlglot.tokens import TokenType

import engine.inference.settings  # noqa: F401  (registers the inference_* settings)
from engine.dialect.base import MallardParserMixin, Statement


class CreateModel(Statement):
    """Register a model (a new version of it with OR REPLACE) from a weights file.

    >>> from engine.dialect import parse_statements
    >>> parse_statements("create or replace model m from 'w.pth' with (architecture = 'mobilenet_v2')")[0].sql("mallard")
    "CREATE OR REPLACE MODEL m FROM 'w.pth' WITH (architecture = 'mobilenet_v2')"
    """

    NAME = "CREATE MODEL"
    FIRST = "CREATE"
    ROUTE = r"CREATE\s+(?:OR\s+REPLACE\s+)?MODEL\b"
    arg_types = {"this": True, "source": True, "replace": False, "options": False}

    @classmethod
    def parse(cls, p: MallardParserMixin) -> "CreateModel | None":
        replace = p.match_words("OR", "REPLACE")
        if not p.match_words("MODEL"):
            return None  # DuckDB's own CREATE [OR REPLACE] ...
        after = "CREATE OR REPLACE MODEL" if replace else "CREATE MODEL"
        name = p.expect_name("a model name", after=after)
        p.expect_words("FROM", after=f"{after} {name.name}")
        source = p.expect_string_or_parameter("a weights file path", after=f"{after} {name.name} FROM")
        options = p.parse_options(after=after)
        return cls(this=name, source=source, replace=replace, options=options)

    def to_sql(self, g: Any) -> str:
        return (f"CREATE{self._replace_sql()} MODEL {g.sql(self, 'this')} FROM {g.sql(self, 'source')}"
                f"{self._options_sql(g)}")


class DropModel(Statement):
    """Delete a model with all its versions, cached results and engine state.

    >>> from engine.dialect import parse_statements
    >>> parse_statements("drop model if exists m")[0].sql("mallard")
    'DROP MODEL IF EXISTS m'
    """

    NAME = "DROP MODEL"
    FIRST = "DROP"
    ROUTE = r"DROP\s+MODEL\b"
    arg_types = {"this": True, "exists": False}

    @classmethod
    def parse(cls, p: MallardParserMixin) -> "DropModel | None":
        if not p.match_words("MODEL"):
            return None
        exists = p.match_words("IF", "EXISTS")
        name = p.expect_name("a model name", after="DROP MODEL IF EXISTS" if exists else "DROP MODEL")
        return cls(this=name, exists=exists)

    def to_sql(self, g: Any) -> str:
        return f"DROP MODEL {'IF EXISTS ' if self.args.get('exists') else ''}{g.sql(self, 'this')}"


class ShowModels(Statement):
    """``SHOW MODELS``: each model's current version, architecture, classes, input and lineage.

    >>> from engine.dialect import parse_statements
    >>> parse_statements("show models")[0].sql("mallard")
    'SHOW MODELS'
    """

    NAME = "SHOW MODELS"
    FIRST = "SHOW"
    ROUTE = r"SHOW\s+MODELS\b"
    arg_types: dict[str, bool] = {}

    @classmethod
    def parse(cls, p: MallardParserMixin) -> "ShowModels | None":
        return cls() if p.match_words("MODELS") else None

    def to_sql(self, g: Any) -> str:
        return "SHOW MODELS"


class ExplainInference(Statement):
    """``EXPLAIN [ANALYZE] <query>`` of a query that calls model functions: the inference plan.

    The router sends EXPLAIN here only when the query calls a function Mallard plans; for
    other queries the executor hands the text to DuckDB's own EXPLAIN.

    >>> from engine.dialect import parse_statements
    >>> parse_statements("explain select mobilenet(frame).label from traffic")[0].sql("mallard")
    'EXPLAIN SELECT MOBILENET(frame).label FROM traffic'
    """

    NAME = "EXPLAIN"
    FIRST = "EXPLAIN"
    ROUTE = r"(?!)"  # never on its own: the calls of model functions route it
    arg_types = {"this": True, "analyze": False}

    @classmethod
    def parse(cls, p: MallardParserMixin) -> "ExplainInference | None":
        # sqlglot's tokenizer hands the rest of an EXPLAIN statement over as one string
        curr = p._curr
        if curr is None or curr.token_type != TokenType.STRING:
            return None
        match = re.match(r"\s*(ANALYZE\b)?\s*", curr.text, re.I)
        body = curr.text[match.end():]
        if not body or body.startswith("("):
            return None  # EXPLAIN (FORMAT ...) and friends stay DuckDB's
        from engine.dialect import parse_statements

        inner = parse_statements(body)
        if len(inner) != 1:
            p.raise_error(f"Expected one query after EXPLAIN, found {len(inner)} statements")  # type: ignore[attr-defined]
        p._advance()  # type: ignore[attr-defined]
        return cls(this=inner[0], analyze=bool(match.group(1)))

    def to_sql(self, g: Any) -> str:
        return f"EXPLAIN {'ANALYZE ' if self.args.get('analyze') else ''}{g.sql(self, 'this')}"
