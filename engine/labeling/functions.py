"""Labeling functions: SQL ones in the catalog, Python ones from the decorator's registry.

``resolve`` turns the names of a ``LABEL`` or ``ANALYZE`` statement into
:class:`LabelingFunction` objects and checks them against the table they will run over.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlglot import exp

from engine.errors import ProgrammingError
from engine.extensions import PythonLabelingFunction
from engine.extensions import session_labeling_functions as python_labeling_functions
from engine.labeling.table import column_names
from engine.system_catalog import catalog_name

if TYPE_CHECKING:
    from engine.session import Session


@dataclass(frozen=True)
class LabelingFunction:
    """One labeling function as a run uses it: its name, kind and definition."""

    name: str
    kind: str  # 'sql' or 'python'
    table: str  # the table it was written for
    definition: str
    expression: exp.Expr | None = None  # SQL functions
    python: PythonLabelingFunction | None = None  # Python functions

    def columns(self) -> list[str]:
        """The columns it reads from the labeled table (outside any subquery of its own)."""
        if self.python is not None:
            return list(self.python.columns)
        assert self.expression is not None
        return sorted({c.name for c in self.expression.find_all(exp.Column)
                       if not c.table and c.find_ancestor(exp.Subquery, exp.Select) is None})


def lf_name(identifier: exp.Identifier) -> str:
    """How a labeling function's name is stored: lower-case unless quoted."""
    return identifier.name if identifier.args.get("quoted") else identifier.name.lower()


def sql_function(session: Session, name: str) -> LabelingFunction | None:
    row = session.sql(
        "SELECT name, table_name, definition FROM mallard.labeling_functions WHERE name = ?", [name]
    ).fetchone()
    if row is None:
        return None
    return LabelingFunction(row[0], "sql", row[1], row[2], expression=parse_definition(row[2]))


def parse_definition(definition: str) -> exp.Expr:
    """The stored SQL of a labeling function, parsed back (DuckDB SQL)."""
    import sqlglot

    return sqlglot.parse_one(definition, read="duckdb")


def resolve(session: Session, names: Iterable[exp.Identifier]) -> list[LabelingFunction]:
    """The labeling functions named, in order; unknown, ambiguous or repeated names are errors."""
    python = python_labeling_functions(session)
    wanted = [lf_name(identifier) for identifier in names]
    rows = session.sql("SELECT name, table_name, definition FROM mallard.labeling_functions WHERE list_contains(?, name)",
                       [wanted]).fetchall()  # one query for all of them
    stored = {row[0]: row for row in rows}
    found: list[LabelingFunction] = []
    for name in wanted:
        if any(lf.name == name for lf in found):
            raise ProgrammingError(f"labeling function {name} is listed twice")
        row = stored.get(name)
        sql_lf = None if row is None else LabelingFunction(row[0], "sql", row[1], row[2], expression=parse_definition(row[2]))
        py_lf = python.get(name)
        if sql_lf is not None and py_lf is not None:
            raise ProgrammingError(
                f"labeling function {name} is both a SQL function (CREATE LABELING FUNCTION) and a Python one "
                "(@labeling_function); drop or rename one of them"
            )
        if sql_lf is not None:
            found.append(sql_lf)
        elif py_lf is not None:
            found.append(LabelingFunction(name, "python", py_lf.on, py_lf.definition, python=py_lf))
        else:
            raise ProgrammingError(f"unknown labeling function {name}; known: {', '.join(known_names(session)) or 'none'}")
    return found


def known_names(session: Session) -> list[str]:
    rows = session.sql("SELECT name FROM mallard.labeling_functions").fetchall()
    return sorted({r[0] for r in rows} | set(python_labeling_functions(session)))


def check_columns(session: Session, lfs: list[LabelingFunction], table: exp.Table) -> None:
    """Each function's columns exist in ``table`` (else an error naming the function and column)."""
    have = column_names(session, table)
    lowered = {c.lower() for c in have}
    for lf in lfs:
        for column in lf.columns():
            if column.lower() not in lowered:
                raise ProgrammingError(
                    f"labeling function {lf.name} reads column {column}, which {table.sql('duckdb')} does not have "
                    f"(its columns: {', '.join(have)})"
                )


def check_sql_expression(session: Session, name: str, expression: exp.Expr, table: exp.Table) -> None:
    """Bind the expression over the table without reading it: errors name the function."""
    probe = exp.select(exp.cast(expression.copy(), "VARCHAR")).from_(table.copy()).limit(0)
    try:
        session.sql(probe)
    except ProgrammingError as e:
        raise ProgrammingError(f"labeling function {name} does not run over {table.sql('duckdb')}: {e}") from e


def create_sql_function(session: Session, identifier: exp.Identifier, table: exp.Table, expression: exp.Expr,
                        replace: bool) -> str:
    """Check and store ``CREATE [OR REPLACE] LABELING FUNCTION``; returns the stored name."""
    name = lf_name(identifier)
    if not session.table_exists(table):
        raise ProgrammingError(f"labeling function {name}: table {table.sql('duckdb')} does not exist")
    if name in python_labeling_functions(session):
        raise ProgrammingError(f"labeling function {name} is already a Python labeling function; pick another name")
    exists = sql_function(session, name) is not None
    if exists and not replace:
        raise ProgrammingError(
            f"labeling function {name} already exists; use CREATE OR REPLACE LABELING FUNCTION to replace it"
        )
    if _has_bare_aggregate(expression):
        raise ProgrammingError(f"labeling function {name}: expected a per-row expression, found an aggregate")
    lf = LabelingFunction(name, "sql", catalog_name(table), expression.sql("duckdb"), expression=expression)
    check_columns(session, [lf], table)
    check_sql_expression(session, name, expression, table)
    with session.atomic():
        session.sql("DELETE FROM mallard.labeling_functions WHERE name = ?", [name])
        session.sql(
            "INSERT INTO mallard.labeling_functions (name, table_name, kind, definition) VALUES (?, ?, 'sql', ?)",
            [name, lf.table, lf.definition],
        )
    return name


def _has_bare_aggregate(expression: exp.Expr) -> bool:
    """An aggregate outside any window or subquery (``count(*)`` alone is not per row).

    >>> import sqlglot
    >>> [_has_bare_aggregate(sqlglot.parse_one(e)) for e in ("avg(x)", "avg(x) OVER ()", "x > (SELECT avg(x) FROM t)")]
    [True, False, False]
    """
    return any(agg.find_ancestor(exp.Window, exp.Select, exp.Subquery) is None for agg in expression.find_all(exp.AggFunc))


def drop_function(session: Session, identifier: exp.Identifier, if_exists: bool) -> bool:
    """``DROP LABELING FUNCTION``; True when one was dropped."""
    name = lf_name(identifier)
    if sql_function(session, name) is None:
        if name in python_labeling_functions(session):
            raise ProgrammingError(
                f"labeling function {name} is a Python function (@labeling_function); it is not in the catalog"
            )
        if if_exists:
            return False
        raise ProgrammingError(f"labeling function {name} does not exist")
    with session.atomic():
        session.sql("DELETE FROM mallard.labeling_functions WHERE name = ?", [name])
    return True


def listing(session: Session, table: exp.Table | None) -> list[tuple[str, str, str, str]]:
    """(name, table, kind, definition) of every labeling function, optionally only those ON ``table``."""
    rows = [tuple(r) for r in session.sql(
        "SELECT name, table_name, kind, definition FROM mallard.labeling_functions ORDER BY name"
    ).fetchall()]
    rows += [(lf.name, lf.on, "python", lf.definition) for lf in python_labeling_functions(session).values()]
    if table is not None:
        wanted = catalog_name(table)
        rows = [r for r in rows if r[1] == wanted]
    return sorted(rows)
