"""What a training query gives: its relation, and which of its columns are the input, the
label, the probabilities, the weights and the key (:class:`DataSpec`), checked against the
options before anything runs.

An *image* query has one BLOB column of raw HWC uint8 RGB frames (as frames tables store
them) and ``height``/``width`` columns; a *numeric* query has numeric columns and fixed-length
numeric lists (``FLOAT[]``), concatenated in the order given into one feature vector.

>>> import duckdb
>>> from engine.training.options import parse_options
>>> duck = duckdb.connect()
>>> rel = source_relation(duck, "SELECT range AS id, range * 0.5 AS x, [1.0, 2.0] AS v, 'a' AS label FROM range(4)")
>>> spec = resolve_data(rel, parse_options({"architecture": "mlp"}))
>>> spec.kind, spec.inputs, spec.label, spec.key
('numeric', ('x', 'v'), 'label', 'id')
>>> resolve_data(rel, parse_options({"architecture": "mlp", "label": "y"}))
Traceback (most recent call last):
...
engine.errors.ProgrammingError: the training query has no label column y; its columns are id, x, v, label (name the label column with label = '<column>')
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

import duckdb
import sqlglot
from sqlglot import exp

from engine.errors import DataError, ProgrammingError, translate
from engine.training.options import TrainingOptions

_INTEGER = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT",
            "UHUGEINT")
_NUMBER = (*_INTEGER, "FLOAT", "DOUBLE", "REAL", "BOOLEAN")
_LIST = re.compile(r"^(.*)\[\d*\]$")


@dataclass(frozen=True)
class DataSpec:
    """The columns a training run reads, by role."""

    kind: str                       # 'image' or 'numeric'
    inputs: tuple[str, ...]         # image: (the BLOB column,); numeric: feature columns in order
    label: str | None               # None: the probabilities alone are the target
    label_type: str | None          # 'text' or 'integer'
    probs: str | None
    weight: str | None
    key: str | None                 # None: the row's values are hashed instead
    list_inputs: tuple[str, ...] = ()  # the numeric inputs that are lists


def source_relation(duck: duckdb.DuckDBPyConnection, query_sql: str, rows: Any = None) -> duckdb.DuckDBPyRelation:
    """The training query as a lazy relation (nothing runs yet); ``rows``, a relation or an
    Arrow stream the caller already made from the query (say, through Mallard's planner),
    replaces running it."""
    if isinstance(rows, duckdb.DuckDBPyRelation):
        return rows
    if rows is not None:
        return duck.from_arrow(rows)
    try:
        statements = duck.extract_statements(query_sql)
    except duckdb.Error as e:
        raise translate(e) from e
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        kinds = ", ".join(s.type.name for s in statements) or "nothing"
        raise ProgrammingError(f"training needs one SELECT query for its rows, found {kinds}")
    try:
        return duck.sql(query_sql)
    except duckdb.Error as e:
        raise translate(e) from e


def settle(duck: duckdb.DuckDBPyConnection) -> None:
    """Leave no unfinished result on the connection before streaming a relation (DuckDB
    refuses to stream while one is open): catalog look-ups that read one row leave theirs.
    The statement owns the connection (its executor has detached its cursors, as
    ``Session.quiesce`` does), so what is discarded is finished work."""
    abort = getattr(duck, "abort", None)
    if abort is not None:
        abort()


def column_types(relation: duckdb.DuckDBPyRelation) -> dict[str, str]:
    """Column name -> DuckDB type name, in the query's order."""
    return {name: str(kind) for name, kind in zip(relation.columns, relation.types)}


def resolve_data(relation: duckdb.DuckDBPyRelation, options: TrainingOptions) -> DataSpec:
    """Check the query's columns against the options; ProgrammingError for a missing column,
    DataError for a column of the wrong type."""
    types = column_types(relation)
    described = ", ".join(types)
    probs = _optional_column(types, options.probs, "probs", described)
    weight = _optional_column(types, options.weight, "weight", described)
    label = options.label if options.label in types or probs is None or "label" in options.given else None
    if label is not None and label not in types:
        raise ProgrammingError(
            f"the training query has no label column {label}; its columns are {described} "
            "(name the label column with label = '<column>')"
        )
    label_type = _label_type(label, types[label]) if label is not None else None
    if probs is not None and not _is_numeric_list(types[probs]):
        raise DataError(f"probs column {probs} is {types[probs]}; expected a list of class probabilities (DOUBLE[])")
    if weight is not None and types[weight] not in _NUMBER and not types[weight].startswith("DECIMAL"):
        raise DataError(f"weight column {weight} is {types[weight]}; expected a number per row")
    key = _key(types, options.key, described)
    taken = {c for c in (label, probs, weight, key) if c is not None}
    return _inputs(types, options.inputs, taken, described, label, label_type, probs, weight, key)


def _optional_column(types: dict[str, str], name: str | None, role: str, described: str) -> str | None:
    if name is not None and name not in types:
        raise ProgrammingError(f"the training query has no {role} column {name}; its columns are {described}")
    return name


def _label_type(label: str, kind: str) -> str:
    if kind == "VARCHAR" or kind.startswith("ENUM"):
        return "text"
    if kind in _INTEGER:
        return "integer"
    raise DataError(
        f"label column {label} is {kind}; expected class names (VARCHAR) or class ids (an integer type)"
    )


def _key(types: dict[str, str], key: str | None, described: str) -> str | None:
    if key is not None:
        if key not in types:
            raise ProgrammingError(f"the training query has no key column {key}; its columns are {described}")
        return key
    return next((c for c in ("id", "frame_id") if c in types), None)


def _inputs(types: dict[str, str], inputs: tuple[str, ...] | None, taken: set[str], described: str,
            *roles: Any) -> DataSpec:
    if inputs is not None:
        for name in inputs:
            if name not in types:
                raise ProgrammingError(f"the training query has no input column {name}; its columns are {described}")
        candidates = list(inputs)
    else:
        candidates = [c for c in types if c not in taken]
    blobs = [c for c in candidates if types[c] == "BLOB"]
    if blobs:
        if len(blobs) > 1 or (inputs is not None and len(inputs) > 1):
            raise DataError(f"expected one image column or numeric columns as input, found {', '.join(candidates)}")
        missing = [c for c in ("height", "width") if c not in types]
        if missing:
            raise ProgrammingError(
                f"image column {blobs[0]} needs height and width columns (frames tables have them); "
                f"the query lacks {', '.join(missing)}"
            )
        return DataSpec("image", (blobs[0],), *roles)
    for name in candidates:
        if not (types[name] in _NUMBER or types[name].startswith("DECIMAL") or _is_numeric_list(types[name])):
            raise DataError(
                f"input column {name} is {types[name]}; inputs must be numbers, numeric lists, or one image BLOB "
                "(select only the columns to train on, or name them with inputs = [...])"
            )
    if not candidates:
        raise DataError(f"the training query has no input columns besides the label; its columns are {described}")
    lists = tuple(c for c in candidates if _is_numeric_list(types[c]))
    return dataclasses.replace(DataSpec("numeric", tuple(candidates), *roles), list_inputs=lists)


def _is_numeric_list(kind: str) -> bool:
    match = _LIST.match(kind)
    return match is not None and (match.group(1) in _NUMBER or match.group(1).startswith("DECIMAL"))


def query_tables(query_sql: str) -> list[str]:
    """Catalog names of the tables a query reads (empty when sqlglot cannot parse it).

    >>> query_tables("SELECT s.text, l.probs FROM sms s JOIN sms_labels l USING (id)")
    ['sms', 'sms_labels']
    """
    from engine.system_catalog import catalog_name

    try:
        tree = sqlglot.parse_one(query_sql, read="duckdb")
    except sqlglot.errors.SqlglotError:
        return []
    ctes = {c.alias_or_name for c in tree.find_all(exp.CTE)}
    names = [catalog_name(t) for t in tree.find_all(exp.Table) if t.name and t.name not in ctes]
    return list(dict.fromkeys(n[5:] if n.startswith("main.") else n for n in names))


@dataclass(frozen=True)
class LabelRun:
    """The LABEL run whose output a training query reads."""

    run_id: int
    target_table: str
    classes: tuple[str, ...]
    label_type: str


def find_label_run(duck: duckdb.DuckDBPyConnection, query_sql: str | None) -> LabelRun | None:
    """The latest LABEL run that wrote a table the query reads, or None."""
    tables = query_tables(query_sql) if query_sql else []
    if not tables:
        return None
    exists = duck.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'mallard' AND "
                          "table_name = 'label_runs' AND database_name = current_database()").fetchall()[0][0]
    if not exists:
        return None
    rows = duck.execute(
        "SELECT run_id, target_table, classes, label_type FROM mallard.label_runs WHERE list_contains(?, target_table)"
        " ORDER BY run_id DESC LIMIT 1", [tables],
    ).fetchall()
    return LabelRun(int(rows[0][0]), rows[0][1], tuple(rows[0][2]), rows[0][3]) if rows else None
