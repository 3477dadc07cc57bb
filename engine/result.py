"""What an executor hands back to the cursor."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import pyarrow as pa


@dataclass
class Result:
    """The outcome of one statement.

    Exactly one of ``query`` (SQL whose rows DuckDB produces as the statement's result),
    ``arrow`` (rows computed in Python) or neither (no result set) is set.  ``message`` is a
    one-line summary the shell prints for statements without rows.
    """

    query: str | None = None
    params: Sequence[Any] | None = None
    arrow: pa.Table | None = None
    rowcount: int = -1
    message: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
