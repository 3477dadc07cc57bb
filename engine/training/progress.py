"""What training reports while it runs, and how it stops early.

``train(..., progress=callback)`` calls ``callback(TrainingProgress(...))`` every few
batches (the caller shows a bar with the loss and the throughput); ``cancel`` is polled
between batches and, when it returns True, training stops, worker processes end, the
temporary partitions are deleted and :class:`Cancelled` is raised: nothing half-made is
returned or written.

>>> p = TrainingProgress(configuration=0, configurations=1, epoch=1, epochs=2, rows_done=50, rows_total=200,
...                      loss=0.7, rows_per_second=1000.0)
>>> p.fraction
0.25
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from engine.errors import OperationalError


class Cancelled(OperationalError):
    """Training was stopped by its cancel check (or Ctrl-C); nothing was kept."""


@dataclass(frozen=True)
class TrainingProgress:
    """One progress report: where training is and how fast it goes."""

    configuration: int          # index of the configuration in the grid
    configurations: int         # configurations in the grid
    epoch: int                  # 1-based epoch being trained
    epochs: int
    rows_done: int              # training rows processed so far by this configuration (all epochs)
    rows_total: int             # training rows times epochs
    loss: float                 # mean training loss of the current epoch so far
    rows_per_second: float

    @property
    def fraction(self) -> float:
        """Share of this configuration's work done."""
        return self.rows_done / self.rows_total if self.rows_total else 1.0


ProgressCallback = Callable[[TrainingProgress], None]
CancelCheck = Callable[[], bool]


def never() -> bool:
    """The default cancel check: never cancel."""
    return False
