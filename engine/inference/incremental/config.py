"""The knobs of the incremental engine and what it reports per frame.

Each knob is a field of :class:`IncrementalConfig`; its metadata names the setting that sets
it (``setting``), says what it does (``doc``) and which answers it can change (``changes``:
'approximate' for knobs only approximate mode reads, 'none' for knobs that change speed or
bookkeeping only).

>>> config = IncrementalConfig(activation_threshold=0.02)
>>> config.block, config.refresh
(8, 16)
>>> IncrementalConfig.answer_fields("exact")
()
>>> FrameStats(frame_id=3, kind="skipped", patches=[], macs=0, macs_full=300).saving
1.0
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from engine.errors import DataError

MODES = ("exact", "approximate")
KINDS = ("full", "incremental", "skipped")

#: Why a frame was computed in full or skipped (``FrameStats.reason``).
REASONS = {
    "first frame": "the runner has no base frame yet (first frame it sees, or a new frame size)",
    "segment start": "the frame starts a segment (a keyframe): a full base frame, so the segment's answers "
                     "do not depend on what ran before it",
    "refresh": "approximate mode re-bases every `refresh` computed frames, bounding drift",
    "cost": "the estimated incremental multiply-adds exceed `fallback_ratio` of full inference",
    "guard": "the first frames of the segment showed incremental inference would cost more than full inference "
             "(`guard`): the rest of the segment runs in full",
    "unsupported model": "the incremental engine does not support a layer of the model: every frame in full",
    "unchanged": "no block changed beyond the pixel threshold: the previous frame's result",
    "similar": "NoScope's difference to the last computed frame is at most `skip_threshold`",
}


def _knob(default: Any, doc: str, changes: str = "approximate", setting: str | None = None) -> Any:
    return field(default=default, metadata={"doc": doc, "changes": changes, "setting": setting})


@dataclass(frozen=True)
class IncrementalConfig:
    """How the engine finds changes and, in approximate mode, how much change it ignores.

    Exact mode's answers equal full inference (logits within 1e-4): it recomputes every 8x8
    block whose pixels differ at all from the frame before, and reads only ``block``,
    ``fallback_ratio``, ``batch_frames``, ``tile``, ``guard`` and ``persist_state`` (none of which
    changes its answers).  Every knob that trades fidelity for speed belongs to approximate mode.
    """

    block: int = _knob(8, "Change detection grid cell, in input pixels.", changes="none")
    pixel_threshold: float = _knob(
        8 / 255, "Approximate mode: a grid cell changed when its largest pixel change (in [0, 1]) exceeds this "
        "(exact mode recomputes every cell that changed at all).")
    activation_threshold: float = _knob(
        0.1, "Approximate mode: a layer output position propagates only when its change exceeds this "
        "(CBinfer-style); 0 turns it off.", setting="inference_change_threshold")
    tau: float = _knob(1.0, "Approximate mode: projective-field threshold, each layer's changed region cropped to "
                            "this fraction of the layer (Krypton); 1 turns it off.")
    skip_threshold: float = _knob(0.0, "Approximate mode: skip a frame whose difference to the last computed frame "
                                       "is at most this (NoScope); 0 turns it off.")
    halo: bool = _knob(True, "Approximate mode: recompute the ring of outputs a stride-1 window (a 3x3 depthwise "
                              "convolution) reaches around a changed region; off keeps their values (less work).")
    refresh: str | int = _knob(16, "Approximate mode: compute a frame in full every N computed frames, bounding "
                                  "drift; 'auto' only when full inference is cheaper.")
    batch_frames: int = _knob(16, "Frames computed together (one call of each layer).", changes="none",
                              setting="inference_batch_size")
    fallback_ratio: float = _knob(
        0.2, "Compute a frame in full when its estimated incremental multiply-adds exceed this fraction of full "
        "inference's (incremental work costs more per multiply-add than dense work).", changes="none")
    tile: int = _knob(4, "Side of the output tiles in which the incremental engine gathers read-in context.",
                      changes="none")
    fidelity_bar: float = _knob(0.995, "Approximate mode: the mean logit cosine against full inference the "
                                       "fidelity audit checks.", changes="none")
    audit_every: int = _knob(64, "Approximate mode: every N-th incremental or skipped (similar) frame is also "
                                 "computed in full and compared (the fidelity audit); 0 turns it off.",
                             changes="none")
    guard: bool = _knob(True, "Judge each segment on its first frames: when their multiply-adds (priced with the "
                              "sparse engine's calibrated cost per multiply-add and per-frame overhead) show "
                              "incremental inference would cost at least full inference, run the rest of the "
                              "segment in full (exact mode: same answers; approximate mode: full inference's).")
    persist_state: bool = _knob(False, "Exact mode: keep the engine's base frame and activations in the database "
                                       "so a later query continues from them (answers unchanged).",
                                changes="none")

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
            ("fallback_ratio", 0 < self.fallback_ratio <= 10, "a number in (0, 10]"),
            ("tile", isinstance(self.tile, int) and self.tile >= 1, "an integer >= 1"),
            ("fidelity_bar", 0 <= self.fidelity_bar <= 1, "a number in [0, 1]"),
            ("audit_every", isinstance(self.audit_every, int) and self.audit_every >= 0, "an integer >= 0"),
            ("persist_state", isinstance(self.persist_state, bool), "true or false"),
            ("halo", isinstance(self.halo, bool), "true or false"),
            ("guard", isinstance(self.guard, bool), "true or false"),
        )
        for name, ok, expected in checks:
            if not ok:
                raise DataError(f"incremental config: expected {name} to be {expected}, found {getattr(self, name)!r}")

    @property
    def refresh_every(self) -> int | None:
        """Computed frames between forced re-bases, or None for ``'auto'``."""
        return None if self.refresh == "auto" else int(self.refresh)

    def pixel_threshold_of(self, mode: str) -> float:
        """The pixel threshold ``mode`` detects changes with: 0 in exact mode (any change)."""
        return self.pixel_threshold if mode == "approximate" else 0.0

    @classmethod
    def answer_fields(cls, mode: str) -> tuple[str, ...]:
        """The knobs that can change ``mode``'s answers (what a result cache key must hold)."""
        if mode != "approximate":
            return ()
        return tuple(f.name for f in fields(cls) if f.metadata["changes"] == "approximate")

    @classmethod
    def setting_names(cls) -> dict[str, str]:
        """Field -> the setting that sets it (``inference_<field>`` unless the field names another)."""
        return {f.name: f.metadata["setting"] or f"inference_{f.name}" for f in fields(cls)}

    @classmethod
    def descriptions(cls) -> dict[str, str]:
        """Field -> what it does (for SHOW MALLARD SETTINGS and the docs)."""
        return {f.name: f.metadata["doc"] for f in fields(cls)}


@dataclass
class FrameStats:
    """What the engine did (or plans to do) with one frame.

    ``patches`` are the changed regions (y, x, h, w) at input resolution: disjoint rectangles
    whose union is exactly the recomputed blocks; a full frame has one patch covering it and a
    skipped frame none.  ``macs`` is the multiply-adds computed (``run``) or estimated
    (``plan``; in exact mode the same number).  ``reason`` says why a frame is full or skipped
    (a key of :data:`REASONS`), empty for incremental frames.
    """

    frame_id: int
    kind: str
    patches: list[tuple[int, int, int, int]] = field(default_factory=list)
    macs: int = 0
    macs_full: int = 0
    reason: str = ""
    guard_ratio: float = 0.0    # (reason 'guard') what the guard found incremental would cost against full

    @property
    def saving(self) -> float:
        """Fraction of full inference's multiply-adds not spent."""
        return 1.0 - self.macs / self.macs_full if self.macs_full else 0.0


@dataclass(frozen=True)
class FidelityAudit:
    """Approximate mode's check of its own fidelity.

    Every ``audit_every``-th frame of a segment computed incrementally or skipped as similar is
    also computed in full from its true pixels; the logit cosines of the two are a sample of
    approximate mode's fidelity (at varying places in the refresh cycle).  ``held`` says whether their mean reaches the bar
    (None: no sample).

    >>> FidelityAudit(frames=3, mean_cosine=0.996, min_cosine=0.99, bar=0.995).held
    True
    >>> print(FidelityAudit(frames=0, mean_cosine=float("nan"), min_cosine=float("nan"), bar=0.995))
    fidelity audit: no frame audited
    """

    frames: int
    mean_cosine: float
    min_cosine: float
    bar: float

    @property
    def held(self) -> bool | None:
        return None if self.frames == 0 else self.mean_cosine >= self.bar

    @classmethod
    def of(cls, cosines: list[float], bar: float) -> FidelityAudit:
        if not cosines:
            return cls(0, float("nan"), float("nan"), bar)
        return cls(len(cosines), float(sum(cosines) / len(cosines)), float(min(cosines)), bar)

    def __str__(self) -> str:
        if self.frames == 0:
            return "fidelity audit: no frame audited"
        verdict = "held" if self.held else "NOT held"
        return (f"fidelity audit: mean logit cosine {self.mean_cosine:.4f} (min {self.min_cosine:.4f}) over "
                f"{self.frames} audited frames; bar {self.bar:g} {verdict}")
