"""Facts about the table being labeled: its columns and the key that identifies its rows.

Rows need a key so labels, gold labels and the source can be joined: the ``key`` option
names a column; without it a column named ``id`` is used if the table has one, else
DuckDB's ``rowid`` (stable while the table is not rewritten).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlglot import exp

from engine.errors import DataError, ProgrammingError

if TYPE_CHECKING:
    from engine.session import Session


@dataclass(frozen=True)
class RowKey:
    """The key column of a labeled table: its name (as written in the label table) and type."""

    name: str
    type: str

    def column(self) -> exp.Expr:
        return quote_column(self.name)


def quote_column(name: str) -> exp.Column:
    return exp.column(exp.to_identifier(name, quoted=not name.isidentifier() or name.lower() != name))


def column_types(session: Session, table: exp.Table) -> dict[str, str]:
    """Column name -> DuckDB type, in table order."""
    rows = session.sql(exp.Describe(this=exp.select("*").from_(table.copy()))).fetchall()
    return {r[0]: r[1] for r in rows}


def column_names(session: Session, table: exp.Table) -> list[str]:
    return list(column_types(session, table))


def require_table(session: Session, table: exp.Table, what: str) -> None:
    if not session.table_exists(table):
        raise ProgrammingError(f"{what}: table {table.sql('duckdb')} does not exist")


def row_key(session: Session, table: exp.Table, key: str | None) -> RowKey:
    """The key column to use: ``key`` if given, else ``id`` if present, else ``rowid``."""
    types = column_types(session, table)
    by_lower = {name.lower(): name for name in types}
    if key is not None:
        if key.lower() == "rowid" and "rowid" not in by_lower and _has_rowid(session, table):
            return RowKey("rowid", "BIGINT")
        if key.lower() not in by_lower:
            raise ProgrammingError(
                f"key column {key} is not a column of {table.sql('duckdb')} (its columns: {', '.join(types)})"
            )
        name = by_lower[key.lower()]
        return RowKey(name, types[name])
    if "id" in by_lower:
        return RowKey(by_lower["id"], types[by_lower["id"]])
    if not _has_rowid(session, table):
        raise ProgrammingError(
            f"{table.sql('duckdb')} has no column named id and no rowid (it is a view); name its key column "
            f"with WITH (key = ...) (its columns: {', '.join(types)})"
        )
    return RowKey("rowid", "BIGINT")


def _has_rowid(session: Session, table: exp.Table) -> bool:
    """Base tables have DuckDB's rowid; views do not."""
    try:
        session.sql(exp.select("rowid").from_(table.copy()).limit(0))
    except ProgrammingError:
        return False
    return True


#: Bytes of DuckDB memory a distinct key may take when the key check counts them in one pass
#: (its hash table, resizes included: DuckDB fails rather than spill a COUNT DISTINCT).
BYTES_PER_KEY = 64

_UNITS = {"bytes": 1, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "kb": 10**3, "mb": 10**6, "gb": 10**9,
          "tb": 10**12}


def memory_limit_bytes(session: Session) -> int:
    """DuckDB's ``memory_limit`` in force, in bytes (it reads like ``'1.8 GiB'``)."""
    text = str(session.scalar("SELECT current_setting('memory_limit')")).strip().lower()
    match = re.fullmatch(r"([0-9.]+)\s*([a-z]+)", text)
    if match is None or match.group(2) not in _UNITS:
        return 2**62  # no limit (or one we cannot read): count in one pass
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def key_passes(n_rows: int, memory_bytes: int) -> int:
    """How many hash partitions the key check counts distinct keys in, one pass each, so that
    one pass's keys take at most half of DuckDB's memory (3M keys need 122 to 244 MB).

    >>> key_passes(1_000_000, 2 * 2**30), key_passes(100_000_000, 2 * 2**30)
    (1, 6)
    """
    per_pass = max(memory_bytes // (2 * BYTES_PER_KEY), 100_000)
    return max(1, -(-n_rows // per_pass))


def check_unique_key(session: Session, table: exp.Table, key: RowKey) -> int:
    """The table's row count, after checking that the key is never NULL and never repeats.

    Past a few million rows the distinct keys are counted in hash partitions of the key, a
    pass each (:func:`key_passes`), so the check fits in DuckDB's ``memory_limit``."""
    column = key.column()
    declared = key.name == "rowid" or _declared_unique(session, table, key.name)
    rows, non_null = session.row(exp.select(exp.Count(this=exp.Star()), exp.Count(this=column.copy())).from_(table.copy()))
    if non_null < rows:
        raise DataError(f"key column {key.name} of {table.sql('duckdb')} has NULLs; each row needs a key (WITH (key = ...))")
    distinct = rows if declared else _distinct_keys(session, table, column, key_passes(rows, memory_limit_bytes(session)))
    if distinct < rows:
        dup = session.scalar(
            exp.select(column.copy()).from_(table.copy()).group_by(column.copy())
            .having(exp.Count(this=exp.Star()) > 1).limit(1)
        )
        raise DataError(
            f"key column {key.name} of {table.sql('duckdb')} is not unique ({dup!r} appears more than once); "
            "choose a unique column with WITH (key = ...)"
        )
    return int(rows)


def _distinct_keys(session: Session, table: exp.Table, column: exp.Expr, passes: int) -> int:
    count = exp.Count(this=exp.Distinct(expressions=[column.copy()]))
    if passes == 1:
        return int(session.scalar(exp.select(count).from_(table.copy())))
    part = exp.Mod(this=exp.Anonymous(this="hash", expressions=[column.copy()]), expression=exp.Literal.number(passes))
    return sum(int(session.scalar(exp.select(count.copy()).from_(table.copy()).where(exp.EQ(this=part.copy(),
                                                                                        expression=exp.Literal.number(i)))))
               for i in range(passes))


def _declared_unique(session: Session, table: exp.Table, column: str) -> bool:
    """Whether ``column`` alone carries a PRIMARY KEY or UNIQUE constraint (so DuckDB keeps it unique)."""
    rows = session.sql(
        "SELECT constraint_column_names FROM duckdb_constraints() WHERE constraint_type IN ('PRIMARY KEY', 'UNIQUE')"
        " AND lower(table_name) = lower(?) AND lower(schema_name) = lower(coalesce(?, current_schema()))"
        " AND database_name = coalesce(?, current_database())",
        [table.name, table.db or None, table.catalog or None],
    ).fetchall()
    return any(len(names) == 1 and names[0].lower() == column.lower() for (names,) in rows)
