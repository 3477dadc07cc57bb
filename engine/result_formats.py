"""How a result prints as text: an aligned table, CSV, JSON, or an EXPLAIN plan printed whole.

The ``mallard`` shell (``.mode table|csv|json``) and ``mallard demo`` print through here.

>>> print(render("csv", ["n", "name"], [(1, "a,b"), (2, None)]))
n,name
1,"a,b"
2,
>>> print(render("json", ["n", "t"], [(1, datetime.date(2024, 3, 1))]))
[{"n": 1, "t": "2024-03-01"}]
"""
from __future__ import annotations

import csv
import datetime
import decimal
import io
import json
import math
import uuid
from collections.abc import Callable, Sequence
from typing import Any

#: Longest text a table cell shows before it is shortened.
MAX_WIDTH = 60
#: The columns of an EXPLAIN result (DuckDB's, and Mallard's inference plans).
EXPLAIN_COLUMNS = ["explain_key", "explain_value"]


def format_value(value: Any) -> str:
    """How a value prints in a result table (BLOBs by size, long text shortened).

    >>> format_value(b"abc"), format_value(0.1 + 0.2), format_value(None)
    ('<BLOB 3 bytes>', '0.3', 'NULL')
    """
    if value is None:
        return "NULL"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<BLOB {len(value)} bytes>"
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value)
    return text if len(text) <= MAX_WIDTH else text[: MAX_WIDTH - 1] + "…"


def format_table(names: Sequence[str], rows: Sequence[Sequence[Any]], total: int | None = None) -> str:
    """Rows as an aligned text table; numbers right-aligned; ``total`` counts rows not shown.

    >>> print(format_table(["n", "name"], [(1, "a"), (22, None)]))
    n  | name
    ---+-----
     1 | a
    22 | NULL
    (2 rows)
    """
    cells = [[format_value(v) for v in row] for row in rows]
    numeric = [all(isinstance(r[i], (int, float)) and not isinstance(r[i], bool) for r in rows if r[i] is not None)
               for i in range(len(names))]
    widths = [max([len(n)] + [len(c[i]) for c in cells]) for i, n in enumerate(names)]
    lines = [" | ".join(n.ljust(w) for n, w in zip(names, widths)).rstrip(),
             "-+-".join("-" * w for w in widths)]
    for row in cells:
        lines.append(" | ".join(c.rjust(w) if num else c.ljust(w)
                                for c, w, num in zip(row, widths, numeric)).rstrip())
    count = len(rows) if total is None else total
    more = f", {count - len(rows)} not shown" if count > len(rows) else ""
    lines.append(f"({count} row{'s' if count != 1 else ''}{more})")
    return "\n".join(lines)


def format_explain(rows: Sequence[Sequence[Any]]) -> str:
    r"""EXPLAIN output (DuckDB's, or Mallard's inference plans) printed whole, not as table cells.

    >>> print(format_explain([("physical_plan", "PROJECTION\n  SEQ_SCAN")]))
    -- physical_plan
    PROJECTION
      SEQ_SCAN
    """
    return "\n".join(f"-- {key}\n{value}" for key, value in rows)


def is_explain(names: Sequence[str]) -> bool:
    """Whether a result with these column names is an EXPLAIN plan."""
    return list(names) == EXPLAIN_COLUMNS


def _plain(value: Any) -> Any:
    """A value as JSON holds it: dates as ISO text, BLOBs as hex, NaN and infinity as null."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\\x" + bytes(value).hex()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (datetime.date, datetime.time, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, uuid.UUID, datetime.timedelta)):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def format_json(names: Sequence[str], rows: Sequence[Sequence[Any]], total: int | None = None) -> str:
    """Rows as a JSON array of objects, one per line (as DuckDB's ``.mode json`` writes them)."""
    objects = [json.dumps({n: _plain(v) for n, v in zip(names, row)}, ensure_ascii=False) for row in rows]
    return "[" + ",\n".join(objects) + "]"


def format_csv(names: Sequence[str], rows: Sequence[Sequence[Any]], total: int | None = None) -> str:
    """Rows as CSV with a header line (NULL is an empty field, BLOBs are hex)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(names)
    for row in rows:
        writer.writerow(["" if v is None else json.dumps(_plain(v)) if isinstance(v, (list, dict)) else _plain(v)
                         for v in row])
    return buffer.getvalue().rstrip("\n")


Formatter = Callable[[Sequence[str], Sequence[Sequence[Any]], "int | None"], str]

#: Output modes by name: the shell's ``.mode`` chooses one.
FORMATS: dict[str, Formatter] = {"table": format_table, "csv": format_csv, "json": format_json}


def render(mode: str, names: Sequence[str], rows: Sequence[Sequence[Any]], total: int | None = None) -> str:
    """Rows in output mode ``mode`` (a key of :data:`FORMATS`)."""
    return FORMATS[mode](names, rows, total)
