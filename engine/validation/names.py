"""How validation statements name what they store: data schemas and statistics sets.

>>> from sqlglot import exp
>>> object_name(exp.to_identifier("Flights")), object_name(exp.to_identifier("Flights", quoted=True))
('flights', 'Flights')
"""
from __future__ import annotations

from sqlglot import exp


def object_name(identifier: exp.Identifier | None) -> str:
    """A catalog name as DuckDB compares identifiers: unquoted names lower-cased."""
    if identifier is None:
        raise ValueError("expected a name, found none")
    return identifier.name if identifier.args.get("quoted") else identifier.name.lower()
