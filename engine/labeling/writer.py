"""Writing the label table: predictions made per vote pattern, joined back to the rows in SQL.

The label table has one row per row of the labeled table:

| column | meaning |
| --- | --- |
| key (``id``, ``rowid`` or the ``key`` option) | the row |
| ``label`` | the predicted class (NULL when majority vote ties) |
| ``probs`` | DOUBLE[]: the probability of each class, in class order |
| ``n_votes`` | how many labeling functions voted on the row |
| ``provenance`` | ENUM: ``'weak'`` (from the labeling functions) or ``'gold'`` (an expert label) |
| ``weight`` | a training weight: the label's probability for weak labels, 1 for gold ones |
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
from sqlglot import exp

from engine.errors import ProgrammingError
from engine.labeling.classes import LabelClasses
from engine.labeling.matrix import LabelMatrix
from engine.labeling.patterns import VotePatterns

if TYPE_CHECKING:
    from engine.session import Session

OUTPUT_COLUMNS = ("label", "probs", "n_votes", "provenance", "weight")

#: The provenance column's type (stored as one byte a row).
PROVENANCE = exp.DataType.build("ENUM('weak', 'gold')", dialect="duckdb")


@dataclass(frozen=True)
class Predictions:
    """Per-pattern predictions: label index (-1 for none), probabilities, votes, weight."""

    labels: np.ndarray
    probs: np.ndarray
    n_votes: np.ndarray
    weight: np.ndarray

    @classmethod
    def from_probs(cls, patterns: VotePatterns, probs: np.ndarray, ties_abstain: bool) -> Predictions:
        labels = probs.argmax(axis=1)
        top = probs.max(axis=1)
        if ties_abstain:
            tied = np.isclose(probs, top[:, None]).sum(axis=1) > 1
            labels = np.where(tied, -1, labels)
        weight = np.where(labels >= 0, top, 0.0)
        return cls(labels, probs, patterns.n_votes(), weight)

    def label_share(self, counts: np.ndarray, k: int) -> np.ndarray:
        """The share of rows given each class (no gold labels): each pattern's label, weighted
        by how many rows have the pattern.

        >>> p = Predictions(np.array([0, 1, -1]), np.zeros((3, 2)), np.zeros(3), np.zeros(3))
        >>> p.label_share(np.array([2, 1, 1]), k=2).tolist()
        [0.5, 0.25]
        """
        labelled = self.labels >= 0
        totals = np.bincount(self.labels[labelled], weights=counts[labelled], minlength=k)
        return totals / max(int(counts.sum()), 1)

    def to_arrow(self, patterns: VotePatterns, classes: LabelClasses) -> pa.Table:
        indices = pa.array(self.labels.astype(np.int32), mask=self.labels < 0)
        label = pa.DictionaryArray.from_arrays(indices, pa.array(list(classes.values), type=classes.arrow_type))
        label = label.dictionary_decode()
        k = classes.k
        probs = pa.ListArray.from_arrays(pa.array(np.arange(0, len(self.labels) * k + 1, k, dtype=np.int32)),
                                         pa.array(self.probs.ravel(), type=pa.float64()))
        columns: dict[str, Any] = {name: pa.array(code) for name, code in patterns.join_codes.items()}
        columns.update(label=label, probs=probs, n_votes=pa.array(self.n_votes), weight=pa.array(self.weight))
        return pa.table(columns)


def gold_classes_arrow(classes: LabelClasses) -> pa.Table:
    """One row per class: its vote code, value, and a one-hot probability list."""
    k = classes.k
    return pa.table({
        "code": pa.array(range(1, k + 1), type=pa.int8()),
        "label": pa.array(list(classes.values), type=classes.arrow_type),
        "probs": pa.array([[1.0 if i == j else 0.0 for j in range(k)] for i in range(k)], type=pa.list_(pa.float64())),
    })


def check_key_name(key: str) -> None:
    if key.lower() in OUTPUT_COLUMNS:
        raise ProgrammingError(
            f"the key column {key} has the name of a label table column ({', '.join(OUTPUT_COLUMNS)}); "
            "rename it or choose another key with WITH (key = ...)"
        )


def label_query(rows: exp.Table, names: list[str], key: str, predictions: exp.Table,
                gold: exp.Expr | None) -> exp.Select:
    """The label table's rows: the label matrix ``rows`` (``key``, code columns ``names``,
    ``gold``) joined to its pattern's prediction in ``predictions``, gold labels (a table or
    ``VALUES`` of ``(code, label, probs)``, or None) overriding weak ones."""
    on = exp.and_(*[exp.EQ(this=exp.column(name, "v"), expression=exp.column(name, "p")) for name in names])
    source = exp.select("*").from_(exp.alias_(rows.copy(), "v")).join(exp.alias_(predictions.copy(), "p"), on=on)
    return label_select(source, "p", key, gold)


def label_select(source: exp.Select, weak: str, key: str, gold: exp.Expr | None) -> exp.Select:
    """The label table's columns over ``source`` (a SELECT whose FROM has the rows as ``v``,
    with ``key`` and ``gold``, and the weak ``label``, ``probs``, ``n_votes`` and ``weight``
    under the name ``weak``), gold labels overriding weak ones."""
    v, g = "v", "g"

    def pick(weak_value: exp.Expr, gold_value: exp.Expr) -> exp.Expr:
        if gold is None:
            return weak_value
        no_gold = exp.Is(this=exp.column("gold", v), expression=exp.Null())
        return exp.Case(ifs=[exp.If(this=no_gold, true=weak_value)], default=gold_value)

    query = source.select(
        exp.alias_(exp.column("key", v), exp.to_identifier(key, quoted=True)),
        exp.alias_(pick(exp.column("label", weak), exp.column("label", g)), "label"),
        exp.alias_(pick(exp.column("probs", weak), exp.column("probs", g)), "probs"),
        exp.alias_(exp.column("n_votes", weak), "n_votes"),
        exp.alias_(exp.cast(pick(exp.Literal.string("weak"), exp.Literal.string("gold")), PROVENANCE), "provenance"),
        exp.alias_(pick(exp.column("weight", weak), exp.cast(exp.Literal.number(1), "DOUBLE")), "weight"),
        append=False,
    )
    if gold is not None:
        joined = gold.copy() if isinstance(gold, exp.Values) else exp.alias_(gold.copy(), g)
        query = query.join(joined, on=exp.EQ(this=exp.column("gold", v), expression=exp.column("code", g)),
                           join_type="LEFT")
    return query


def write_label_table(session: Session, matrix: LabelMatrix, target: exp.Table, key: str, predictions: str,
                      gold_classes: str | None) -> None:
    """``CREATE TABLE target AS`` the rows joined to their pattern's prediction."""
    gold = exp.to_table(gold_classes) if gold_classes is not None else None
    query = label_query(matrix.ref(), matrix.layout.names, key, exp.to_table(predictions), gold)
    session.sql(exp.Create(this=target.copy(), kind="TABLE", expression=query))
