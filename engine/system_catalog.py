"""The catalog: Mallard's system tables in the ``mallard`` schema, created and migrated on connect.

Migrations are the files ``sql/NNN_<name>.sql``; each runs once, in order, and
``mallard.meta`` holds the number of the last one applied (``catalog_version``), so a
database file made by an older Mallard is brought up to date when a newer one opens it.
Macro files ``sql/macros/*.sql`` hold ``CREATE TEMP MACRO`` statements loaded into every
connection (never persisted, so each release's macros apply to any file).

>>> import engine
>>> con = engine.connect()
>>> con.execute("SELECT value FROM mallard.meta WHERE key = 'catalog_version'").fetchone()[0] == str(CATALOG_VERSION)
True
"""
from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
from sqlglot import exp

from engine.errors import OperationalError, ProgrammingError, translate

_MIGRATION = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


def sql_dir() -> Path:
    """The folder of Mallard's SQL files: inside the installed wheel, or the source tree's sql/."""
    packaged = Path(str(resources.files("engine"))) / "sql"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "sql"


def migrations() -> list[tuple[int, Path]]:
    """(number, path) of every migration file, in order."""
    found = []
    for path in sql_dir().iterdir():
        match = _MIGRATION.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


CATALOG_VERSION = migrations()[-1][0]


def catalog_version(duck: duckdb.DuckDBPyConnection) -> int:
    """The catalog version recorded in the database, 0 if it has no catalog yet."""
    exists = _first(duck.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'mallard' AND table_name = 'meta'"
        " AND database_name = current_database()"
    ).fetchone())
    if not exists:
        return 0
    row = duck.execute("SELECT value FROM mallard.meta WHERE key = 'catalog_version'").fetchone()
    return int(row[0]) if row else 0


def _first(row: tuple[Any, ...] | None) -> Any:
    return None if row is None else row[0]


def migrate(duck: duckdb.DuckDBPyConnection, read_only: bool = False) -> int:
    """Bring the catalog to :data:`CATALOG_VERSION` in one transaction; return the version.

    A catalog DuckDB cannot read (a system table replaced by something else) is an
    OperationalError saying so, never DuckDB's own exception."""
    try:
        version = catalog_version(duck)
    except duckdb.Error as e:
        raise OperationalError(
            f"this database's Mallard catalog (schema mallard) cannot be read: {translate(e)}; "
            "was a mallard.* table dropped or replaced outside Mallard?") from e
    if version > CATALOG_VERSION:
        raise OperationalError(
            f"this database's catalog is version {version}, newer than this Mallard understands "
            f"({CATALOG_VERSION}); upgrade Mallard to open it"
        )
    if version == CATALOG_VERSION:
        return version
    if read_only:
        raise OperationalError(
            f"this database's catalog is version {version} and needs migrating to {CATALOG_VERSION}; "
            "open it once without read_only"
        )
    pending = [(n, path) for n, path in migrations() if n > version]
    try:
        duck.execute("BEGIN")
        for _, path in pending:
            duck.execute(path.read_text())
        duck.execute(
            "INSERT OR REPLACE INTO mallard.meta VALUES ('catalog_version', ?)", [str(CATALOG_VERSION)]
        )
        if version == 0:
            duck.execute("INSERT OR REPLACE INTO mallard.meta VALUES ('created_at', CAST(current_timestamp AS VARCHAR))")
        duck.execute("COMMIT")
    except duckdb.Error as e:
        duck.execute("ROLLBACK")
        raise OperationalError(f"could not migrate the catalog to version {CATALOG_VERSION}: {translate(e)}") from e
    return CATALOG_VERSION


#: Tables named so were frames being loaded outside a transaction by Mallard before catalog
#: version 5 (LOAD VIDEO is one transaction now and never makes them).
STAGING_PREFIX = "__mallard_loading_"


def drop_abandoned_loads(duck: duckdb.DuckDBPyConnection) -> list[str]:
    """Drop what earlier work left behind; return the names of the tables dropped.

    - staging tables of a load killed under an older Mallard: no version of this code makes
      them, so none can belong to a load in progress;
    - stored video streams no frames table reads any more (the user dropped the table), and
      label storage no label view reads any more (:mod:`engine.labeling.storage`): only
      committed state is seen here, so a load in progress elsewhere, whose tables are
      uncommitted, is never touched.
    """
    from engine.labeling.storage import drop_orphans, orphaned_tokens, storage_tables
    from engine.video_stream.store import drop_stream, orphaned_streams, packets_table

    def run(sql: str, params: list) -> list:
        return duck.execute(sql, params).fetchall()

    rows = run("SELECT table_schema, table_name FROM information_schema.tables WHERE table_catalog = current_database()"
               " AND starts_with(table_name, ?)", [STAGING_PREFIX])
    orphans = orphaned_streams(run)
    labels = orphaned_tokens(run)
    if not rows and not orphans and not labels:
        return []
    try:
        duck.execute("BEGIN")
        for schema, name in rows:
            duck.execute(exp.Drop(tables=[exp.Table(this=exp.to_identifier(name), db=exp.to_identifier(schema))],
                                  kind="TABLE", exists=True).sql("duckdb"))
        for stream_id in orphans:
            drop_stream(lambda sql, params=None: duck.execute(sql, params) if params else duck.execute(sql), stream_id)
        labels = drop_orphans(run)
        duck.execute("COMMIT")
    except duckdb.TransactionException:
        duck.execute("ROLLBACK")  # another connection is writing the same rows: leave them for next time
        return []
    return ([name for _, name in rows] + [packets_table(s).name for s in orphans]
            + [t.name for token in labels for t in storage_tables(token)])


def load_macros(duck: duckdb.DuckDBPyConnection) -> None:
    """Create the temporary macros of ``sql/macros/*.sql`` in this connection."""
    folder = sql_dir() / "macros"
    if folder.is_dir():
        for path in sorted(folder.glob("*.sql")):
            duck.execute(path.read_text())


def catalog_name(table: exp.Table) -> str:
    """How a table is named in catalog rows: its parts joined by dots, unquoted parts
    lower-cased (DuckDB identifiers are case-insensitive)."""
    parts = [p for p in (table.args.get("catalog"), table.args.get("db"), table.this) if p is not None]
    return ".".join(p.name if p.args.get("quoted") else p.name.lower() for p in parts)


def require_user_table(table: exp.Table, statement: str) -> None:
    """Refuse a statement's target table inside the ``mallard`` schema (Mallard's catalog).

    >>> require_user_table(exp.to_table("mallard.meta"), "LOAD VIDEO")
    Traceback (most recent call last):
    ...
    engine.errors.ProgrammingError: LOAD VIDEO cannot write mallard.meta: the mallard schema holds Mallard's catalog; name a table in another schema
    """
    if (table.db or "").lower() == "mallard" or (not table.db and (table.catalog or "").lower() == "mallard"):
        raise ProgrammingError(f"{statement} cannot write {table.sql('duckdb')}: the mallard schema holds "
                               "Mallard's catalog; name a table in another schema")
