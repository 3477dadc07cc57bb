"""The classes a LABEL run labels with: their values, their text, and the label column's type.

Votes are matched to classes by text (``CAST(vote AS VARCHAR)`` in SQL, ``str(vote)`` in
Python), so ``classes = [0, 1]`` accepts integer votes and ``classes = ['ham', 'spam']``
string votes.  Class ``i`` is vote code ``i + 1``; code 0 is an abstain.

>>> c = LabelClasses.from_values(["ham", "spam"])
>>> c.k, c.label_type, c.code_of("spam")
(2, 'VARCHAR', 2)
>>> LabelClasses.from_values([1, 0]).values
(0, 1)
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from engine.errors import DataError, ProgrammingError


@dataclass(frozen=True)
class LabelClasses:
    """An ordered set of at least two classes, all integers or all strings."""

    values: tuple[Any, ...]

    @classmethod
    def from_values(cls, values: Iterable[Any], *, where: str = "classes") -> LabelClasses:
        """Validate and order classes: integers sort numerically; strings keep the given order."""
        found = list(values)
        if any(v is None or isinstance(v, (bool, float, list)) for v in found):
            raise DataError(f"{where}: expected class labels that are strings or whole numbers, found {found!r}")
        if len({type(v) for v in found}) > 1:
            raise DataError(f"{where}: expected all strings or all whole numbers, found {found!r}")
        if len(set(found)) != len(found):
            raise DataError(f"{where}: expected distinct class labels, found {found!r}")
        if len(found) < 2:
            raise DataError(f"{where}: expected at least 2 classes, found {found!r}")
        if found and isinstance(found[0], int):
            found = sorted(found)
        return cls(tuple(found))

    @classmethod
    def infer(cls, texts: Iterable[str]) -> LabelClasses:
        """Classes from the distinct votes seen (as text): whole numbers if all votes are, sorted."""
        seen = sorted(set(texts))
        if seen and all(_is_integer_text(t) for t in seen):
            values: list[Any] = sorted(int(t) for t in seen)
        else:
            values = seen
        if len(values) < 2:
            raise ProgrammingError(
                f"LABEL needs at least 2 classes, but the labeling functions voted only {values!r}; "
                "give them with WITH (classes = [...])"
            )
        return cls(tuple(values))

    @property
    def k(self) -> int:
        return len(self.values)

    @property
    def texts(self) -> tuple[str, ...]:
        return tuple(str(v) for v in self.values)

    @property
    def is_integer(self) -> bool:
        return isinstance(self.values[0], int)

    @property
    def label_type(self) -> str:
        """The SQL type of the label column."""
        return "BIGINT" if self.is_integer else "VARCHAR"

    @property
    def arrow_type(self) -> pa.DataType:
        return pa.int64() if self.is_integer else pa.string()

    def code_of(self, text: str) -> int | None:
        """The vote code (1-based) of a class given as text, None if it is not a class."""
        try:
            return self.texts.index(text) + 1
        except ValueError:
            return None


def _is_integer_text(text: str) -> bool:
    body = text[1:] if text.startswith("-") else text
    return body.isdigit()
