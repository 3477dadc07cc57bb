"""The file formats of EXPORT SCHEMA and IMPORT SCHEMA: Mallard's JSON document, or TFDV's
``schema.pbtxt``; the ``format`` option chooses, else the file's extension does.

>>> file_format("flights/schema.pbtxt", None), file_format("s.json", None), file_format("s.pbtxt", "json")
('tfdv', 'json', 'json')
"""
from __future__ import annotations

from engine.validation.json_io import parse_document
from engine.validation.schema import Schema
from engine.validation.schema_store import schema_json
from engine.validation.tfdv_schema import Unmapped, schema_from_tfdv, schema_to_tfdv

FORMATS = ("json", "tfdv")
#: Extensions of TFDV's text protos (``tfdv.write_schema_text`` writes ``schema.pbtxt``).
TFDV_EXTENSIONS = (".pbtxt", ".textproto", ".prototxt", ".pb.txt")


def file_format(path: str, option: str | None) -> str:
    """The format to use: the option when given, else ``tfdv`` for a text-proto extension, else ``json``."""
    if option is not None:
        return option
    return "tfdv" if path.lower().endswith(TFDV_EXTENSIONS) else "json"


def schema_text(schema: Schema, fmt: str) -> tuple[str, list[Unmapped]]:
    """The file's text for ``schema`` in format ``fmt``, and what that format cannot hold."""
    if fmt == "tfdv":
        exported = schema_to_tfdv(schema)
        return exported.text, exported.unmapped
    return schema_json(schema), []


def parse_schema(text: str, fmt: str, origin: str) -> tuple[Schema, list[Unmapped]]:
    """A schema from a file's text in format ``fmt``, and what Mallard could not take from it."""
    from engine.validation.schema_edits import check_schema

    if fmt == "tfdv":
        imported = schema_from_tfdv(text, origin)
        schema, unmapped = imported.schema, imported.unmapped
    else:
        schema, unmapped = parse_document(text, origin), []
    check_schema(schema, origin)  # as ALTER SCHEMA checks what it sets: min <= max, ...
    return schema, unmapped
