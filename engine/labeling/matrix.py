"""The label matrix: every labeling function applied to every row in ONE DuckDB query.

Each row's votes (0 abstains, ``i + 1`` votes class i) are packed into BIGINT code columns
(``c0``, ...: 12-bit group codes, five to a column, see :mod:`engine.labeling.patterns`) and
stored in a table ``(key, c0, ..., gold)`` (temporary, or kept as the rows of a label view,
:mod:`engine.labeling.storage`).  The label model reads the matrix as
its distinct vote patterns with their counts (``GROUP BY c0, ...`` in SQL): at 1M rows x 10
functions there are only tens of thousands.  Predictions are made per pattern and joined
back to the rows in SQL.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from sqlglot import exp

from engine.errors import DataError, Error
from engine.labeling.classes import LabelClasses
from engine.labeling.patterns import GROUP_BITS, VoteGroups, VotePatterns
from engine.labeling.table import RowKey

if TYPE_CHECKING:
    from engine.session import Session

#: Marks errors raised by the vote query itself (a vote outside the classes).
VOTE_ERROR = "mallard-labeling:"

#: Group codes (12 bits each) packed into one BIGINT column.
GROUPS_PER_COLUMN = 5


@dataclass(frozen=True)
class CodeLayout:
    """How the 12-bit group codes of ``m`` votes over ``k`` classes pack into BIGINT columns
    (five groups a column: 30 functions a column for k <= 3).

    >>> layout = CodeLayout(m=40, k=3)
    >>> layout.groups.bits, layout.groups.size, [len(c) for c in layout.columns]
    (2, 6, [5, 2])
    """

    m: int
    k: int

    @property
    def groups(self) -> VoteGroups:
        return VoteGroups(self.m, self.k)

    @property
    def columns(self) -> list[list[int]]:
        """The group numbers held by each code column."""
        count = len(self.groups.groups)
        return [list(range(s, min(count, s + GROUPS_PER_COLUMN))) for s in range(0, count, GROUPS_PER_COLUMN)]

    @property
    def names(self) -> list[str]:
        return [f"c{i}" for i in range(len(self.columns))]

    def code_expressions(self, votes: Sequence[exp.Expr]) -> list[exp.Expr]:
        """One BIGINT expression per code column: the sum of ``vote << shift``."""
        groups, bits = self.groups.groups, self.groups.bits
        out = []
        for column, name in zip(self.columns, self.names):
            terms = []
            for slot, g in enumerate(column):
                for i, j in enumerate(groups[g]):
                    terms.append(_shifted(votes[j], GROUP_BITS * slot + bits * i))
            total: exp.Expr = terms[0]
            for term in terms[1:]:
                total = exp.Add(this=total, expression=term)
            out.append(exp.alias_(total, name, copy=False))
        return out

    def group_codes(self, columns: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The per-group codes held in the packed code columns."""
        mask = (1 << GROUP_BITS) - 1
        out: list[np.ndarray] = []
        for column, values in zip(self.columns, columns):
            values = np.asarray(values, dtype=np.int64)
            out.extend(((values >> (GROUP_BITS * slot)) & mask).astype(np.intp) for slot in range(len(column)))
        return out


def _shifted(vote: exp.Expr, shift: int) -> exp.Expr:
    """``vote << shift`` as BIGINT; a :func:`vote_code` CASE gets its codes shifted in its
    literals instead, in place (a third less work for DuckDB per function and row than
    casting and shifting its result).

    >>> _shifted(exp.column("v"), 4).sql("duckdb")
    'CAST(v AS BIGINT) << 4'
    >>> _shifted(exp.case().when("v IS NULL", "0").when("v = 'x'", "1"), 4).sql("duckdb")
    "CASE WHEN v IS NULL THEN CAST(0 AS BIGINT) WHEN v = 'x' THEN CAST(16 AS BIGINT) END"
    """
    ifs = vote.args.get("ifs") or []
    if isinstance(vote, exp.Case) and ifs and all(isinstance(i.args.get("true"), exp.Literal) for i in ifs):
        for branch in ifs:  # in place: the CASE is the caller's, made for this query
            code = int(branch.args["true"].this)
            branch.set("true", exp.cast(exp.Literal.number(code << shift), "BIGINT"))
        return vote
    return exp.BitwiseLeftShift(this=exp.cast(vote, "BIGINT"), expression=exp.Literal.number(shift))


def ordered_patterns(layout: CodeLayout, columns: Sequence[np.ndarray], counts: np.ndarray) -> VotePatterns:
    """Distinct patterns (packed code columns, one entry per pattern) with their counts, in code
    order (the first column first), the order every fit reads them in.

    >>> layout = CodeLayout(m=2, k=2)
    >>> patterns = ordered_patterns(layout, [np.array([6, 1])], np.array([3, 5]))
    >>> patterns.votes.tolist(), patterns.counts.tolist()
    ([[1, 0], [2, 1]], [5, 3])
    """
    keys = [np.asarray(c, dtype=np.int64) for c in columns]
    order = np.argsort(keys[0]) if len(keys) == 1 else np.lexsort(keys[::-1])  # distinct: any sort agrees
    ordered = [key[order] for key in keys]
    return VotePatterns(layout.group_codes(ordered), np.asarray(counts, dtype=np.int64)[order], layout.groups,
                        join_codes=dict(zip(layout.names, ordered)))


def vote_code(raw: exp.Expr, classes: LabelClasses, lf: str, key: exp.Expr,
              numeric: bool) -> exp.Expr:
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
    """A label matrix materialized in a table: a temporary one of this session, or the stored
    rows table of a label view (:mod:`engine.labeling.storage`)."""

    session: Session
    table: str
    layout: CodeLayout
    n_rows: int
    has_gold: bool

    def ref(self) -> exp.Table:
        return exp.to_table(self.table)

    def patterns(self) -> VotePatterns:
        """Distinct vote patterns over all rows with their counts (one GROUP BY in DuckDB), in
        code order: DuckDB's grouping order varies between runs, and results must not."""
        names = self.layout.names
        query = exp.select(*names, exp.alias_(exp.Count(this=exp.Star()), "n")).from_(self.ref()).group_by(*names)
        data = self.session.sql(query).fetchnumpy()
        return ordered_patterns(self.layout, [np.asarray(data[name], dtype=np.int64) for name in names],
                                np.asarray(data["n"], dtype=np.int64))

    def gold_patterns(self) -> VotePatterns | None:
        """Vote patterns of the rows with a gold label, with the gold class code."""
        if not self.has_gold:
            return None
        names = self.layout.names
        query = (exp.select(*names, "gold", exp.alias_(exp.Count(this=exp.Star()), "n")).from_(self.ref())
                 .where(exp.Not(this=exp.Is(this=exp.column("gold"), expression=exp.Null())))
                 .group_by(*names, "gold").order_by(*names, "gold"))
        data = self.session.sql(query).fetchnumpy()
        columns = [np.asarray(data[name], dtype=np.int64) for name in names]
        return VotePatterns(self.layout.group_codes(columns), np.asarray(data["n"], dtype=np.int64),
                            self.layout.groups, gold=np.asarray(data["gold"], dtype=np.int8))

    def drop(self) -> None:
        self.session.sql(exp.Drop(tables=[self.ref()], kind="TABLE", exists=True))


def build_label_matrix(session: Session, source: exp.Table, key: RowKey, raw_votes: list[exp.Expr],
                       vote_codes: list[exp.Expr], gold: exp.Expr | None, name: str,
                       layout: CodeLayout, n_rows: int, joined: tuple[str, str] | None = None) -> LabelMatrix:
    """Run the labeling functions over ``source`` in one query into the table ``name``: a
    temporary one, or, named in a schema (``mallard.__label_rows_<token>``), a stored one that
    a label view keeps reading (:mod:`engine.labeling.storage`).

    ``raw_votes[j]`` is function j's expression over the source's columns; ``vote_codes[j]``
    maps the column ``r{j}`` (its raw vote) to a code.  ``gold`` is a subquery
    ``(row_key, code)`` of the table's gold labels, or None.  ``joined`` is (table, key
    column) of votes computed elsewhere (a cluster), joined to the source's rows by key.
    """
    key_ref: exp.Expr = key.column()
    if joined is not None:  # the source's key, qualified by the source's own name
        parts = {part: source.args[arg].copy() for part, arg in (("table", "this"), ("db", "db"), ("catalog", "catalog"))
                 if source.args.get(arg)}
        key_ref = exp.Column(this=key.column().this, **parts)
    inner = exp.select(exp.alias_(key_ref, "__key"), *[exp.alias_(e, f"r{j}") for j, e in enumerate(raw_votes)])
    inner = inner.from_(source.copy())
    if joined is not None:
        votes, votes_key = joined
        inner = inner.join(exp.to_table(votes), on=exp.EQ(this=key_ref.copy(), expression=exp.column(votes_key, votes)))
    # copy=False: the builders would otherwise copy every function's CASE at each step
    outer = exp.select(exp.alias_(exp.column("__key", "s"), "key"), *layout.code_expressions(vote_codes))
    if gold is not None:
        outer = outer.select(exp.alias_(exp.column("code", "g"), "gold"), copy=False)
    outer = outer.from_(exp.alias_(exp.Subquery(this=inner), "s"), copy=False)
    if gold is not None:
        on = exp.EQ(this=exp.cast(exp.column("__key", "s"), "VARCHAR"), expression=exp.column("row_key", "g"))
        outer = outer.join(exp.alias_(gold, "g"), on=on, join_type="LEFT", copy=False)
    table = exp.to_table(name)
    temporary = exp.Properties(expressions=[exp.TemporaryProperty()]) if not table.db else None
    create = exp.Create(this=table, kind="TABLE", expression=outer, properties=temporary)
    try:
        session.sql(create)
    except Error as e:
        raise translate_vote_error(e) from e
    return LabelMatrix(session, name, layout, n_rows, gold is not None)
