"""Weak-supervision statements: labeling functions, LABEL, gold labels and LF analysis.

``CREATE [OR REPLACE] LABELING FUNCTION <name> ON <table> AS <expression>``
``DROP LABELING FUNCTION [IF EXISTS] <name>``
``SHOW LABELING FUNCTIONS [ON <table>]``
``LABEL <table> USING <lf>, ... [WITH (...)] INTO [OR REPLACE] <target>``
``ADD GOLD LABELS TO <table> FROM <table> | (<query>) [WITH (key = ..., label = ...)]``
``ANALYZE LABELING FUNCTIONS <lf>, ... ON <table> [WITH (...)]``
``SHOW LABEL ANALYSIS FOR <label table>``
``SHOW CLASS BALANCE FOR <label table>``
"""
from __future__ import annotations

from typing import Any

from sqlglot import exp
from sqlglot.tokens import TokenType

from engine.dialect.base import MallardParserMixin, Statement


#: Words that end a list of labeling function names rather than being one.
_CLAUSE_WORDS = {"INTO", "WITH", "ON", "USING"}


def _lf_names(p: MallardParserMixin, after: str) -> list[exp.Identifier]:
    """``lf1, lf2, ...``: at least one labeling function name."""
    names = []
    while True:
        if p._curr is not None and p._curr.text.upper() in _CLAUSE_WORDS:
            p.raise_error(f"Expected a labeling function name after {after}, found {p.found()}")  # type: ignore[attr-defined]
        names.append(p.expect_name("a labeling function name", after=after))
        if not p._match(TokenType.COMMA):  # type: ignore[attr-defined]
            return names
        after = "a comma"


def _expect_query(p: MallardParserMixin, after: str) -> exp.Expression:
    """``<table>`` or ``(<query>)``: where rows come from."""
    if p._match(TokenType.L_PAREN):  # type: ignore[attr-defined]
        query = p._parse_select()  # type: ignore[attr-defined]
        if query is None:
            p.raise_error(f"Expected a query (SELECT ...) after {after} (, found {p.found()}")  # type: ignore[attr-defined]
        if not p._match(TokenType.R_PAREN):  # type: ignore[attr-defined]
            p.raise_error(f"Expected ) after the query in {after}, found {p.found()}")  # type: ignore[attr-defined]
        return exp.Subquery(this=query)
    return p.expect_table("a table name or a (query)", after=after)


class CreateLabelingFunction(Statement):
    """Define a labeling function as a SQL expression over a table's columns; NULL abstains.

    >>> from engine.dialect import parse_statements
    >>> sql = "CREATE OR REPLACE LABELING FUNCTION lf_free ON sms AS CASE WHEN text ILIKE '%free%' THEN 'spam' END"
    >>> parse_statements(sql)[0].sql("mallard") == sql
    True
    """

    NAME = "CREATE LABELING FUNCTION"
    FIRST = "CREATE"
    ROUTE = r"CREATE\s+(?:OR\s+REPLACE\s+)?LABELING\s+FUNCTION\b"
    arg_types = {"this": True, "table": True, "expression": True, "replace": False}

    @classmethod
    def parse(cls, p: MallardParserMixin) -> "CreateLabelingFunction | None":
        start = p._index
        replace = p.match_words("OR", "REPLACE")
        if not p.match_words("LABELING", "FUNCTION"):
            p._retreat(start)  # type: ignore[attr-defined]
            return None  # DuckDB's own CREATE ...
        after = f"CREATE{' OR REPLACE' if replace else ''} LABELING FUNCTION"
        name = p.expect_name("a labeling function name", after=after)
        p.expect_words("ON", after=f"{after} {name.name}")
        table = p.expect_table("a table name", after="ON")
        p.expect_words("AS", after=f"{after} {name.name} ON {table.sql('duckdb')}")
        expression = p._parse_assignment()  # type: ignore[attr-defined]
        if expression is None:
            p.raise_error(f"Expected a SQL expression after AS, found {p.found()}")  # type: ignore[attr-defined]
        return cls(this=name, table=table, expression=expression, replace=replace)

    def to_sql(self, g: Any) -> str:
        return (
            f"CREATE{self._replace_sql()} LABELING FUNCTION {g.sql(self, 'this')} ON {g.sql(self, 'table')}"
            f" AS {g.sql(self, 'expression')}"
        )


class DropLabelingFunction(Statement):
    """Remove a labeling function (label tables made with it keep their recorded definition).

    >>> from engine.dialect import parse_statements
    >>> parse_statements("drop labeling function if exists lf_free")[0].sql("mallard")
    'DROP LABELING FUNCTION IF EXISTS lf_free'
    """

    NAME = "DROP LABELING FUNCTION"
    FIRST = "DROP"
    ROUTE = r"DROP\s+LABELING\s+FUNCTION\b"
    arg_types = {"this": True, "exists": False}

    @classmethod
    def parse(cls, p: MallardParserMixin) -> "DropLabelingFunction | None":
        if not p.match_words("LABELING", "FUNCTION"):
            return None
        exists = p.match_words("IF", "EXISTS")
        after = "DROP LABELING FUNCTION IF EXISTS" if exists else "DROP LABELING FUNCTION"
        return cls(this=p.expect_name("a labeling function name", after=after), exists=exists)

    def to_sql(self, g: Any) -> str:
        exists = " IF EXISTS" if self.args.get("exists") else ""
        return f"DROP LABELING FUNCTION{exists} {g.sql(self, 'this')}"


class ShowLabelingFunctions(Statement):
    """List the labeling functions (SQL ones from the catalog, Python ones registered on the connection).

    >>> from engine.dialect import parse_statements
    >>> parse_statements("show labeling functions on sms")[0].sql("mallard")
    'SHOW LABELING FUNCTIONS ON sms'
    """

    NAME = "SHOW LABELING FUNCTIONS"
    FIRST = "SHOW"
    ROUTE = r"SHOW\s+LABELING\s+FUNCTIONS\b"
    arg_types = {"table": False}

    @classmethod
    def parse(cls, p: MallardParserMixin) -> "ShowLabelingFunctions | None":
        if not p.match_words("LABELING", "FUNCTIONS"):
            return None
        table = p.expect_table("a table name", after="SHOW LABELING FUNCTIONS ON") if p.match_words("ON") else None
        return cls(table=table)

    def to_sql(self, g: Any) -> str:
        on = f" ON {g.sql(self, 'table')}" if self.args.get("table") else ""
        return f"SHOW LABELING FUNCTIONS{on}"


class Label(Statement):
    """Apply labeling functions to a table, fit a label model, and write one label per row.

    ``OR REPLACE`` goes after ``INTO``: it qualifies the target table.

    >>> from engine.dialect import parse_statements
    >>> sql = "LABEL sms USING lf_free, lf_short WITH (classes = ['ham', 'spam'], seed = 0) INTO OR REPLACE sms_labels"
    >>> parse_statements(sql)[0].sql("mallard") == sql
    True
    """

    NAME = "LABEL"
    FIRST = "LABEL"
    ROUTE = r"LABEL\s"
    arg_types = {"this": True, "expressions": True, "into": True, "replace": False, "options": False}

    @classmethod
    def parse(cls, p: MallardParserMixin) -> "Label":
        table = p.expect_table("a table name", after="LABEL")
        p.expect_words("USING", after=f"LABEL {table.sql('duckdb')}")
        lfs = _lf_names(p, after="USING")
        options = p.parse_options(after="LABEL")
        p.expect_words("INTO", after="LABEL <table> USING <labeling functions>")
        replace = p.match_words("OR")
        if replace:
            p.expect_words("REPLACE", after="INTO OR")
        into = p.expect_table("a table name for the labels", after="INTO OR REPLACE" if replace else "INTO")
        return cls(this=table, expressions=lfs, into=into, replace=replace, options=options)

    def to_sql(self, g: Any) -> str:
        lfs = ", ".join(g.sql(e) for e in self.expressions)
        return (
            f"LABEL {g.sql(self, 'this')} USING {lfs}{self._options_sql(g)} INTO{self._replace_sql()}"
            f" {g.sql(self, 'into')}"
        )


class AddGoldLabels(Statement):
    """Record expert (gold) labels for rows of a table, by key; a later row for a key replaces it.

    >>> from engine.dialect import parse_statements
    >>> sql = "ADD GOLD LABELS TO sms FROM (SELECT id, label FROM sms_truth WHERE id < 100) WITH (key = id, label = label)"
    >>> parse_statements(sql)[0].sql("mallard") == sql
    True
    """

    NAME = "ADD GOLD LABELS"
    FIRST = "ADD"
    ROUTE = r"ADD\s+GOLD\s+LABELS\b"
    arg_types = {"this": True, "source": True, "options": False}

    @classmethod
    def parse(cls, p: MallardParserMixin) -> "AddGoldLabels | None":
        if not p.match_words("GOLD"):
            return None
        p.expect_words("LABELS", after="ADD GOLD")
        p.expect_words("TO", after="ADD GOLD LABELS")
        table = p.expect_table("a table name", after="ADD GOLD LABELS TO")
        p.expect_words("FROM", after=f"ADD GOLD LABELS TO {table.sql('duckdb')}")
        source = _expect_query(p, after="FROM")
        options = p.parse_options(after="ADD GOLD LABELS")
        return cls(this=table, source=source, options=options)

    def to_sql(self, g: Any) -> str:
        return f"ADD GOLD LABELS TO {g.sql(self, 'this')} FROM {g.sql(self, 'source')}{self._options_sql(g)}"


class AnalyzeLabelingFunctions(Statement):
    """LF analysis without a label model: polarity, coverage, overlaps, conflicts, and
    correct/incorrect/empirical accuracy against the table's gold labels.

    >>> from engine.dialect import parse_statements
    >>> parse_statements("analyze labeling functions lf_a, lf_b on sms")[0].sql("mallard")
    'ANALYZE LABELING FUNCTIONS lf_a, lf_b ON sms'
    """

    NAME = "ANALYZE LABELING FUNCTIONS"
    FIRST = "ANALYZE"
    ROUTE = r"ANALYZE\s+LABELING\s+FUNCTIONS\b"
    arg_types = {"this": True, "expressions": True, "options": False}

    @classmethod
    def parse(cls, p: MallardParserMixin) -> "AnalyzeLabelingFunctions | None":
        if not p.match_words("LABELING", "FUNCTIONS"):
            return None  # DuckDB's ANALYZE
        lfs = _lf_names(p, after="ANALYZE LABELING FUNCTIONS")
        p.expect_words("ON", after="ANALYZE LABELING FUNCTIONS <names>")
        table = p.expect_table("a table name", after="ON")
        options = p.parse_options(after="ANALYZE LABELING FUNCTIONS")
        return cls(this=table, expressions=lfs, options=options)

    def to_sql(self, g: Any) -> str:
        lfs = ", ".join(g.sql(e) for e in self.expressions)
        return f"ANALYZE LABELING FUNCTIONS {lfs} ON {g.sql(self, 'this')}{self._options_sql(g)}"


class ShowLabelAnalysis(Statement):
    """The LF analysis recorded by the LABEL run that wrote a label table, with learned accuracies.

    >>> from engine.dialect import parse_statements
    >>> parse_statements("show label analysis for sms_labels")[0].sql("mallard")
    'SHOW LABEL ANALYSIS FOR sms_labels'
    """

    NAME = "SHOW LABEL ANALYSIS"
    FIRST = "SHOW"
    ROUTE = r"SHOW\s+LABEL\s+ANALYSIS\b"
    arg_types = {"this": True}

    @classmethod
    def parse(cls, p: MallardParserMixin) -> "ShowLabelAnalysis | None":
        if not p.match_words("LABEL", "ANALYSIS"):
            return None
        p.expect_words("FOR", after="SHOW LABEL ANALYSIS")
        return cls(this=p.expect_table("a label table name", after="SHOW LABEL ANALYSIS FOR"))

    def to_sql(self, g: Any) -> str:
        return f"SHOW LABEL ANALYSIS FOR {g.sql(self, 'this')}"


class ShowClassBalance(Statement):
    """The class balance the label model estimated for a label table, and the share of each label.

    >>> from engine.dialect import parse_statements
    >>> parse_statements("show class balance for sms_labels")[0].sql("mallard")
    'SHOW CLASS BALANCE FOR sms_labels'
    """

    NAME = "SHOW CLASS BALANCE"
    FIRST = "SHOW"
    ROUTE = r"SHOW\s+CLASS\s+BALANCE\b"
    arg_types = {"this": True}

    @classmethod
    def parse(cls, p: MallardParserMixin) -> "ShowClassBalance | None":
        if not p.match_words("CLASS", "BALANCE"):
            return None
        p.expect_words("FOR", after="SHOW CLASS BALANCE")
        return cls(this=p.expect_table("a label table name", after="SHOW CLASS BALANCE FOR"))

    def to_sql(self, g: Any) -> str:
        return f"SHOW CLASS BALANCE FOR {g.sql(self, 'this')}"
