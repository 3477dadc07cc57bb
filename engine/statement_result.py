"""The one shape every extended statement's executor returns.

``rows`` is a DuckDB relation (rows SQL computes, read lazily), an Arrow table or record
batch reader (rows computed in Python), or None (a statement without a result set);
``rowcount`` counts the rows a statement affected (-1 when that means nothing); ``message``
is the one-line summary the shell prints.  The session opens ``rows`` on the DuckDB
connection for the cursor, and releases them when the statement ends.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

import duckdb
import pyarrow as pa

Rows: TypeAlias = duckdb.DuckDBPyRelation | pa.Table | pa.RecordBatchReader


@dataclass(frozen=True)
class StatementResult:
    """What an executor hands back; see the module docstring."""

    rows: Rows | None = None
    rowcount: int = -1
    message: str | None = None
