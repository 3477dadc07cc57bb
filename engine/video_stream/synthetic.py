"""Long test videos made from a real clip without re-encoding (for tests and benchmarks).

:func:`concatenate` remuxes a clip's packets ``times`` times into one file, shifting each
copy's timestamps past the previous one's, so a 80-second camera clip becomes an hour of
real compressed video (vtest.avi 45 times: 35,775 frames) in about a second.

>>> import tempfile, os, av
>>> target = os.path.join(tempfile.mkdtemp(), "twice.avi")
>>> concatenate("data/vtest.avi", target, times=2)
1590
>>> with av.open(target) as c:
...     sum(1 for p in c.demux(video=0) if p.size)
1590
"""
from __future__ import annotations

from typing import Any


def concatenate(source: str, target: str, times: int) -> int:
    """Write ``source``'s first video stream ``times`` over into ``target``; return its packets."""
    import av

    if times < 1:
        raise ValueError(f"expected times >= 1, found {times}")
    with av.open(source) as probe:
        stream = probe.streams.video[0]
        packets = [(p.pts, p.dts, p.duration, p.is_keyframe, bytes(p)) for p in probe.demux(stream) if p.size]
        time_base = stream.time_base
        with av.open(target, "w") as out:
            video = out.add_stream_from_template(stream)
            span = _span(packets)
            for copy in range(times):
                _mux_copy(out, video, packets, copy * span, time_base)
    return len(packets) * times


def _span(packets: list[tuple[Any, ...]]) -> int:
    """How far one copy's timestamps extend: the last pts plus one frame's duration."""
    pts = [p[0] if p[0] is not None else p[1] for p in packets]
    step = max(1, min(b - a for a, b in zip(sorted(pts), sorted(pts)[1:])) if len(pts) > 1 else 1)
    return max(pts) - min(pts) + step


def _mux_copy(out: Any, video: Any, packets: list[tuple[Any, ...]], shift: int, time_base: Any) -> None:
    import av

    for pts, dts, duration, keyframe, data in packets:
        packet = av.Packet(data)
        packet.stream = video
        packet.time_base = time_base
        packet.pts = None if pts is None else pts + shift
        packet.dts = None if dts is None else dts + shift
        if duration:
            packet.duration = duration
        packet.is_keyframe = keyframe
        out.mux(packet)
