"""How a label table is stored: factorized (a view over the rows' vote codes and one row per
vote pattern) or as a table of its rows.

On the pattern path the label model predicts per vote pattern, not per row: 1M rows x 10
functions have 25k-122k distinct patterns (:mod:`engine.labeling.fit_path`).  So LABEL
stores the label table as what it is made of, in two tables of the ``mallard`` schema that
share a token:

- ``mallard.__label_rows_<token>``: the label matrix, ``(key, c0, ..., gold)``: each row's
  key, its packed vote codes (:mod:`engine.labeling.matrix`) and its gold class code; a few
  integers a row, which DuckDB compresses well;
- ``mallard.__label_patterns_<token>``: one row per vote pattern, ``(c0, ..., label, probs,
  n_votes, weight)``;

and the label table ``<target>`` is a view joining them, gold classes as literal ``VALUES``
(one-hot probabilities, weight 1).  Reading it costs DuckDB a hash join against the pattern
table (about 20 ms more than a stored table at 1M rows); writing it skips compressing and
storing a probability list, a label, a weight and a provenance per row: at 1M rows x 10
functions x 3 classes the stored table's write is about 0.15 s of LABEL's 0.3 s
(bench/RESULTS.md).  ``WITH (storage = 'table')`` stores the joined rows instead, and the rows
path (nearly one pattern a row) always writes a table.

The view reads like a table (``SELECT``, ``DESCRIBE``, joins, TRAIN); ``DROP TABLE`` of a label
view drops it (:func:`rewrite_drop`), and storage that no view reads any more (the view was
dropped or replaced) is dropped by the next LABEL, ``DROP`` or connect
(:func:`drop_orphans`).

>>> rows_table("00ff00ff00ff00ff").sql("duckdb")
'mallard.__label_rows_00ff00ff00ff00ff'
>>> sorted(_TOKEN.findall("SELECT * FROM mallard.__label_rows_00ff00ff00ff00ff AS v JOIN x"))
['00ff00ff00ff00ff']
"""
from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from engine.errors import Error
from engine.labeling.classes import LabelClasses
from engine.labeling.writer import label_query

if TYPE_CHECKING:
    from engine.session import Session

STORAGE = ("auto", "table")
ROWS_PREFIX = "__label_rows_"
PATTERNS_PREFIX = "__label_patterns_"
_TOKEN = re.compile(r"__label_(?:rows|patterns)_([0-9a-f]{16})")

Run = Callable[[str, list[Any]], list[tuple[Any, ...]]]


def new_token() -> str:
    return secrets.token_hex(8)


def _hidden(prefix: str, token: str) -> exp.Table:
    return exp.Table(this=exp.to_identifier(prefix + token), db=exp.to_identifier("mallard"))


def rows_table(token: str) -> exp.Table:
    return _hidden(ROWS_PREFIX, token)


def patterns_table(token: str) -> exp.Table:
    return _hidden(PATTERNS_PREFIX, token)


def gold_values(classes: LabelClasses) -> exp.Expr:
    """``(VALUES (1, <class 0>, [1.0, 0.0, ...]), ...) AS g(code, label, probs)``: each gold
    class code's label and one-hot probabilities, as literals the view keeps."""
    label_type = "BIGINT" if classes.is_integer else "VARCHAR"
    rows = []
    for i, (value, text) in enumerate(zip(classes.values, classes.texts)):
        literal = exp.Literal.number(value) if classes.is_integer else exp.Literal.string(text)
        one_hot = exp.Array(expressions=[exp.Literal.number("1.0" if i == j else "0.0") for j in range(classes.k)])
        rows.append(exp.Tuple(expressions=[exp.cast(exp.Literal.number(i + 1), "TINYINT"), exp.cast(literal, label_type),
                                           exp.cast(one_hot, "DOUBLE[]")]))
    alias = exp.TableAlias(this=exp.to_identifier("g"), columns=[exp.to_identifier(c) for c in ("code", "label", "probs")])
    return exp.Values(expressions=rows, alias=alias)


def write_view(session: Session, rows: exp.Table, names: list[str], has_gold: bool, predictions: str,
               token: str, target: exp.Table, key: str, classes: LabelClasses) -> None:
    """Store the per-pattern ``predictions`` (a registered Arrow table) as the pattern table of
    ``token`` and create the label view ``target`` over it and the rows table ``rows``."""
    patterns = patterns_table(token)
    session.sql(exp.Create(this=patterns, kind="TABLE", expression=exp.select("*").from_(predictions)))
    query = label_query(rows, names, key, patterns, gold_values(classes) if has_gold else None)
    session.sql(exp.Create(this=target.copy(), kind="VIEW", expression=query))


def object_kind(session: Session, table: exp.Table) -> str | None:
    """'TABLE' or 'VIEW' for an object of that name, else None."""
    query = ("SELECT table_type FROM information_schema.tables WHERE lower(table_schema) = lower(?)"
             " AND lower(table_name) = lower(?) AND table_catalog = coalesce(?, current_database())")
    row = session.sql(query, [table.db or "main", table.name, table.catalog or None]).fetchone()
    if not row:
        return None
    return "VIEW" if row[0] == "VIEW" else "TABLE"


def drop_target(session: Session, target: exp.Table) -> None:
    """Drop ``target`` (a table or a view) if it exists: LABEL ... INTO OR REPLACE replaces a
    label view by a table and the other way round."""
    kind = object_kind(session, target)
    if kind is not None:
        session.sql(exp.Drop(tables=[target.copy()], kind=kind))


def is_label_view(session: Session, table: exp.Table) -> bool:
    """Whether ``table`` names a view LABEL made (one over a ``__label_rows_`` table)."""
    query = ("SELECT sql FROM duckdb_views() WHERE NOT internal AND lower(schema_name) = lower(?)"
             " AND lower(view_name) = lower(?) AND database_name = coalesce(?, current_database())")
    row = session.sql(query, [table.db or "main", table.name, table.catalog or None]).fetchone()
    return bool(row and ROWS_PREFIX in (row[0] or ""))


def orphaned_tokens(run: Run) -> list[str]:
    """Tokens of label storage that no view of this database reads any more."""
    tables = run("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'mallard' AND database_name ="
                 " current_database() AND starts_with(table_name, '__label_')", [])
    stored = {m.group(1) for (name,) in tables if (m := _TOKEN.fullmatch(name))}
    if not stored:
        return []
    views = run("SELECT sql FROM duckdb_views() WHERE NOT internal AND database_name = current_database()"
                " AND contains(sql, '__label_')", [])
    used = {token for (sql,) in views for token in _TOKEN.findall(sql or "")}
    return sorted(stored - used)


def drop_orphans(run: Run) -> list[str]:
    """Drop the label storage no view reads; return the tokens dropped."""
    tokens = orphaned_tokens(run)
    for token in tokens:
        for table in (rows_table(token), patterns_table(token)):
            run(exp.Drop(tables=[table], kind="TABLE", exists=True).sql("duckdb"), [])
    return tokens


def session_runner(session: Session) -> Run:
    """:data:`Run` on the session's connection (inside its transaction)."""
    def run(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        return session.sql(sql, params or None).fetchall()
    return run


def rewrite_drop(session: Session, sql: str) -> exp.Drop | None:
    """For ``DROP TABLE [IF EXISTS] <label view>``: the ``DROP VIEW`` to run instead (DuckDB
    refuses to drop a view as a table); None for any other statement."""
    from engine.dialect import parse_statements

    try:
        nodes = parse_statements(sql)
    except Error:  # not sqlglot's to judge: DuckDB runs the text and reports its own error
        return None
    if len(nodes) != 1 or not isinstance(nodes[0], exp.Drop) or str(nodes[0].args.get("kind") or "").upper() != "TABLE":
        return None
    tables = nodes[0].args.get("tables") or []
    if len(tables) != 1 or not isinstance(tables[0], exp.Table) or not is_label_view(session, tables[0]):
        return None
    return exp.Drop(tables=[tables[0].copy()], kind="VIEW", exists=bool(nodes[0].args.get("exists")))
