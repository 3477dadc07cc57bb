"""Data validation inside the database: TFDV's statistics, schemas, anomalies, drift and skew,
computed by SQL (``sql/macros/validation.sql``) over mergeable per-span statistics.

Modules, one idea each: :mod:`column_kinds` (types), :mod:`span_statistics` (one span's
scans), :mod:`statistics_store` and :mod:`schema_store` (the catalog), :mod:`sources`
(statistics or a table), :mod:`schema` and :mod:`properties` (the schema model and its
JSON), :mod:`schema_table` (a schema as rows), :mod:`inference`, :mod:`checks` (the anomaly
queries), :mod:`validation_run`, :mod:`schema_edits` (ALTER SCHEMA), :mod:`schema_update`
(UPDATE SCHEMA), :mod:`json_io`, :mod:`thresholds` (settings), :mod:`names` and
:mod:`sql_templates` (naming, writing SQL).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.connection import Connection


def export_schema(connection: Connection, name: str, version: int | None = None) -> str:
    """A data schema as JSON text (the latest version unless ``version``).

    >>> import engine, json
    >>> con = engine.connect(autocommit=True)
    >>> _ = con.execute("CREATE TABLE t AS SELECT range AS x FROM range(10)")
    >>> _ = con.execute("INFER SCHEMA s FROM t")
    >>> json.loads(export_schema(con, "s"))["feature"][0]["int_domain"]
    {'min': 0.0, 'max': 9.0}
    """
    from engine.validation.json_io import schema_document

    return schema_document(connection.session, name, version)


def import_schema(connection: Connection, name: str, text: str) -> int:
    """Store JSON text as the next version of data schema ``name``; returns the version.

    >>> import engine
    >>> con = engine.connect(autocommit=True)
    >>> import_schema(con, "s", '{"feature": [{"name": "x", "type": "INT", "int_domain": {"min": 0, "max": 9}}]}')
    1
    """
    from engine.validation.json_io import store_document

    return store_document(connection.session, name, text, origin="import_schema()", statement="import_schema()")
