"""Inference statements: the model catalog and EXPLAIN of queries that call models.

``CREATE [OR REPLACE] MODEL <name> FROM '<weights file>' WITH (architecture = '...', ...)``
``DROP MODEL [IF EXISTS] <name>``
``SHOW MODELS``
``SHOW STORAGE``
``EXPLAIN [ANALYZE] <query>``
"""
from __future__ import annotations

import re

from sqlglot.generator import Generator
from sqlglot.tokenizer_core import TokenType

from engine.dialect.base import MallardParserBase, Statement
from engine.options import Option, either, list_of, number, text, whole


class CreateModel(Statement):
    """Register a model (a new version of it with OR REPLACE) from a weights file.

    >>> from engine.dialect import parse_statements
    >>> parse_statements("create or replace model m from 'w.pth' with (architecture = 'mobilenet_v2')")[0].sql("mallard")
    "CREATE OR REPLACE MODEL m FROM 'w.pth' WITH (architecture = 'mobilenet_v2')"
    """

    PREFIX = "CREATE [OR REPLACE] MODEL"
    OPTIONS = {
        "architecture": Option(text, doc="a registered architecture (SHOW MODELS lists the models; "
                                         "udfs.architectures the architectures)"),
        "labels": Option(either(text, list_of(text)), doc="a file of class names, one per line, or a list"),
        "num_classes": Option(whole(1, 1_000_000), doc="classes of the classifier (from labels when given)"),
        "input_size": Option(either(whole(1, 16384), list_of(whole(1, 16384), length=2),
                                    expected="a size or [height, width] of whole numbers in [1, 16384]"),
                             doc="the frame size the model takes: a side or [height, width]; default: any"),
        "mean": Option(list_of(number(-1e9, 1e9), expected="a list of numbers (one per RGB channel, or per input column)"),
                       doc="per-channel mean of pixels scaled to [0, 1] (numeric models: per input column)"),
        "std": Option(list_of(number(-1e9, 1e9), expected="a list of numbers (one per RGB channel, or per input column)"),
                      doc="per-channel standard deviation (numeric models: per input column)"),
        "inputs": Option(list_of(text), doc="numeric models: the input columns, in order (the model then takes "
                                            "one vector of these columns per row instead of a frame)"),
        "description": Option(text, doc="free text shown by SHOW MODELS"),
    }
    arg_types = {"this": True, "source": True, "replace": False, "options": False}

    @classmethod
    def parse_body(cls, p: MallardParserBase, flags: dict[str, bool]) -> CreateModel:
        after = "CREATE OR REPLACE MODEL" if flags["replace"] else "CREATE MODEL"
        name = p.expect_name("a model name", after=after)
        if not p.match_words("FROM"):  # WITH/AS after the name is CREATE MODEL ... AS (engine.dialect.training)
            p.fail(f"Expected FROM '<weights file>' (or AS <query> to train) after {after} {name.name}, found {p.found()}")
        source = p.expect_string_or_parameter("a weights file path", after=f"{after} {name.name} FROM")
        options = p.parse_options(after=after)
        return cls(this=name, source=source, replace=flags["replace"], options=options)

    def to_sql(self, g: Generator) -> str:
        return (f"CREATE{self._replace_sql()} MODEL {g.sql(self, 'this')} FROM {g.sql(self, 'source')}"
                f"{self._options_sql(g)}")


class DropModel(Statement):
    """Delete a model with all its versions, cached results and engine state.

    >>> from engine.dialect import parse_statements
    >>> parse_statements("drop model if exists m")[0].sql("mallard")
    'DROP MODEL IF EXISTS m'
    """

    PREFIX = "DROP MODEL [IF EXISTS]"
    arg_types = {"this": True, "exists": False}

    @classmethod
    def parse_body(cls, p: MallardParserBase, flags: dict[str, bool]) -> DropModel:
        name = p.expect_name("a model name", after="DROP MODEL IF EXISTS" if flags["exists"] else "DROP MODEL")
        return cls(this=name, exists=flags["exists"])

    def to_sql(self, g: Generator) -> str:
        return f"DROP MODEL {'IF EXISTS ' if self.args.get('exists') else ''}{g.sql(self, 'this')}"


class ShowModels(Statement):
    """``SHOW MODELS``: each model's current version, architecture, classes, input and lineage.

    >>> from engine.dialect import parse_statements
    >>> parse_statements("show models")[0].sql("mallard")
    'SHOW MODELS'
    """

    PREFIX = "SHOW MODELS"
    arg_types = {}

    @classmethod
    def parse_body(cls, p: MallardParserBase, flags: dict[str, bool]) -> ShowModels:
        return cls()

    def to_sql(self, g: Generator) -> str:
        return "SHOW MODELS"


class ShowStorage(Statement):
    """``SHOW STORAGE``: the bytes the database holds in frames, the result cache, engine state
    and models, one row per object, and the file's size.

    >>> from engine.dialect import parse_statements
    >>> parse_statements("show storage")[0].sql("mallard")
    'SHOW STORAGE'
    """

    PREFIX = "SHOW STORAGE"
    arg_types = {}

    @classmethod
    def parse_body(cls, p: MallardParserBase, flags: dict[str, bool]) -> ShowStorage:
        return cls()

    def to_sql(self, g: Generator) -> str:
        return "SHOW STORAGE"


class ExplainInference(Statement):
    """``EXPLAIN [ANALYZE] <query>``: for a query that calls model functions, the inference plan;
    for any other query, DuckDB's own plan.

    >>> from engine.dialect import parse_statements
    >>> parse_statements("explain select mobilenet(frame).label from traffic")[0].sql("mallard")
    'EXPLAIN SELECT MOBILENET(frame).label FROM traffic'
    """

    PREFIX = "EXPLAIN"
    arg_types = {"this": True, "analyze": False}

    @classmethod
    def parse_body(cls, p: MallardParserBase, flags: dict[str, bool]) -> ExplainInference | None:
        # sqlglot's tokenizer hands the rest of an EXPLAIN statement over as one string
        curr = p.current()
        if curr is None or curr.token_type != TokenType.STRING:
            return None
        match = re.match(r"\s*(ANALYZE\b)?\s*", curr.text, re.I)
        assert match is not None
        body = curr.text[match.end():]
        if not body or body.startswith("("):
            return None  # EXPLAIN (FORMAT ...) and friends stay DuckDB's
        from engine.dialect import parse_statements

        inner = parse_statements(body)
        if len(inner) != 1:
            p.fail(f"Expected one query after EXPLAIN, found {len(inner)} statements")
        if isinstance(inner[0], Statement):
            p.fail(f"Expected a query after EXPLAIN, found the Mallard statement {inner[0].NAME}")
        p.advance()
        return cls(this=inner[0], analyze=bool(match.group(1)))

    def to_sql(self, g: Generator) -> str:
        return f"EXPLAIN {'ANALYZE ' if self.args.get('analyze') else ''}{g.sql(self, 'this')}"
