"""Gold (expert) labels: ``ADD GOLD LABELS`` stores them by row key in ``mallard.gold_labels``.

LABEL joins them to the rows: a gold label overrides the weak one (provenance ``'gold'``,
weight 1) and the functions' votes on gold rows give their empirical accuracy.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from sqlglot import exp

from engine.errors import DataError, ProgrammingError
from engine.labeling.classes import LabelClasses
from engine.labeling.matrix import VOTE_ERROR
from engine.labeling.table import RowKey, column_names, quote_column, require_table, row_key
from engine.options import read_options
from engine.system_catalog import catalog_name

if TYPE_CHECKING:
    from engine.session import Session

_GOLD = exp.to_table("mallard.gold_labels")


def _for_table(source: exp.Table) -> exp.Expr:
    return exp.EQ(this=exp.column("table_name"), expression=exp.Literal.string(catalog_name(source)))


def check_key(session: Session, source: exp.Table, key: RowKey) -> bool:
    """Whether ``source`` has gold labels; they must be keyed by ``key``."""
    rows = session.sql(
        "SELECT DISTINCT key_column FROM mallard.gold_labels WHERE table_name = ?", [catalog_name(source)]
    ).fetchall()
    if not rows:
        return False
    keyed = rows[0][0]
    if keyed.lower() != key.name.lower():
        raise ProgrammingError(
            f"the gold labels of {source.sql('duckdb')} are keyed by {keyed}, but rows are keyed by {key.name}; "
            f"use WITH (key = {keyed})"
        )
    return True


def code_subquery(source: exp.Table, classes: LabelClasses) -> exp.Subquery:
    """``(SELECT row_key, <class code> AS code FROM mallard.gold_labels WHERE table_name = ...)``;
    a gold label outside the classes raises, naming it."""
    label = exp.column("label")
    ifs = [exp.If(this=exp.EQ(this=label.copy(), expression=exp.Literal.string(text)), true=exp.Literal.number(code))
           for code, text in enumerate(classes.texts, start=1)]
    message = exp.Concat(expressions=[
        exp.Literal.string(f"{VOTE_ERROR}the gold label "), label.copy(), exp.Literal.string(" of the row with key "),
        exp.column("row_key"), exp.Literal.string(f" is not one of the classes {list(classes.values)!r}"),
    ])
    code = exp.cast(exp.Case(ifs=ifs, default=exp.Anonymous(this="error", expressions=[message])), "TINYINT")
    query = exp.select("row_key", exp.alias_(code, "code")).from_(_GOLD.copy()).where(_for_table(source))
    return exp.Subquery(this=query)


def distinct_labels(session: Session, source: exp.Table) -> set[str]:
    query = exp.select("label").distinct().from_(_GOLD.copy()).where(_for_table(source))
    return {r[0] for r in session.sql(query).fetchall()}


def add_gold_labels(session: Session, table: exp.Table, source: exp.Expr, options_node: exp.Expr) -> int:
    """Check and store gold labels for ``table`` from ``source`` (a table or subquery); returns how many."""
    session.require_writable("ADD GOLD LABELS")
    require_table(session, table, "ADD GOLD LABELS")
    options = read_options(options_node)
    key = row_key(session, table, options.get("key"))
    label_column = options.get("label", "label")
    rows = _gold_rows(session, source, key.name, label_column)
    _check_rows(session, table, key, rows)
    name = catalog_name(table)
    existing = session.sql("SELECT DISTINCT key_column FROM mallard.gold_labels WHERE table_name = ?", [name]).fetchall()
    if existing and existing[0][0].lower() != key.name.lower():
        raise ProgrammingError(
            f"the gold labels of {table.sql('duckdb')} are keyed by {existing[0][0]}, not {key.name}; "
            f"use WITH (key = {existing[0][0]})"
        )
    keys = exp.select("row_key").from_(exp.alias_(rows.copy(), "gold_rows"))
    insert = exp.select(exp.Literal.string(name), exp.Literal.string(key.name), "row_key", "label") \
        .from_(exp.alias_(rows.copy(), "gold_rows"))
    with session.atomic():
        session.sql(exp.delete(_GOLD.copy(), where=exp.and_(_for_table(table), exp.In(this=exp.column("row_key"), query=exp.Subquery(this=keys)))))
        session.sql(exp.Insert(
            this=exp.Schema(this=_GOLD.copy(), expressions=[exp.to_identifier(c) for c in ("table_name", "key_column", "row_key", "label")]),
            expression=insert,
        ))
    return int(session.scalar(exp.select(exp.Count(this=exp.Star())).from_(exp.alias_(rows.copy(), "gold_rows"))))


def _gold_rows(session: Session, source: exp.Expr, key: str, label: str) -> exp.Subquery:
    """``(SELECT CAST(key AS VARCHAR) AS row_key, CAST(label AS VARCHAR) AS label FROM source)``."""
    origin = exp.alias_(source.copy(), "gold_source") if isinstance(source, exp.Subquery) else source.copy()
    probe = exp.select("*").from_(origin.copy()).limit(0)
    have = [d[0] for d in session.sql(probe).description]
    for what, column in (("key", key), ("label", label)):
        if column.lower() not in {h.lower() for h in have}:
            raise ProgrammingError(
                f"ADD GOLD LABELS: the {what} column {column} is not among the source's columns ({', '.join(have)}); "
                f"name it with WITH ({what} = <column>)"
            )
    query = exp.select(
        exp.alias_(exp.cast(quote_column(key), "VARCHAR"), "row_key"),
        exp.alias_(exp.cast(quote_column(label), "VARCHAR"), "label"),
    ).from_(origin)
    return exp.Subquery(this=query)


def _check_rows(session: Session, table: exp.Table, key: RowKey, rows: exp.Subquery) -> None:
    """Every gold row has a key and a label, keys are unique, and each key is a row of ``table``."""
    stats = exp.select(
        exp.Count(this=exp.Star()), exp.Count(this=exp.column("row_key")), exp.Count(this=exp.column("label")),
        exp.Count(this=exp.Distinct(expressions=[exp.column("row_key")])),
    ).from_(exp.alias_(rows.copy(), "gold_rows"))
    total, keyed, labeled, distinct = session.row(stats)
    if keyed < total or labeled < total:
        raise DataError(f"ADD GOLD LABELS: {total - min(keyed, labeled)} gold row(s) have a NULL key or label")
    if distinct < total:
        raise DataError("ADD GOLD LABELS: the source gives more than one gold label for the same key")
    table_keys = exp.select(exp.alias_(exp.cast(key.column(), "VARCHAR"), "row_key")).from_(table.copy())
    missing = exp.select("row_key").from_(exp.alias_(rows.copy(), "gold_rows")).where(
        exp.Not(this=exp.In(this=exp.column("row_key"), query=exp.Subquery(this=table_keys)))).limit(1)
    found = session.sql(missing).fetchone()
    if found is not None:
        columns = ", ".join(column_names(session, table))
        raise DataError(
            f"ADD GOLD LABELS: no row of {table.sql('duckdb')} has {key.name} = {found[0]} (gold labels refer to rows "
            f"by their key; the table's columns: {columns})"
        )
