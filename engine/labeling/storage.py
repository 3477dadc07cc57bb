"""How a label table is stored: as a view over the rows' stored vote codes (the label matrix)
and the label model, or as a table of its rows.

A label is a function of a row's votes, and the label model is small: so LABEL stores what
the labels are made of, in tables of the ``mallard`` schema that share a token, and the label
table ``<target>`` is a view computing them:

- ``mallard.__label_rows_<token>``: the label matrix, ``(key, c0, ..., gold)``: each row's
  key, its packed vote codes (:mod:`engine.labeling.matrix`) and its gold class code; a few
  integers a row, which DuckDB compresses well;
- on the pattern path (few distinct vote patterns), ``mallard.__label_patterns_<token>``:
  one row per pattern, ``(c0, ..., label, probs, n_votes, weight)``, and the view joins the
  rows to it (:func:`write_view`);
- on the rows path of the label model (nearly one pattern a row: many functions),
  ``mallard.__label_model_<token>``: one row of lookup lists, the E-step's tables per group
  of functions (:func:`model_view_parameters`), and the view computes each row's
  probabilities from its codes with the same sums in the same order as NumPy, then the
  softmax (:func:`model_query`; equal to the NumPy result within a rounding of ``exp``).

Gold labels override weak ones in the view (literal ``VALUES``: one-hot probabilities, weight
1).  Reading costs DuckDB a hash join or a few list lookups a row (20-45 ms more than a
stored table at 1M rows); writing skips compressing and storing a probability list, a label,
a weight and a provenance per row, which at 1M rows was half of LABEL's time
(bench/RESULTS.md).  ``WITH (storage = 'table')`` stores the rows instead, as does majority
vote on the rows path.

The view reads like a table (``SELECT``, ``DESCRIBE``, joins, TRAIN, plain DuckDB); ``DROP
TABLE`` of a label view drops it (:func:`rewrite_drop`), and storage that no view reads any
more (the view was dropped or replaced) is dropped by the next LABEL ... OR REPLACE, ``DROP``
or connect (:func:`drop_orphans`).

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

import numpy as np
import pyarrow as pa
from sqlglot import exp

from engine.errors import Error
from engine.labeling.classes import LabelClasses
from engine.labeling.patterns import GROUP_BITS
from engine.labeling.writer import label_query, label_select

if TYPE_CHECKING:
    from engine.session import Session

STORAGE = ("auto", "table")
ROWS_PREFIX = "__label_rows_"
PATTERNS_PREFIX = "__label_patterns_"
MODEL_PREFIX = "__label_model_"
_TOKEN = re.compile(r"__label_(?:rows|patterns|model)_([0-9a-f]{16})")

Run = Callable[[str, list[Any]], list[tuple[Any, ...]]]


def new_token() -> str:
    return secrets.token_hex(8)


def _hidden(prefix: str, token: str) -> exp.Table:
    return exp.Table(this=exp.to_identifier(prefix + token), db=exp.to_identifier("mallard"))


def rows_table(token: str) -> exp.Table:
    return _hidden(ROWS_PREFIX, token)


def patterns_table(token: str) -> exp.Table:
    return _hidden(PATTERNS_PREFIX, token)


def model_table(token: str) -> exp.Table:
    return _hidden(MODEL_PREFIX, token)


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


def model_view_parameters(fitted: Any, layout: Any) -> pa.Table | None:
    """The label model as one row of per-group lookup lists (:func:`write_model_view`): for
    each group of functions g and class c >= 1, ``z<c>_g<g>`` (log P(votes | c) - log P(votes |
    class 0) of each joint code, as the E-step's :class:`~engine.labeling.dawid_skene.Posterior`
    tables) and ``n_g<g>`` (votes cast in each joint code); the class offsets are returned as
    the ``offset`` list.  None when a parameter is not finite (a class with no rows)."""
    log_theta, log_prior = np.log(fitted.theta), np.log(fitted.prior)
    groups = layout.groups
    tables = groups.tables(log_theta[:, :, 1:] - log_theta[:, :, :1])
    offset = log_prior[1:] - log_prior[0]
    if not (np.isfinite(offset).all() and all(np.isfinite(t).all() for t in tables)):
        return None
    columns: dict[str, pa.Array] = {"offset": pa.array([offset.tolist()], pa.list_(pa.float64()))}
    for g, (table, tally) in enumerate(zip(tables, groups.tally_tables)):
        for c in range(1, groups.k):
            columns[f"z{c}_g{g}"] = pa.array([table[c - 1]], pa.list_(pa.float64()))
        columns[f"n_g{g}"] = pa.array([tally.sum(axis=0).round().astype(np.int32)], pa.list_(pa.int32()))
    return pa.table(columns)


def model_query(rows: exp.Table, model: exp.Table, layout: Any, has_gold: bool, key: str,
                classes: LabelClasses) -> exp.Select:
    """The label table's rows computed from each row's vote codes and the label model's lookup
    lists: the same sums, in the same order, as the E-step in NumPy (the groups' entries, then
    the class offset), then the softmax and the first largest class."""
    k = classes.k
    v, m = "v", "m"
    codes: list[exp.Expr] = []
    for name, column in zip(layout.names, layout.columns):
        for slot in range(len(column)):
            shifted = exp.BitwiseRightShift(this=exp.column(name, v), expression=exp.Literal.number(GROUP_BITS * slot))
            code = exp.BitwiseAnd(this=exp.paren(shifted), expression=exp.Literal.number((1 << GROUP_BITS) - 1))
            codes.append(exp.Add(this=exp.paren(code), expression=exp.Literal.number(1)))

    def lookup(column: str, code: exp.Expr) -> exp.Expr:
        return exp.Anonymous(this="list_extract", expressions=[exp.column(column, m), code.copy()])

    def total(terms: list[exp.Expr]) -> exp.Expr:
        out = terms[0]
        for term in terms[1:]:
            out = exp.Add(this=out, expression=term)
        return out

    zero = exp.cast(exp.Literal.number(0), "DOUBLE")
    scores = [zero] + [
        exp.Add(this=exp.paren(total([lookup(f"z{c}_g{g}", code) for g, code in enumerate(codes)])),
                expression=lookup("offset", exp.Literal.number(c)))
        for c in range(1, k)]
    first = exp.select(exp.column("key", v), *([exp.column("gold", v)] if has_gold else []),
                       *[exp.alias_(z, f"z{c}") for c, z in enumerate(scores)],
                       exp.alias_(total([lookup(f"n_g{g}", code) for g, code in enumerate(codes)]), "n_votes"))
    first = first.from_(exp.alias_(rows.copy(), v)).join(exp.alias_(model.copy(), m), join_type="CROSS")
    keep = ["key", *(["gold"] if has_gold else []), "n_votes"]
    largest = exp.Anonymous(this="greatest", expressions=[exp.column(f"z{c}") for c in range(k)])
    second = exp.select(*keep, *[exp.alias_(exp.Exp(this=exp.Sub(this=exp.column(f"z{c}"), expression=exp.column("mx"))),
                                            f"e{c}") for c in range(k)])
    second = second.from_(exp.Subquery(this=exp.select("*", exp.alias_(largest, "mx")).from_(exp.Subquery(this=first))))
    norm = total([exp.column(f"e{c}") for c in range(k)])
    third = exp.select(*keep, *[exp.alias_(exp.Div(this=exp.column(f"e{c}"), expression=exp.paren(norm.copy()), typed=False,
                                                   safe=False), f"p{c}") for c in range(k)])
    third = third.from_(exp.Subquery(this=second))
    top = exp.Anonymous(this="greatest", expressions=[exp.column(f"p{c}") for c in range(k)])
    fourth = exp.select(*keep, exp.alias_(exp.Array(expressions=[exp.column(f"p{c}") for c in range(k)]), "probs"),
                        exp.alias_(top, "weight"), *[exp.column(f"p{c}") for c in range(k)])
    fourth = fourth.from_(exp.Subquery(this=third))
    label_type = "BIGINT" if classes.is_integer else "VARCHAR"
    values = exp.Array(expressions=[exp.cast(exp.Literal.number(x) if classes.is_integer else exp.Literal.string(t),
                                             label_type) for x, t in zip(classes.values, classes.texts)])
    index = exp.Case(ifs=[exp.If(this=exp.EQ(this=exp.column(f"p{c}"), expression=exp.column("weight")),
                                 true=exp.Literal.number(c + 1)) for c in range(k - 1)], default=exp.Literal.number(k))
    fifth = exp.select(*keep, exp.alias_(exp.Anonymous(this="list_extract", expressions=[values, index]), "label"),
                       "probs", "weight").from_(exp.Subquery(this=fourth))
    source = exp.select("*").from_(exp.alias_(exp.Subquery(this=fifth), v))
    return label_select(source, v, key, gold_values(classes) if has_gold else None)


def write_model_view(session: Session, rows: exp.Table, layout: Any, has_gold: bool, parameters: pa.Table,
                     token: str, target: exp.Table, key: str, classes: LabelClasses) -> None:
    """Store the label model's lookup lists (:func:`model_view_parameters`) as the model table
    of ``token`` and create the label view ``target`` computing each row's label from its vote
    codes in ``rows`` (no per-row prediction is stored)."""
    model = model_table(token)
    name = f"__mallard_label_model_{token}"
    session.register(name, parameters)
    try:
        session.sql(exp.Create(this=model, kind="TABLE", expression=exp.select("*").from_(name)))
    finally:
        session.unregister(name)
    session.sql(exp.Create(this=target.copy(), kind="VIEW", expression=model_query(rows, model, layout, has_gold, key,
                                                                                   classes)))


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


def storage_tables(token: str) -> tuple[exp.Table, ...]:
    """Every table a label view of ``token`` may read (its rows, and patterns or model)."""
    return rows_table(token), patterns_table(token), model_table(token)


def drop_orphans(run: Run) -> list[str]:
    """Drop the label storage no view reads; return the tokens dropped."""
    tokens = orphaned_tokens(run)
    for token in tokens:
        for table in storage_tables(token):
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


#: DuckDB's refusals to change a view as a table.
_VIEW_REFUSALS = ("Can only update base table", "Can only delete from base table", "is not an table",
                  "Can only modify view with ALTER VIEW")


def view_write_hint(session: Session, sql: str, message: str) -> str | None:
    """What to do instead, when DuckDB refused ``sql`` (an INSERT, UPDATE, DELETE or ALTER TABLE)
    because its target is a label view; None for any other refusal."""
    from engine.dialect import parse_statements

    if not any(refusal in message for refusal in _VIEW_REFUSALS):
        return None
    try:
        nodes = parse_statements(sql)
        if len(nodes) != 1 or not isinstance(nodes[0], (exp.Insert, exp.Update, exp.Delete, exp.Alter)):
            return None
        target = nodes[0].this
        table = target if isinstance(target, exp.Table) else target.find(exp.Table) if target is not None else None
        if table is None or not is_label_view(session, table):
            return None
    except Error:  # the hint is a courtesy: DuckDB's own error stands
        return None
    name = table.sql("duckdb")
    return (f"{name} is a label table stored as a view (computed from the stored votes and the label model), which "
            f"cannot be changed in place: relabel with LABEL ... INTO OR REPLACE {name}, add expert labels with ADD "
            f"GOLD LABELS, or store rows you can change with LABEL ... WITH (storage = 'table') INTO ...")
