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

from sqlglot import exp
from sqlglot.generator import Generator
from sqlglot.tokenizer_core import TokenType

from engine.dialect.base import MallardParserBase, Statement
from engine.options import Option, boolean, choice, column, either, integer, list_of, number, text, whole

_CLASSES = Option(list_of(either(integer, text)),
                  doc="the classes, e.g. ['ham', 'spam'] or [0, 1]; their order is the order of probs "
                      "(default: the distinct votes)")
_KEY = Option(column, doc="the column identifying rows (default: id if present, else rowid)")
_FAULT_TOLERANT = Option(boolean, False, "Python functions: a row where one raises counts as a failure and abstains")


#: Words that end a list of labeling function names rather than being one.
_CLAUSE_WORDS = {"INTO", "WITH", "ON", "USING"}


def _lf_names(p: MallardParserBase, after: str) -> list[exp.Identifier]:
    """``lf1, lf2, ...``: at least one labeling function name."""
    names = []
    while True:
        curr = p.current()
        if curr is not None and curr.text.upper() in _CLAUSE_WORDS:
            p.fail(f"Expected a labeling function name after {after}, found {p.found()}")
        names.append(p.expect_name("a labeling function name", after=after))
        if not p.match_token(TokenType.COMMA):
            return names
        after = "a comma"


class CreateLabelingFunction(Statement):
    """Define a labeling function as a SQL expression over a table's columns; NULL abstains.

    >>> from engine.dialect import parse_statements
    >>> sql = "CREATE OR REPLACE LABELING FUNCTION lf_free ON sms AS CASE WHEN text ILIKE '%free%' THEN 'spam' END"
    >>> parse_statements(sql)[0].sql("mallard") == sql
    True
    """

    PREFIX = "CREATE [OR REPLACE] LABELING FUNCTION"
    arg_types = {"this": True, "table": True, "expression": True, "replace": False}

    @classmethod
    def parse_body(cls, p: MallardParserBase, flags: dict[str, bool]) -> CreateLabelingFunction:
        after = f"CREATE{' OR REPLACE' if flags['replace'] else ''} LABELING FUNCTION"
        name = p.expect_name("a labeling function name", after=after)
        p.expect_words("ON", after=f"{after} {name.name}")
        table = p.expect_table("a table name", after="ON")
        p.expect_words("AS", after=f"{after} {name.name} ON {table.sql('duckdb')}")
        expression = p.parse_condition()
        if expression is None:
            p.fail(f"Expected a SQL expression after AS, found {p.found()}")
        return cls(this=name, table=table, expression=expression, replace=flags["replace"])

    def to_sql(self, g: Generator) -> str:
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

    PREFIX = "DROP LABELING FUNCTION [IF EXISTS]"
    arg_types = {"this": True, "exists": False}

    @classmethod
    def parse_body(cls, p: MallardParserBase, flags: dict[str, bool]) -> DropLabelingFunction:
        after = "DROP LABELING FUNCTION IF EXISTS" if flags["exists"] else "DROP LABELING FUNCTION"
        return cls(this=p.expect_name("a labeling function name", after=after), exists=flags["exists"])

    def to_sql(self, g: Generator) -> str:
        exists = " IF EXISTS" if self.args.get("exists") else ""
        return f"DROP LABELING FUNCTION{exists} {g.sql(self, 'this')}"


class ShowLabelingFunctions(Statement):
    """List the labeling functions (SQL ones from the catalog, Python ones declared in the process).

    >>> from engine.dialect import parse_statements
    >>> parse_statements("show labeling functions on sms")[0].sql("mallard")
    'SHOW LABELING FUNCTIONS ON sms'
    """

    PREFIX = "SHOW LABELING FUNCTIONS"
    arg_types = {"table": False}

    @classmethod
    def parse_body(cls, p: MallardParserBase, flags: dict[str, bool]) -> ShowLabelingFunctions:
        table = p.expect_table("a table name", after="SHOW LABELING FUNCTIONS ON") if p.match_words("ON") else None
        return cls(table=table)

    def to_sql(self, g: Generator) -> str:
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

    PREFIX = "LABEL"
    OPTIONS = {
        "classes": _CLASSES,
        "model": Option(choice("label_model", "majority"), "label_model",
                        "'label_model' (Dawid-Skene EM) or 'majority'"),
        "seed": Option(whole(0, 2**63 - 1), 0, "breaks ties in the label model's majority-vote start"),
        "key": _KEY,
        "max_iter": Option(whole(1, 1_000_000), 100, "EM iterations at most"),
        "tol": Option(number(0, 1, open_low=True), 1e-5, "EM stops when no parameter moves more than this"),
        "fault_tolerant": _FAULT_TOLERANT,
        "fit_on": Option(choice("auto", "patterns", "rows"), "auto",
                         "the label model's input: 'patterns' (distinct vote patterns), 'rows' (each row, when nearly"
                         " every row has its own pattern), 'auto' (by the estimated pattern count)"),
        "storage": Option(choice("auto", "table"), "auto",
                          "the label table: 'auto' (a view over the rows' stored vote codes and the label model)"
                          " or 'table' (always a table)"),
    }
    arg_types = {"this": True, "expressions": True, "into": True, "replace": False, "options": False}

    @classmethod
    def parse_body(cls, p: MallardParserBase, flags: dict[str, bool]) -> Label:
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

    def to_sql(self, g: Generator) -> str:
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

    PREFIX = "ADD GOLD LABELS"
    OPTIONS = {
        "key": _KEY,
        "label": Option(column, "label", "the source's column holding the expert label"),
    }
    arg_types = {"this": True, "source": True, "options": False}

    @classmethod
    def parse_body(cls, p: MallardParserBase, flags: dict[str, bool]) -> AddGoldLabels:
        p.expect_words("TO", after="ADD GOLD LABELS")
        table = p.expect_table("a table name", after="ADD GOLD LABELS TO")
        p.expect_words("FROM", after=f"ADD GOLD LABELS TO {table.sql('duckdb')}")
        source = p.parse_subquery_or_table("a table name or a (query)", after="FROM")
        options = p.parse_options(after="ADD GOLD LABELS")
        return cls(this=table, source=source, options=options)

    def to_sql(self, g: Generator) -> str:
        return f"ADD GOLD LABELS TO {g.sql(self, 'this')} FROM {g.sql(self, 'source')}{self._options_sql(g)}"


class AnalyzeLabelingFunctions(Statement):
    """LF analysis without a label model: polarity, coverage, overlaps, conflicts, and
    correct/incorrect/empirical accuracy against the table's gold labels.

    >>> from engine.dialect import parse_statements
    >>> parse_statements("analyze labeling functions lf_a, lf_b on sms")[0].sql("mallard")
    'ANALYZE LABELING FUNCTIONS lf_a, lf_b ON sms'
    """

    PREFIX = "ANALYZE LABELING FUNCTIONS"
    OPTIONS = {"classes": _CLASSES, "key": _KEY, "fault_tolerant": _FAULT_TOLERANT}
    arg_types = {"this": True, "expressions": True, "options": False}

    @classmethod
    def parse_body(cls, p: MallardParserBase, flags: dict[str, bool]) -> AnalyzeLabelingFunctions:
        lfs = _lf_names(p, after="ANALYZE LABELING FUNCTIONS")
        p.expect_words("ON", after="ANALYZE LABELING FUNCTIONS <names>")
        table = p.expect_table("a table name", after="ON")
        options = p.parse_options(after="ANALYZE LABELING FUNCTIONS")
        return cls(this=table, expressions=lfs, options=options)

    def to_sql(self, g: Generator) -> str:
        lfs = ", ".join(g.sql(e) for e in self.expressions)
        return f"ANALYZE LABELING FUNCTIONS {lfs} ON {g.sql(self, 'this')}{self._options_sql(g)}"


class ShowLabelAnalysis(Statement):
    """The LF analysis recorded by the LABEL run that wrote a label table, with learned accuracies.

    >>> from engine.dialect import parse_statements
    >>> parse_statements("show label analysis for sms_labels")[0].sql("mallard")
    'SHOW LABEL ANALYSIS FOR sms_labels'
    """

    PREFIX = "SHOW LABEL ANALYSIS"
    arg_types = {"this": True}

    @classmethod
    def parse_body(cls, p: MallardParserBase, flags: dict[str, bool]) -> ShowLabelAnalysis:
        p.expect_words("FOR", after="SHOW LABEL ANALYSIS")
        return cls(this=p.expect_table("a label table name", after="SHOW LABEL ANALYSIS FOR"))

    def to_sql(self, g: Generator) -> str:
        return f"SHOW LABEL ANALYSIS FOR {g.sql(self, 'this')}"


class ShowClassBalance(Statement):
    """The class balance the label model estimated for a label table, and the share of each label.

    >>> from engine.dialect import parse_statements
    >>> parse_statements("show class balance for sms_labels")[0].sql("mallard")
    'SHOW CLASS BALANCE FOR sms_labels'
    """

    PREFIX = "SHOW CLASS BALANCE"
    arg_types = {"this": True}

    @classmethod
    def parse_body(cls, p: MallardParserBase, flags: dict[str, bool]) -> ShowClassBalance:
        p.expect_words("FOR", after="SHOW CLASS BALANCE")
        return cls(this=p.expect_table("a label table name", after="SHOW CLASS BALANCE FOR"))

    def to_sql(self, g: Generator) -> str:
        return f"SHOW CLASS BALANCE FOR {g.sql(self, 'this')}"
