"""The label matrix: every labeling function applied to every row in ONE DuckDB query.

Each row's votes are packed into vote codes (``c0``, ``c1``, ... BIGINT; each labeling
function takes a few bits: 0 abstains, ``i + 1`` votes class ``i``) and stored in a
temporary table ``(key, c0, ..., gold)``.  The label model reads the matrix as its
distinct vote patterns with their counts (``GROUP BY c0, ...`` in SQL): at 1M rows x 10
functions there are only tens of thousands.  Predictions are made per pattern and joined
back to the rows in SQL.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from sqlglot import exp

from engine.errors import DataError, Error
from engine.labeling.classes import LabelClasses
from engine.labeling.table import RowKey

#: Marks errors raised by the vote query itself (a vote outside the classes).
VOTE_ERROR = "mallard-labeling:"


@dataclass(frozen=True)
class CodeLayout:
    """How ``m`` votes of ``k`` classes pack into BIGINT code columns.

    >>> layout = CodeLayout(m=40, k=3)
    >>> layout.bits, [len(c) for c in layout.columns]
    (2, [31, 9])
    """

    m: int
    k: int

    @property
    def bits(self) -> int:
        return max(1, math.ceil(math.log2(self.k + 1)))

    @property
    def columns(self) -> list[list[int]]:
        """The labeling-function positions held by each code column."""
        per = 62 // self.bits
        return [list(range(s, min(self.m, s + per))) for s in range(0, self.m, per)]

    @property
    def names(self) -> list[str]:
        return [f"c{i}" for i in range(len(self.columns))]

    def code_expressions(self, votes: Sequence[exp.Expression]) -> list[exp.Expression]:
        """One BIGINT expression per code column: the sum of ``vote << shift``."""
        out = []
        for positions, name in zip(self.columns, self.names):
            terms = [exp.BitwiseLeftShift(this=exp.cast(votes[j], "BIGINT"), expression=exp.Literal.number(self.bits * i))
                     for i, j in enumerate(positions)]
            total = terms[0]
            for term in terms[1:]:
                total = exp.Add(this=total, expression=term)
            out.append(exp.alias_(total, name))
        return out

    def decode(self, codes: Sequence[np.ndarray]) -> np.ndarray:
        """The votes (patterns x m, int8: 0 abstain, i + 1 class i) of the code columns."""
        n = len(codes[0]) if codes else 0
        votes = np.empty((n, self.m), dtype=np.int8)
        mask = (1 << self.bits) - 1
        for positions, column in zip(self.columns, codes):
            column = column.astype(np.int64, copy=False)
            for i, j in enumerate(positions):
                votes[:, j] = (column >> (self.bits * i)) & mask
        return votes


@dataclass
class VotePatterns:
    """Distinct vote patterns: ``votes`` (P x m, 0 abstain, i + 1 class i) and their ``counts``.

    ``codes`` are the patterns' code columns, to join predictions back to the rows;
    ``gold`` (gold patterns only) is the gold class code of each pattern.
    """

    votes: np.ndarray
    counts: np.ndarray
    codes: dict[str, np.ndarray] = field(default_factory=dict)
    gold: np.ndarray | None = None

    @property
    def n_rows(self) -> int:
        return int(self.counts.sum())

    @classmethod
    def from_rows(cls, votes: np.ndarray) -> "VotePatterns":
        """Patterns of a dense label matrix (rows x m, 0 abstain) - for tests and Python callers.

        >>> VotePatterns.from_rows(np.array([[1, 0], [1, 0], [2, 1]])).counts.tolist()
        [2, 1]
        """
        unique, counts = np.unique(np.asarray(votes, dtype=np.int8), axis=0, return_counts=True)
        return cls(unique, counts.astype(np.int64))


def vote_code(raw: exp.Expression, classes: LabelClasses, lf: str, key: exp.Expression,
              numeric: bool) -> exp.Expression:
    """``CASE`` mapping a labeling function's raw vote to its code; other values raise, naming the
    function, the value and the row."""
    ifs = [exp.If(this=exp.Is(this=raw.copy(), expression=exp.Null()), true=exp.Literal.number(0))]
    for code, (value, text) in enumerate(zip(classes.values, classes.texts), start=1):
        literal = exp.Literal.number(value) if numeric else exp.Literal.string(text)
        ifs.append(exp.If(this=exp.EQ(this=raw.copy(), expression=literal), true=exp.Literal.number(code)))
    message = exp.Concat(expressions=[
        exp.Literal.string(f"{VOTE_ERROR}labeling function {lf} voted "),
        exp.cast(raw.copy(), "VARCHAR"),
        exp.Literal.string(" on the row with key "),
        exp.cast(key.copy(), "VARCHAR"),
        exp.Literal.string(f", which is not one of the classes {list(classes.values)!r} (return NULL/None to abstain)"),
    ])
    return exp.Case(ifs=ifs, default=exp.Anonymous(this="error", expressions=[message]))


def translate_vote_error(error: Error) -> Error:
    """A vote-query error raised by :func:`vote_code` as a clean DataError; others unchanged."""
    text = str(error)
    if VOTE_ERROR not in text:
        return error
    return DataError(text.split(VOTE_ERROR, 1)[1].strip())


@dataclass
class LabelMatrix:
    """A label matrix materialized in a temporary table of this session."""

    session: Any
    table: str
    layout: CodeLayout
    n_rows: int
    has_gold: bool

    def ref(self) -> exp.Table:
        return exp.to_table(self.table)

    def patterns(self) -> VotePatterns:
        """Distinct vote patterns over all rows, with counts (one GROUP BY in DuckDB)."""
        names = self.layout.names
        query = exp.select(*names, exp.alias_(exp.Count(this=exp.Star()), "n")).from_(self.ref()).group_by(*names)
        data = self.session.sql(query).fetchnumpy()
        codes = [np.asarray(data[name], dtype=np.int64) for name in names]
        order = np.lexsort(codes[::-1])  # a canonical order: DuckDB's GROUP BY order varies between runs
        codes = [c[order] for c in codes]
        return VotePatterns(self.layout.decode(codes), np.asarray(data["n"], dtype=np.int64)[order],
                            dict(zip(names, codes)))

    def gold_patterns(self) -> VotePatterns | None:
        """Vote patterns of the rows with a gold label, with the gold class code."""
        if not self.has_gold:
            return None
        names = self.layout.names
        query = (exp.select(*names, "gold", exp.alias_(exp.Count(this=exp.Star()), "n")).from_(self.ref())
                 .where(exp.Not(this=exp.Is(this=exp.column("gold"), expression=exp.Null())))
                 .group_by(*names, "gold"))
        data = self.session.sql(query).fetchnumpy()
        codes = [np.asarray(data[name], dtype=np.int64) for name in names]
        return VotePatterns(self.layout.decode(codes), np.asarray(data["n"], dtype=np.int64),
                            gold=np.asarray(data["gold"], dtype=np.int8))

    def drop(self) -> None:
        self.session.sql(exp.Drop(tables=[self.ref()], kind="TABLE", exists=True))


def build_label_matrix(session: Any, source: exp.Table, key: RowKey, raw_votes: list[exp.Expression],
                       vote_codes: list[exp.Expression], gold: exp.Expression | None, name: str,
                       layout: CodeLayout, n_rows: int) -> LabelMatrix:
    """Run the labeling functions over ``source`` in one query into the temporary table ``name``.

    ``raw_votes[j]`` is function j's expression over the source's columns; ``vote_codes[j]``
    maps the column ``r{j}`` (its raw vote) to a code.  ``gold`` is a subquery
    ``(row_key, code)`` of the table's gold labels, or None.
    """
    inner = exp.select(exp.alias_(key.column(), "__key"), *[exp.alias_(e, f"r{j}") for j, e in enumerate(raw_votes)])
    inner = inner.from_(source.copy())
    outer = exp.select(exp.alias_(exp.column("__key", "s"), "key"), *layout.code_expressions(vote_codes))
    if gold is not None:
        outer = outer.select(exp.alias_(exp.column("code", "g"), "gold"))
    outer = outer.from_(exp.alias_(exp.Subquery(this=inner), "s"))
    if gold is not None:
        on = exp.EQ(this=exp.cast(exp.column("__key", "s"), "VARCHAR"), expression=exp.column("row_key", "g"))
        outer = outer.join(exp.alias_(gold, "g"), on=on, join_type="LEFT")
    create = exp.Create(this=exp.to_table(name), kind="TABLE", expression=outer,
                        properties=exp.Properties(expressions=[exp.TemporaryProperty()]))
    try:
        session.sql(create)
    except Error as e:
        raise translate_vote_error(e) from e
    return LabelMatrix(session, name, layout, n_rows, gold is not None)
