"""Data schema versions in the catalog (``mallard.schemas``): every version is kept.

>>> import engine
>>> from engine.validation.schema import Schema
>>> con = engine.connect(autocommit=True)
>>> session = con.session
>>> save_schema(session, "s", Schema(), statement="example"), save_schema(session, "s", Schema(), statement="again")
(1, 2)
>>> load_schema(session, "s")[0]
2
"""
from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from engine.errors import ProgrammingError
from engine.validation.schema import Schema

if TYPE_CHECKING:
    from engine.session import Session


def schema_versions(session: Session, name: str) -> list[int]:
    rows = session.sql("SELECT version FROM mallard.schemas WHERE name = ? ORDER BY version", [name]).fetchall()
    return [r[0] for r in rows]


def load_schema(session: Session, name: str, version: int | None = None) -> tuple[int, Schema]:
    """(version, schema) of the latest version, or of ``version``; ProgrammingError if none."""
    versions = schema_versions(session, name)
    if not versions:
        known = [r[0] for r in session.sql("SELECT DISTINCT name FROM mallard.schemas ORDER BY name").fetchall()]
        listing = ", ".join(known) if known else "none yet (INFER SCHEMA <name> FROM <table> makes one)"
        raise ProgrammingError(f"expected a data schema named {name!r}; known schemas: {listing}")
    if version is None:
        version = versions[-1]
    elif version not in versions:
        raise ProgrammingError(f"schema {name!r} has no version {version}; its versions are "
                               f"{', '.join(map(str, versions))}")
    body = session.scalar("SELECT body FROM mallard.schemas WHERE name = ? AND version = ?", [name, version])
    return version, Schema.from_dict(json.loads(body))


def save_schema(session: Session, name: str, schema: Schema, *, statement: str, source: str | None = None) -> int:
    """Store ``schema`` as the next version of ``name``; return that version number."""
    version = session.scalar("SELECT coalesce(max(version), 0) + 1 FROM mallard.schemas WHERE name = ?",
                          [name])
    session.sql("INSERT INTO mallard.schemas (name, version, statement, source, body) VALUES (?, ?, ?, ?, ?)",
                [name, version, statement, source, schema_json(schema)])
    return version


def schema_json(schema: Schema) -> str:
    """The schema as an indented JSON document (standard JSON: a statistic that overflowed to
    infinity or NaN, such as the mean of doubles near 1e308, is stored as unknown, null)."""
    return json.dumps(_finite(schema.to_dict()), indent=2, allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
