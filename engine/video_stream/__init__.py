"""Video stored as its compressed stream and decoded on read.

``LOAD VIDEO`` (:mod:`engine.video_stream.load`) copies a container's packets into the
database with a keyframe index (:mod:`~engine.video_stream.index`) and what a decoder needs
(:mod:`~engine.video_stream.codec`), all in one transaction; :mod:`~engine.video_stream.store`
says where they live.  Frames are decoded when they are read
(:mod:`~engine.video_stream.reading`, :mod:`~engine.video_stream.decoder`): by the
``video_frame`` SQL function behind a frames table's ``frame`` column, and by the frames
readers of Python code, in runs that start at a keyframe and go forward.
``docs/video.md`` describes it for users.

>>> import engine
>>> from engine.video_stream import decode_counters
>>> con = engine.connect(progress="off")
>>> con.execute("LOAD VIDEO 'data/vtest.avi' INTO traffic WITH (width = 64, height = 48)").rowcount
795
>>> before = decode_counters(con)
>>> len(con.execute("SELECT frame FROM traffic WHERE frame_id BETWEEN 260 AND 262").fetchall())
3
>>> work = decode_counters(con) - before
>>> work.frames_returned, work.frames_decoded  # from the keyframe at 250
(3, 13)
"""
from __future__ import annotations

from engine.video_stream.counters import DecodeCounters
from engine.video_stream.reading import decode_counters

__all__ = ["DecodeCounters", "decode_counters"]
