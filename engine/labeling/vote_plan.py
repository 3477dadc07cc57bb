"""What the label-matrix query computes for a set of labeling functions over a table.

``VotePlan.prepare`` checks everything without writing (functions bind over the table,
classes are known, the key is unique) and ``VotePlan.apply`` runs the one query.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from engine.errors import Error, ProgrammingError
from engine.labeling import gold as gold_labels
from engine.labeling.classes import LabelClasses
from engine.labeling.functions import LabelingFunction, check_columns, check_sql_expression
from engine.labeling.matrix import CodeLayout, LabelMatrix, build_label_matrix, vote_code
from engine.labeling.pattern_counts import PatternCounts
from engine.labeling.patterns import VotePatterns
from engine.labeling.python_votes import PythonVotes
from engine.labeling.table import RowKey, check_unique_key, column_types, row_key

if TYPE_CHECKING:
    from engine.session import Session

_INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                  "UBIGINT", "UHUGEINT"}


@dataclass
class VotePlan:
    """The checked inputs of one label-matrix query."""

    session: Session
    source: exp.Table
    lfs: list[LabelingFunction]
    key: RowKey
    classes: LabelClasses
    n_rows: int
    has_gold: bool
    fault_tolerant: bool
    column_types: dict[str, str]
    sql_types: dict[str, str]  # SQL function name -> its result type
    python: dict[str, PythonVotes] = field(default_factory=dict)
    cluster_places: list[Any] = field(default_factory=list)  # where cluster tasks ran (engine.cluster)
    cluster_seconds: float = 0.0
    cluster_patterns: PatternCounts | None = None  # merged from the cluster's partitions (all Python functions)

    @classmethod
    def prepare(cls, session: Session, source: exp.Table, lfs: list[LabelingFunction], key_option: str | None,
                classes: LabelClasses | None, fault_tolerant: bool) -> VotePlan:
        check_columns(session, lfs, source)
        key = row_key(session, source, key_option)
        n_rows = check_unique_key(session, source, key)
        sql_types = _sql_result_types(session, source, [lf for lf in lfs if lf.kind == "sql"])
        has_gold = gold_labels.check_key(session, source, key)
        if classes is None:
            classes = _infer_classes(session, source, lfs, has_gold)
        plan = cls(session, source, lfs, key, classes, n_rows, has_gold, fault_tolerant,
                   column_types(session, source), sql_types)
        for lf in lfs:
            if lf.kind == "python":
                plan.python[lf.name] = PythonVotes(lf, classes, fault_tolerant, f"__mallard_lf_{lf.name}_{id(plan):x}")
        return plan

    @property
    def layout(self) -> CodeLayout:
        return CodeLayout(len(self.lfs), self.classes.k)

    def apply(self, name: str) -> LabelMatrix:
        """Run every function over the table in one query, into the table ``name`` (temporary
        unless named in a schema, :func:`~engine.labeling.matrix.build_label_matrix`).

        With a cluster set, the Python functions run there first (:mod:`engine.cluster.labeling`)
        and the query joins their votes by key instead of calling them."""
        from engine.cluster.labeling import cluster_votes

        remote = cluster_votes(self)
        if remote is None:
            return self._apply(name, None)
        votes_name = f"__mallard_cluster_votes_{id(self):x}"
        self.session.register(votes_name, remote.table)
        try:
            matrix = self._apply(name, votes_name)
        finally:
            self.session.unregister(votes_name)
        for lf_name, count in remote.failures.items():
            self.python[lf_name].failures = count
        self.cluster_places = remote.places
        self.cluster_seconds = remote.seconds
        self.cluster_patterns = remote.patterns
        return matrix

    def patterns(self, matrix: LabelMatrix) -> VotePatterns:
        """The distinct vote patterns the label model is fitted on: the counts the cluster's
        partitions returned, summed (every function a Python one), else counted over ``matrix``."""
        if self.cluster_patterns is not None:
            return self.cluster_patterns.patterns(self.layout)
        return matrix.patterns()

    def _apply(self, name: str, cluster_votes: str | None) -> LabelMatrix:
        from engine.cluster.labeling import REMOTE_KEY, vote_column

        key_in_s = exp.column("__key", "s")
        raw: list[exp.Expr] = []
        codes: list[exp.Expr] = []
        python_index = 0
        for j, lf in enumerate(self.lfs):
            column = exp.column(f"r{j}", "s")
            if lf.kind == "python" and cluster_votes is not None:
                raw.append(exp.column(vote_column(python_index), cluster_votes))
                python_index += 1
                codes.append(column)
            elif lf.kind == "python":
                raw.append(self.python[lf.name].call(self.key.column()))
                codes.append(column)
            else:
                assert lf.expression is not None
                numeric = self.classes.is_integer and self.sql_types[lf.name] in _INTEGER_TYPES
                raw.append(lf.expression.copy() if numeric else exp.cast(lf.expression.copy(), "VARCHAR"))
                codes.append(vote_code(column, self.classes, lf.name, key_in_s, numeric))
        gold = gold_labels.code_subquery(self.source, self.classes) if self.has_gold else None
        if cluster_votes is not None:
            joined = (cluster_votes, REMOTE_KEY)
            return build_label_matrix(self.session, self.source, self.key, raw, codes, gold, name, self.layout,
                                      self.n_rows, joined)
        for votes in self.python.values():
            votes.register(self.session, self.key.type, self.column_types)
        try:
            return build_label_matrix(self.session, self.source, self.key, raw, codes, gold, name, self.layout,
                                      self.n_rows)
        except Error as e:
            failure = next((v.failure for v in self.python.values() if v.failure is not None), None)
            if failure is not None:
                raise failure from e
            raise
        finally:
            for votes in self.python.values():
                votes.unregister(self.session)

    def failures(self) -> list[int]:
        """Rows where each function raised (fault-tolerant Python functions; 0 otherwise)."""
        return [self.python[lf.name].failures if lf.name in self.python else 0 for lf in self.lfs]


def _sql(lf: LabelingFunction) -> exp.Expr:
    """A copy of a SQL labeling function's expression."""
    assert lf.expression is not None, f"{lf.name} is not a SQL labeling function"
    return lf.expression.copy()


def _sql_result_types(session: Session, source: exp.Table, lfs: list[LabelingFunction]) -> dict[str, str]:
    """Each SQL function's result type over ``source``; a function that does not bind is named."""
    if not lfs:
        return {}
    probe = exp.Describe(this=exp.select(*[exp.alias_(_sql(lf), f"r{j}") for j, lf in enumerate(lfs)])
                         .from_(source.copy()))
    try:
        rows = session.sql(probe).fetchall()
    except ProgrammingError:
        for lf in lfs:
            assert lf.expression is not None
            check_sql_expression(session, lf.name, lf.expression, source)
        raise
    return {lf.name: row[1] for lf, row in zip(lfs, rows)}


def _infer_classes(session: Session, source: exp.Table, lfs: list[LabelingFunction], has_gold: bool) -> LabelClasses:
    """The distinct votes of the SQL functions (and gold labels): one extra pass over the table."""
    python = [lf.name for lf in lfs if lf.kind == "python"]
    if python:
        raise ProgrammingError(
            f"Python labeling functions ({', '.join(python)}) need the classes given: add WITH (classes = [...])"
        )
    values = exp.Array(expressions=[exp.cast(_sql(lf), "VARCHAR") for lf in lfs])
    inner = exp.select(exp.alias_(exp.Unnest(expressions=[values]), "v")).from_(source.copy())
    query = (exp.select("v").distinct().from_(exp.alias_(exp.Subquery(this=inner), "u"))
             .where(exp.Not(this=exp.Is(this=exp.column("v"), expression=exp.Null()))).limit(10001))
    texts = {r[0] for r in session.sql(query).fetchall()}
    if has_gold:
        texts |= gold_labels.distinct_labels(session, source)
    if len(texts) > 10000:
        raise ProgrammingError("the labeling functions voted more than 10000 distinct values; give WITH (classes = [...])")
    return LabelClasses.infer(texts)
