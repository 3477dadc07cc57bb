"""The knobs of the incremental engine and what it reports per frame.

>>> config = IncrementalConfig(activation_threshold=0.02)
>>> config.block, config.refresh
(8, 8)
>>> FrameStats(frame_id=3, kind="skipped", patches=[], macs=0, macs_full=300).saving
1.0
"""
from __future__ import annotations

from dataclasses import dataclass, field

from engine.errors import DataError

MODES = ("exact", "approximate")
KINDS = ("full", "incremental", "skipped")


@dataclass(frozen=True)
class IncrementalConfig:
    """How the engine finds changes and, in approximate mode, how much change it ignores.

    Change detection (both modes): the frame is cut into ``block`` x ``block`` pixel cells; a
    cell changed when its largest absolute pixel difference (over RGB, pixels scaled to
    [0, 1]) against the base frame exceeds ``pixel_threshold``.

    Approximate mode only (exact mode ignores them):

    - ``activation_threshold``: a layer's output position propagates only when its largest
      change over channels exceeds this (CBinfer); ``0`` turns it off.
    - ``tau``: projective-field threshold (Krypton): each layer's changed region is centre-cropped
      to this fraction of the layer's height and width; ``1.0`` turns it off.
    - ``skip_threshold``: a frame whose mean squared difference to the last computed frame
      (grey levels in [0, 1], 4x4 pixel means) is at most this is skipped (NoScope) and
      answered with that frame's result; ``0`` turns it off.
    - ``refresh``: ``'auto'`` re-bases (runs a frame in full) only when the cost model says full
      inference is cheaper; an integer ``n`` also re-bases every ``n`` computed frames, which
      bounds the drift approximations accumulate.
    - ``fallback_ratio``: when the incremental frames of a chunk cost on average more than this
      fraction of full inference's multiply-adds (a moving camera), the next chunks run in full;
      incremental inference is retried every few chunks.

    Both modes: ``batch_frames`` frames are computed together (one call of each layer);
    ``rebase_ratio`` is the fraction of full inference's multiply-adds above which a frame is
    computed in full (incremental work costs more per multiply-add than dense work);
    ``tile`` is the side of the output tiles in which windowed layers gather their read-in context.
    """

    block: int = 8
    pixel_threshold: float = 8 / 255
    activation_threshold: float = 0.13
    tau: float = 1.0
    skip_threshold: float = 0.0
    refresh: str | int = 8
    batch_frames: int = 16
    rebase_ratio: float = 0.7
    fallback_ratio: float = 0.6
    tile: int = 4

    def __post_init__(self) -> None:
        checks = (
            ("block", isinstance(self.block, int) and self.block >= 1, "an integer >= 1"),
            ("pixel_threshold", 0 <= self.pixel_threshold < 1, "a number in [0, 1)"),
            ("activation_threshold", self.activation_threshold >= 0, "a number >= 0"),
            ("tau", 0 < self.tau <= 1, "a number in (0, 1]"),
            ("skip_threshold", self.skip_threshold >= 0, "a number >= 0"),
            ("refresh", self.refresh == "auto" or (isinstance(self.refresh, int) and self.refresh >= 1),
             "'auto' or an integer >= 1"),
            ("batch_frames", isinstance(self.batch_frames, int) and self.batch_frames >= 1, "an integer >= 1"),
            ("rebase_ratio", 0 < self.rebase_ratio <= 10, "a number in (0, 10]"),
            ("fallback_ratio", 0 < self.fallback_ratio <= 10, "a number in (0, 10]"),
            ("tile", isinstance(self.tile, int) and self.tile >= 1, "an integer >= 1"),
        )
        for name, ok, expected in checks:
            if not ok:
                raise DataError(f"incremental config: expected {name} to be {expected}, found {getattr(self, name)!r}")

    @property
    def refresh_every(self) -> int | None:
        """Computed frames between forced re-bases, or None for ``'auto'``."""
        return None if self.refresh == "auto" else int(self.refresh)


@dataclass
class FrameStats:
    """What the engine did (or plans to do) with one frame.

    ``patches`` are the changed regions (y, x, h, w) at input resolution: disjoint rectangles
    whose union is exactly the pasted blocks; a full frame has one patch covering it and a
    skipped frame none.  ``macs`` is the cost model's multiply-adds for what was computed.
    """

    frame_id: int
    kind: str
    patches: list[tuple[int, int, int, int]] = field(default_factory=list)
    macs: int = 0
    macs_full: int = 0

    @property
    def saving(self) -> float:
        """Fraction of full inference's multiply-adds not spent."""
        return 1.0 - self.macs / self.macs_full if self.macs_full else 0.0
