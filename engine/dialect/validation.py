"""Data validation statements (TFDV's statistics, schemas, anomalies, drift and skew).

``COMPUTE STATISTICS FOR <table> [AS <name> | APPEND TO <name>]``
``SHOW STATISTICS [<name>]``, ``DROP STATISTICS [IF EXISTS] <name>``
``INFER [OR REPLACE] SCHEMA <name> FROM <table or statistics> [WITH (...)]``
``VALIDATE [STATISTICS] <table> AGAINST <schema> [VERSION <n>] [WITH (...)]``
``ALTER SCHEMA <name> {SET (...) | RESET (...) | ALTER COLUMN <c> {SET (...) | RESET (...)} | ADD COLUMN <c> <type> | DROP COLUMN <c>}``
``UPDATE SCHEMA <name> FROM <table or statistics> [WITH (...)]``
``SHOW SCHEMA <name> [VERSION <n>]``, ``EXPORT SCHEMA <name> [VERSION <n>] TO '<file>' [WITH (format)]``,
``IMPORT SCHEMA <name> FROM '<file>' [WITH (format)]``

``DROP DATA SCHEMA [IF EXISTS] <name>``

"SCHEMA" here is a data schema (TFDV's sense), not a DuckDB namespace: each statement parses
only forms DuckDB does not have (ALTER SCHEMA with SET/RESET/ALTER/ADD/DROP COLUMN,
UPDATE SCHEMA ... FROM, SHOW SCHEMA <name>, DROP DATA SCHEMA) and hands anything else back
to DuckDB.
"""
from __future__ import annotations

from sqlglot import exp
from sqlglot.generator import Generator
from sqlglot.tokenizer_core import TokenType

from engine.dialect.base import MallardParserBase, Statement
from engine.options import Option, boolean, choice, number, table, text, whole
from engine.validation.properties import environments, fraction

_SCHEMA_FORMAT = Option(choice("json", "tfdv"), doc="the file's format: 'json' (Mallard's document) or 'tfdv' "
                        "(TFDV's schema.pbtxt); default: 'tfdv' for a .pbtxt, .textproto or .prototxt file, else 'json'")


def _version(p: MallardParserBase, after: str) -> exp.Expr | None:
    if not p.match_words("VERSION"):
        return None
    curr = p.current()
    if not curr or curr.token_type != TokenType.NUMBER or not curr.text.isdigit():
        p.fail(f"Expected a version number after {after} VERSION, found {p.found()}")
    p.advance()
    return exp.Literal.number(int(curr.text) if curr else 0)


def _version_sql(node: Statement, g: Generator) -> str:
    return f" VERSION {g.sql(node, 'version')}" if node.args.get("version") else ""


def _source(p: MallardParserBase, what: str, after: str) -> exp.Table:
    return p.expect_table(what, after=after)


def _rows_source(p: MallardParserBase, after: str) -> exp.Expr:
    """A table, a ``(query)``, or a table function call such as ``read_parquet('f.parquet')``."""
    curr, following = p.current(), p.following()
    if curr is not None and curr.token_type == TokenType.L_PAREN:
        return p.parse_subquery_or_table("a table, a (query) or a table function", after=after)
    if following is not None and following.token_type == TokenType.L_PAREN and curr is not None \
            and curr.token_type not in (TokenType.STRING, TokenType.NUMBER):
        call = p.parse_value()
        if not isinstance(call, exp.Func):
            p.fail(f"Expected a table, a (query) or a table function after {after}, found {p.found()}")
        return exp.Table(this=call)
    return p.expect_table("a table, a (query) or a table function", after=after)


class ComputeStatistics(Statement):
    """Compute a table's statistics (TFDV's) and store them as a named set, or add a span.

    >>> from engine.dialect import parse_statements
    >>> parse_statements("compute statistics for flights append to year_2013")[0].sql("mallard")
    'COMPUTE STATISTICS FOR flights APPEND TO year_2013'
    """

    PREFIX = "COMPUTE STATISTICS"
    OPTIONS = {
        "max_values": Option(whole(100, 1_000_000), doc="value counts kept per categorical column "
                                                         "(default: the validation_max_values setting)"),
    }
    arg_types = {"this": True, "name": False, "append": False, "options": False}

    @classmethod
    def parse_body(cls, p: MallardParserBase, flags: dict[str, bool]) -> ComputeStatistics:
        p.expect_words("FOR", after="COMPUTE STATISTICS")
        source = _source(p, "a table name", after="COMPUTE STATISTICS FOR")
        name, append = None, False
        if p.match_token(TokenType.ALIAS):
            name = p.expect_name("a statistics name", after="AS")
        elif p.match_words("APPEND"):
            p.expect_words("TO", after="APPEND")
            name, append = p.expect_name("a statistics name", after="APPEND TO"), True
        options = p.parse_options(after="COMPUTE STATISTICS")
        return cls(this=source, name=name, append=append, options=options)

    def to_sql(self, g: Generator) -> str:
        target = ""
        if self.args.get("name"):
            target = f" {'APPEND TO' if self.args.get('append') else 'AS'} {g.sql(self, 'name')}"
        return f"COMPUTE STATISTICS FOR {g.sql(self, 'this')}{target}{self._options_sql(g)}"


class ShowStatistics(Statement):
    """Merged statistics of a set, one row per column; without a name, the list of sets.

    >>> from engine.dialect import parse_statements
    >>> parse_statements("show statistics flights")[0].sql("mallard")
    'SHOW STATISTICS flights'
    """

    PREFIX = "SHOW STATISTICS"
    arg_types = {"this": False}

    @classmethod
    def parse_body(cls, p: MallardParserBase, flags: dict[str, bool]) -> ShowStatistics:
        if p.at_end():
            return cls()
        return cls(this=p.expect_name("a statistics name", after="SHOW STATISTICS"))

    def to_sql(self, g: Generator) -> str:
        return f"SHOW STATISTICS {g.sql(self, 'this')}" if self.this else "SHOW STATISTICS"


class DropStatistics(Statement):
    """Delete a statistics set and all its spans.

    >>> from engine.dialect import parse_statements
    >>> parse_statements("drop statistics if exists flights")[0].sql("mallard")
    'DROP STATISTICS IF EXISTS flights'
    """

    PREFIX = "DROP STATISTICS [IF EXISTS]"
    arg_types = {"this": True, "exists": False}

    @classmethod
    def parse_body(cls, p: MallardParserBase, flags: dict[str, bool]) -> DropStatistics:
        after = "DROP STATISTICS IF EXISTS" if flags["exists"] else "DROP STATISTICS"
        return cls(this=p.expect_name("a statistics name", after=after), exists=flags["exists"])

    def to_sql(self, g: Generator) -> str:
        return f"DROP STATISTICS{' IF EXISTS' if self.args.get('exists') else ''} {g.sql(self, 'this')}"


class InferSchema(Statement):
    """Infer a data schema (types, presence, domains, ranges, patterns) from data.

    >>> from engine.dialect import parse_statements
    >>> parse_statements("infer schema s from flights with (max_domain_size = 50)")[0].sql("mallard")
    'INFER SCHEMA s FROM flights WITH (max_domain_size = 50)'
    """

    PREFIX = "INFER [OR REPLACE] SCHEMA"
    OPTIONS = {
        "max_domain_size": Option(whole(0, 1_000_000), 100,
                                  "a string column with at most this many distinct values gets a domain"),
        "infer_ranges": Option(boolean, True, "infer soft numeric ranges (a warning, not an error, when exceeded)"),
        "range_margin": Option(number(0, 1000), 0.5,
                               "inferred ranges are widened by this fraction of the observed range on each side"),
        "infer_patterns": Option(boolean, True, "infer value shapes of string columns"),
        "environments": Option(environments, doc="the environments validation may name"),
        "min_domain_mass": Option(fraction, 0.999, "least fraction of values inside an inferred domain"),
    }
    arg_types = {"this": True, "source": True, "replace": False, "options": False}

    @classmethod
    def parse_body(cls, p: MallardParserBase, flags: dict[str, bool]) -> InferSchema:
        after = "INFER OR REPLACE" if flags["replace"] else "INFER"
        name = p.expect_name("a schema name", after=f"{after} SCHEMA")
        p.expect_words("FROM", after=f"{after} SCHEMA <name>")
        source = _source(p, "a table or statistics name", after="FROM")
        options = p.parse_options(after="INFER SCHEMA")
        return cls(this=name, source=source, replace=flags["replace"], options=options)

    def to_sql(self, g: Generator) -> str:
        return (f"INFER{self._replace_sql()} SCHEMA {g.sql(self, 'this')} FROM {g.sql(self, 'source')}"
                f"{self._options_sql(g)}")


class Validate(Statement):
    """Validate rows (a table, a query or a table function) or stored statistics against a data
    schema; returns anomaly rows.

    >>> from engine.dialect import parse_statements
    >>> parse_statements("validate feb against s with (environment = 'SERVING', previous = jan)")[0].sql("mallard")
    "VALIDATE feb AGAINST s WITH (environment = 'SERVING', previous = jan)"
    >>> parse_statements("validate (select * from feb where dep_delay > 0) against s")[0].sql("mallard")
    'VALIDATE (SELECT * FROM feb WHERE dep_delay > 0) AGAINST s'
    """

    PREFIX = "VALIDATE [STATISTICS]"
    OPTIONS = {
        "environment": Option(text, doc="the environment the rows come from (e.g. SERVING)"),
        "previous": Option(table, doc="statistics or a table of the previous span (drift comparators)"),
        "training": Option(table, doc="statistics or a table of the training data (skew comparators)"),
    }
    arg_types = {"this": True, "schema": True, "statistics": False, "version": False, "options": False}

    @classmethod
    def parse_body(cls, p: MallardParserBase, flags: dict[str, bool]) -> Validate:
        statistics = flags["statistics"]
        after = "VALIDATE STATISTICS" if statistics else "VALIDATE"
        if statistics:
            target: exp.Expr = p.expect_name("a statistics name", after=after)
        else:
            target = _rows_source(p, after=after)
        p.expect_words("AGAINST", after=f"{after} <{'statistics' if statistics else 'table or query'}>")
        schema = p.expect_name("a schema name", after="AGAINST")
        version = _version(p, after="AGAINST <schema>")
        options = p.parse_options(after="VALIDATE")
        return cls(this=target, schema=schema, statistics=statistics, version=version, options=options)

    def to_sql(self, g: Generator) -> str:
        statistics = " STATISTICS" if self.args.get("statistics") else ""
        return (f"VALIDATE{statistics} {g.sql(self, 'this')} AGAINST {g.sql(self, 'schema')}"
                f"{_version_sql(self, g)}{self._options_sql(g)}")


class SchemaEdit(exp.Expression):
    """One edit of ALTER SCHEMA: ``action`` is SET, RESET, ADD or DROP; ``column`` names the
    column (None for schema-level SET/RESET); ``expressions`` are SET's properties or RESET's
    names; ``kind`` is ADD COLUMN's type."""

    arg_types = {"action": True, "column": False, "expressions": False, "kind": False}


class AlterSchema(Statement):
    """Edit a data schema; the result is a new version (every version is kept).

    >>> from engine.dialect import parse_statements
    >>> parse_statements("alter schema s alter column carrier set (drift_l_infinity = 0.1)")[0].sql("mallard")
    'ALTER SCHEMA s ALTER COLUMN carrier SET (drift_l_infinity = 0.1)'
    """

    PREFIX = "ALTER SCHEMA"
    arg_types = {"this": True, "edit": True}

    @classmethod
    def parse_body(cls, p: MallardParserBase, flags: dict[str, bool]) -> AlterSchema | None:
        if p.at_end():
            return None
        name = p.expect_name("a schema name", after="ALTER SCHEMA")
        edit = _schema_edit(p)
        return None if edit is None else cls(this=name, edit=edit)

    def to_sql(self, g: Generator) -> str:
        edit: SchemaEdit = self.args["edit"]
        action = edit.args["action"]
        column = g.sql(edit, "column")
        if action in ("ADD", "DROP"):
            kind = f" {edit.args['kind']}" if action == "ADD" else ""
            return f"ALTER SCHEMA {g.sql(self, 'this')} {action} COLUMN {column}{kind}"
        if action == "SET":
            inner = ", ".join(f"{g.sql(o, 'this')} = {g.sql(o, 'value')}" for o in edit.expressions)
        else:
            inner = ", ".join(g.sql(e) for e in edit.expressions)
        target = f" ALTER COLUMN {column}" if edit.args.get("column") else ""
        return f"ALTER SCHEMA {g.sql(self, 'this')}{target} {action} ({inner})"


def _schema_edit(p: MallardParserBase) -> SchemaEdit | None:
    """The edit after ``ALTER SCHEMA <name>``; None when the words are not a data-schema edit."""
    if p.match_words("ALTER", "COLUMN") or p.match_words("ALTER"):
        column = p.expect_name("a column name", after="ALTER COLUMN")
        return _set_or_reset(p, column, after=f"ALTER COLUMN {column.name}")
    if p.match_words("ADD", "COLUMN") or p.match_words("ADD"):
        column = p.expect_name("a column name", after="ADD COLUMN")
        kind = p.expect_name("a column type (INT, FLOAT, STRING, BOOLEAN, TIMESTAMP or BYTES)",
                             after=f"ADD COLUMN {column.name}")
        return SchemaEdit(action="ADD", column=column, kind=kind.name.upper())
    if p.match_words("DROP", "COLUMN"):
        return SchemaEdit(action="DROP", column=p.expect_name("a column name", after="DROP COLUMN"))
    curr, following = p.current(), p.following()
    if curr and curr.text.upper() in ("SET", "RESET") and following and following.token_type == TokenType.L_PAREN:
        return _set_or_reset(p, None, after="ALTER SCHEMA <name>")
    return None


def _set_or_reset(p: MallardParserBase, column: exp.Identifier | None, after: str) -> SchemaEdit:
    if p.match_token(TokenType.SET):
        return SchemaEdit(action="SET", column=column,
                          expressions=p.parse_properties(f"{after} SET", "property", "SET (...)"))
    if p.match_words("RESET"):
        if not p.match_token(TokenType.L_PAREN):
            p.fail(f"Expected ( after {after} RESET, found {p.found()}")
        names = p.parse_names("a property name", after=f"{after} RESET (")
        if not p.match_token(TokenType.R_PAREN):
            p.fail(f"Expected , or ) in RESET (...), found {p.found()}")
        return SchemaEdit(action="RESET", column=column, expressions=[exp.var(n.name.lower()) for n in names])
    p.fail(f"Expected SET (...) or RESET (...) after {after}, found {p.found()}")
    raise AssertionError("unreachable")


class UpdateSchema(Statement):
    """Relax a data schema so that new data conforms, as a new version; returns the changes.

    >>> from engine.dialect import parse_statements
    >>> parse_statements("update schema s from feb")[0].sql("mallard")
    'UPDATE SCHEMA s FROM feb'
    """

    PREFIX = "UPDATE SCHEMA"
    OPTIONS = {
        "environment": Option(text, doc="the environment the new data comes from"),
        "accept_type_changes": Option(boolean, False, "change a column's type when the data's type changed"),
    }
    arg_types = {"this": True, "source": True, "options": False}

    @classmethod
    def parse_body(cls, p: MallardParserBase, flags: dict[str, bool]) -> UpdateSchema | None:
        if p.at_end():
            return None
        name = p.expect_name("a schema name", after="UPDATE SCHEMA")
        if not p.match_words("FROM"):
            return None  # DuckDB's UPDATE of a table named "schema"
        source = _source(p, "a table or statistics name", after=f"UPDATE SCHEMA {name.name} FROM")
        return cls(this=name, source=source, options=p.parse_options(after="UPDATE SCHEMA"))

    def to_sql(self, g: Generator) -> str:
        return f"UPDATE SCHEMA {g.sql(self, 'this')} FROM {g.sql(self, 'source')}{self._options_sql(g)}"


class ShowSchema(Statement):
    """A data schema as a table, one row per column (the latest version unless VERSION n).

    >>> from engine.dialect import parse_statements
    >>> parse_statements("show schema s version 2")[0].sql("mallard")
    'SHOW SCHEMA s VERSION 2'
    """

    PREFIX = "SHOW SCHEMA"
    arg_types = {"this": True, "version": False}

    @classmethod
    def parse_body(cls, p: MallardParserBase, flags: dict[str, bool]) -> ShowSchema | None:
        if p.at_end():
            return None  # DuckDB's SHOW of a table named "schema"
        name = p.expect_name("a schema name", after="SHOW SCHEMA")
        return cls(this=name, version=_version(p, after="SHOW SCHEMA <name>"))

    def to_sql(self, g: Generator) -> str:
        return f"SHOW SCHEMA {g.sql(self, 'this')}{_version_sql(self, g)}"


class DropDataSchema(Statement):
    """Delete a data schema with all its versions (validation runs keep their anomalies).

    ``DROP SCHEMA`` stays DuckDB's (a namespace); a data schema is dropped with ``DROP DATA SCHEMA``.

    >>> from engine.dialect import parse_statements
    >>> parse_statements("drop data schema if exists flights")[0].sql("mallard")
    'DROP DATA SCHEMA IF EXISTS flights'
    """

    PREFIX = "DROP DATA SCHEMA [IF EXISTS]"
    arg_types = {"this": True, "exists": False}

    @classmethod
    def parse_body(cls, p: MallardParserBase, flags: dict[str, bool]) -> DropDataSchema:
        after = "DROP DATA SCHEMA IF EXISTS" if flags["exists"] else "DROP DATA SCHEMA"
        return cls(this=p.expect_name("a schema name", after=after), exists=flags["exists"])

    def to_sql(self, g: Generator) -> str:
        return f"DROP DATA SCHEMA{' IF EXISTS' if self.args.get('exists') else ''} {g.sql(self, 'this')}"


class ExportSchema(Statement):
    """Write a data schema version to a file: Mallard's JSON document, or TFDV's
    ``schema.pbtxt`` (``format = 'tfdv'``, or a ``.pbtxt`` file name), which returns one row per
    property TFDV's schema cannot hold.

    ``EXPORT SCHEMA <name> [VERSION <n>] TO '<file>' [WITH (format = 'json' | 'tfdv')]``

    >>> from engine.dialect import parse_statements
    >>> parse_statements("export schema s to 's.pbtxt' with (format = 'tfdv')")[0].sql("mallard")
    "EXPORT SCHEMA s TO 's.pbtxt' WITH (format = 'tfdv')"
    """

    PREFIX = "EXPORT SCHEMA"
    OPTIONS = {"format": _SCHEMA_FORMAT}
    arg_types = {"this": True, "path": True, "version": False, "options": False}

    @classmethod
    def parse_body(cls, p: MallardParserBase, flags: dict[str, bool]) -> ExportSchema:
        name = p.expect_name("a schema name", after="EXPORT SCHEMA")
        version = _version(p, after="EXPORT SCHEMA <name>")
        p.expect_words("TO", after="EXPORT SCHEMA <name>")
        path = p.expect_string_or_parameter("a schema file path", after="TO")
        return cls(this=name, version=version, path=path, options=p.parse_options(after="EXPORT SCHEMA"))

    def to_sql(self, g: Generator) -> str:
        return (f"EXPORT SCHEMA {g.sql(self, 'this')}{_version_sql(self, g)} TO {g.sql(self, 'path')}"
                f"{self._options_sql(g)}")


class ImportSchema(Statement):
    """Read a data schema from a file as a new version of ``<name>``: Mallard's JSON document,
    or TFDV's ``schema.pbtxt`` (``format = 'tfdv'``, or a ``.pbtxt`` file name), which returns
    one row per property of the TFDV schema that Mallard could not take.

    ``IMPORT SCHEMA <name> FROM '<file>' [WITH (format = 'json' | 'tfdv')]``

    >>> from engine.dialect import parse_statements
    >>> parse_statements("import schema s from 's.json'")[0].sql("mallard")
    "IMPORT SCHEMA s FROM 's.json'"
    """

    PREFIX = "IMPORT SCHEMA"
    OPTIONS = {"format": _SCHEMA_FORMAT}
    arg_types = {"this": True, "path": True, "options": False}

    @classmethod
    def parse_body(cls, p: MallardParserBase, flags: dict[str, bool]) -> ImportSchema:
        name = p.expect_name("a schema name", after="IMPORT SCHEMA")
        p.expect_words("FROM", after="IMPORT SCHEMA <name>")
        path = p.expect_string_or_parameter("a schema file path", after="FROM")
        return cls(this=name, path=path, options=p.parse_options(after="IMPORT SCHEMA"))

    def to_sql(self, g: Generator) -> str:
        return f"IMPORT SCHEMA {g.sql(self, 'this')} FROM {g.sql(self, 'path')}{self._options_sql(g)}"
