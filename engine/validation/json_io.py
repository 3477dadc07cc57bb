"""Schemas to and from JSON files (EXPORT SCHEMA / IMPORT SCHEMA, and the Python functions
:func:`engine.validation.export_schema` / :func:`engine.validation.import_schema`).

The document is the one ``mallard.schemas.body`` holds (see :mod:`engine.validation.schema`);
an import is checked value by value and becomes a new version, so nothing is overwritten.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import DataError
from engine.user_files import read_text_file
from engine.validation.schema import Schema
from engine.validation.schema_store import load_schema, save_schema, schema_json

if TYPE_CHECKING:
    from engine.session import Session


def schema_document(session: Session, name: str, version: int | None = None) -> str:
    """The JSON text of a schema version (the latest by default)."""
    return schema_json(load_schema(session, name, version)[1])


def parse_document(text: str, origin: str) -> Schema:
    """A schema from JSON text; DataError saying where the text is wrong."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{origin}: expected a JSON schema document, found invalid JSON ({e})") from None
    except RecursionError:
        raise DataError(f"{origin}: expected a JSON schema document, found JSON nested too deeply") from None
    if not isinstance(document, dict):
        raise DataError(f"{origin}: expected a JSON object (a schema document), found {type(document).__name__}")
    return Schema.from_dict(document)


def write_document(path: str, text: str) -> None:
    try:
        Path(path).write_text(text + "\n", encoding="utf-8")
    except OSError as e:
        raise DataError(f"could not write the schema to {path}: {e.strerror}") from None


def read_document(path: str) -> str:
    return read_text_file(path, "schema file")


def store_document(session: Session, name: str, text: str, origin: str, statement: str) -> int:
    """Check ``text`` and store it as the next version of ``name``; return the version."""
    schema = parse_document(text, origin)
    session.require_writable("importing a schema")
    with session.atomic():
        return save_schema(session, name, schema, statement=statement, source=origin)
