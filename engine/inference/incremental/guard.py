"""The guard: whether incremental inference beats full inference on a segment, judged from
multiply-add counts (never from a clock).

Incremental work costs more per multiply-add than dense work (gathers, scatters, small
matrix products) and every frame it decides costs change detection and mask propagation on
top.  So after the first :data:`SAMPLE` frames of each segment (after its full start frame),
the guard prices what they did in dense multiply-add equivalents

- an incremental frame: ``SPARSE_COST_PER_MAC`` x the multiply-adds it spent, plus the
  overhead of deciding it;
- a frame computed in full (fallback or refresh): full inference plus the overhead;
- a skipped frame: the overhead;

and compares the total with full inference of the same frames.  When incremental is not
cheaper (``ratio >= 1``), the rest of the segment runs in full (reason ``guard``), without
change detection.  A segment start starts a new sample, so a segment's answers still depend
only on its own frames.  In exact mode the multiply-adds spent are the estimate EXPLAIN
computes; approximate mode's are known only by running (its activation thresholds), so EXPLAIN
runs a segment's sample frames.

>>> from udfs.architectures import build
>>> from engine.inference.incremental.graph import LayerGraph
>>> graph = LayerGraph.trace(build("plain_cnn", num_classes=3), 32, 32)
>>> overhead(graph) > graph.macs_full        # at 32x32 deciding alone costs more than a full frame
True
>>> frame_cost(graph, "skipped", 0) == overhead(graph)
True
"""
from __future__ import annotations

from engine.inference.incremental.graph import LayerGraph

#: Frames after a segment's start frame on which the guard judges the segment.
SAMPLE = 8

# Calibrated once on the development machine (2 cores, torch threads 2, load average 0.5) over
# vtest.avi and MobileNetV2 (data/mobilenet_v2.pth), approximate mode with the guard off: the
# defaults at 224x224 (256 frames), docs/incremental.md's native settings at 576x768 (96
# frames).  Measured: full inference 9.3 ms a frame at 224x224 (0.30 G multiply-adds) and 86 ms
# at native size (2.64 G); incremental frames 12.8 ms for 0.072 G spent and 32 ms for 0.127 G;
# deciding 1.9 ms and 3.4 ms a frame.  ``bench/calibrate_guard.py`` repeats the measure (under
# load the sparse path suffers more than the dense one: it then reads 5.5 to 15).  These are
# ratios of this machine, not timings taken at run time: every decision reads only these
# constants and multiply-add counts.

#: Seconds per multiply-add of incremental frames over seconds per multiply-add of dense full
#: frames (measured 5.8 at 224x224, 6.3 to 7.7 at native size).
SPARSE_COST_PER_MAC = 6.0
#: Deciding one frame (change detection, mask propagation through the graph), in dense
#: multiply-add equivalents: a part per layer-graph node (torch's per-operation cost) ...
DECIDE_MACS_PER_NODE = 900_000
#: ... and a part per input pixel (fitted to 63 M at 224x224 and 106 M at 576x768 per frame,
#: MobileNetV2's graph having 63 nodes).
DECIDE_MACS_PER_PIXEL = 110


def overhead(graph: LayerGraph) -> float:
    """Dense multiply-add equivalents of deciding one frame of this graph's size."""
    return DECIDE_MACS_PER_NODE * len(graph.nodes) + DECIDE_MACS_PER_PIXEL * graph.height * graph.width


def frame_cost(graph: LayerGraph, kind: str, spent: int) -> float:
    """Dense multiply-add equivalents of one frame the incremental engine handled as ``kind``
    ('incremental', 'full' or 'skipped'), ``spent`` its multiply-adds (audits excluded)."""
    if kind == "incremental":
        return SPARSE_COST_PER_MAC * spent + overhead(graph)
    if kind == "full":
        return graph.macs_full + overhead(graph)
    return overhead(graph)


def describe(ratio: float) -> str:
    """The guard's verdict in words (EXPLAIN).

    >>> describe(1.64)
    'incremental would cost ~1.64x of full at this size'
    """
    return f"incremental would cost ~{ratio:.2f}x of full at this size"
