"""Data validation inside the database: TFDV's statistics, schemas, anomalies, drift and skew,
computed by SQL (``sql/macros/validation.sql``) over mergeable per-span statistics.

Modules, one idea each: :mod:`column_kinds` (types), :mod:`span_statistics` (one span's
scans), :mod:`statistics_store` and :mod:`schema_store` (the catalog), :mod:`sources`
(statistics or a table), :mod:`schema` and :mod:`properties` (the schema model and its
JSON), :mod:`schema_table` (a schema as rows), :mod:`inference`, :mod:`checks` (the anomaly
queries), :mod:`validation_run`, :mod:`schema_edits` (ALTER SCHEMA), :mod:`schema_update`
(UPDATE SCHEMA), :mod:`json_io`, :mod:`tfdv_schema` and :mod:`schema_formats` (files in
Mallard's JSON or TFDV's ``schema.pbtxt``), :mod:`thresholds` (settings), :mod:`names` and
:mod:`sql_templates` (naming, writing SQL).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.connection import Connection


def export_schema(connection: Connection, name: str, version: int | None = None, format: str = "json") -> str:
    """A data schema as text (the latest version unless ``version``): Mallard's JSON document,
    or with ``format="tfdv"`` TFDV's ``schema.pbtxt`` (what it cannot hold is left out; EXPORT
    SCHEMA lists it, as does :func:`engine.validation.tfdv_schema.schema_to_tfdv`).

    >>> import engine, json
    >>> con = engine.connect(autocommit=True)
    >>> _ = con.execute("CREATE TABLE t AS SELECT range AS x FROM range(10)")
    >>> _ = con.execute("INFER SCHEMA s FROM t")
    >>> json.loads(export_schema(con, "s"))["feature"][0]["int_domain"]
    {'min': 0.0, 'max': 9.0}
    >>> _ = con.execute("ALTER SCHEMA s ALTER COLUMN x SET (min = 0, max = 9)")  # confirm the inferred range
    >>> print(export_schema(con, "s", format="tfdv"))
    feature {
      name: "x"
      type: INT
      int_domain {
        min: 0
        max: 9
      }
      presence {
        min_fraction: 1.0
        min_count: 1
      }
    }
    <BLANKLINE>
    """
    from engine.validation.schema_formats import schema_text
    from engine.validation.schema_store import load_schema

    _check_format(format)
    return schema_text(load_schema(connection.session, name, version)[1], format)[0]


def import_schema(connection: Connection, name: str, text: str, format: str = "json") -> int:
    """Store text (Mallard's JSON document, or with ``format="tfdv"`` TFDV's ``schema.pbtxt``)
    as the next version of data schema ``name``; returns the version.

    >>> import engine
    >>> con = engine.connect(autocommit=True)
    >>> import_schema(con, "s", '{"feature": [{"name": "x", "type": "INT", "int_domain": {"min": 0, "max": 9}}]}')
    1
    >>> import_schema(con, "s", 'feature { name: "x" type: INT int_domain { min: 0 max: 9 } }', format="tfdv")
    2
    """
    from engine.validation.schema_formats import parse_schema
    from engine.validation.schema_store import save_schema

    _check_format(format)
    schema, _ = parse_schema(text, format, origin="import_schema()")
    connection.session.require_writable("importing a schema")
    with connection.session.atomic():
        return save_schema(connection.session, name, schema, statement="import_schema()", source="import_schema()")


def _check_format(format: str) -> None:
    from engine.errors import ProgrammingError
    from engine.validation.schema_formats import FORMATS

    if format not in FORMATS:
        raise ProgrammingError(f"expected a schema format among {', '.join(FORMATS)}, found {format!r}")
