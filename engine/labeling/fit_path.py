"""Which input the label model reads: the pattern table or the rows themselves.

- ``patterns``: the distinct vote patterns with their counts (a GROUP BY in DuckDB), the
  predictions joined back to the rows in SQL.  Small whenever the functions are few: 10
  functions over 2 classes have at most 3^10 = 59,049 patterns, whatever the row count, so
  100M rows cost DuckDB one spillable GROUP BY and one join, and Python a few MB.
- ``rows``: each row as its own pattern (:mod:`engine.labeling.per_row`), when nearly every
  row has a pattern of its own (30 functions): no GROUP BY, no sort, no join.

``fit_on = 'auto'`` (the LABEL option; ``'patterns'`` or ``'rows'`` force one) takes the
patterns when they are bounded well below the rows ((k + 1)^m at most half the rows: no
query needed), else asks DuckDB for an estimate of the distinct patterns
(``approx_count_distinct`` over the packed code columns: one quick pass over the label
matrix) and takes the rows when the estimate exceeds :data:`ROWS_SHARE` of the rows.

>>> choose_fit_path("auto", n_rows=1_000_000, m=10, k=2, estimate=lambda: 1 / 0)   # 3^10 patterns at most
FitPath(path='patterns', estimated_patterns=None)
>>> choose_fit_path("auto", n_rows=1_000_000, m=30, k=2, estimate=lambda: 998_000)
FitPath(path='rows', estimated_patterns=998000)
>>> choose_fit_path("auto", n_rows=1_000_000, m=10, k=3, estimate=lambda: 122_000)
FitPath(path='patterns', estimated_patterns=122000)
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlglot import exp

if TYPE_CHECKING:
    from engine.labeling.matrix import LabelMatrix

PATTERNS = "patterns"
ROWS = "rows"
#: The values of the ``fit_on`` option.
FIT_ON = ("auto", PATTERNS, ROWS)

#: Fit per row when the estimated distinct patterns exceed this share of the rows.
ROWS_SHARE = 0.5


@dataclass(frozen=True)
class FitPath:
    """The chosen path and the estimate of distinct patterns it was chosen on (None: not asked)."""

    path: str
    estimated_patterns: int | None = None


def choose_fit_path(requested: str, n_rows: int, m: int, k: int, estimate: Callable[[], int]) -> FitPath:
    """The path for ``requested`` (``'auto'``, ``'patterns'`` or ``'rows'``); ``estimate()``
    (the distinct patterns, approximately) is called only when the bound does not decide."""
    if requested in (PATTERNS, ROWS):
        return FitPath(requested)
    if float(k + 1) ** m <= ROWS_SHARE * n_rows:
        return FitPath(PATTERNS)
    estimated = int(estimate())
    return FitPath(ROWS if estimated > ROWS_SHARE * n_rows else PATTERNS, estimated)


def estimate_patterns(matrix: LabelMatrix) -> int:
    """DuckDB's HyperLogLog estimate of the distinct vote patterns in the label matrix (a few
    percent off either way; at most the row count)."""
    columns = [exp.column(name) for name in matrix.layout.names]
    value = columns[0] if len(columns) == 1 else exp.Anonymous(this="hash", expressions=columns)
    query = exp.select(exp.Anonymous(this="approx_count_distinct", expressions=[value])).from_(matrix.ref())
    return min(int(matrix.session.scalar(query) or 0), matrix.n_rows)
