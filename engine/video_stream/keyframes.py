"""Checking the container's keyframe flags, since seeking trusts them.

A container says which packets decode on their own, and a decoder that starts anywhere
else outputs garbage.  Most containers are right, but not all: an AVI file cut short loses
its index and then every packet is flagged a keyframe.  So LOAD VIDEO decodes the first
flagged packets on their own (a fresh decoder each, no conversion to RGB: a few
milliseconds) and keeps checking every flagged packet once one of them turns out not to be
an intra picture (packet 0 is where decoding starts anyway); a packet that fails is
stored as a plain packet.  Codecs whose every
picture is intra (MJPEG, ...) are not checked.

>>> from engine.video_stream.demux import open_video, packet_batches
>>> with open_video("data/vtest.avi") as video:
...     check = KeyframeCheck(video.params)
...     flags = [check(b).column("keyframe").to_pylist() for b in packet_batches(video)]
>>> [i for i, key in enumerate(sum(flags, [])) if key], check.checked, check.rejected
([0, 250, 500, 750], 3, 0)
"""
from __future__ import annotations

from typing import Any

import pyarrow as pa

from engine.video_stream.codec import CodecParameters, open_decoder

#: Flagged packets checked before the container's flags are trusted (unless one fails).
CHECKED_BEFORE_TRUST = 16
_INTRA = 1  # FFmpeg's AV_PICTURE_TYPE_I


class KeyframeCheck:
    """Applied to each batch of packets in order: returns it with its keyframe flags checked."""

    def __init__(self, params: CodecParameters) -> None:
        import av

        self.params = params
        self.checked = 0
        self.rejected = 0
        self._intra_only = bool(av.Codec(params.codec, "r").intra_only)

    @property
    def trusting(self) -> bool:
        """Whether the container's flags are taken as they are from now on."""
        return self._intra_only or (self.rejected == 0 and self.checked >= CHECKED_BEFORE_TRUST)

    def __call__(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        flags = batch.column("keyframe").to_pylist()
        numbers = batch.column("packet").to_pylist()
        changed = False
        for row, flagged in enumerate(flags):
            if not flagged or numbers[row] == 0 or self.trusting:
                continue
            self.checked += 1
            if not self._decodes_alone(batch, row):
                flags[row] = False
                self.rejected += 1
                changed = True
        if not changed:
            return batch
        index = batch.schema.get_field_index("keyframe")
        return batch.set_column(index, "keyframe", pa.array(flags, pa.bool_()))

    def _decodes_alone(self, batch: pa.RecordBatch, row: int) -> bool:
        """Whether the packet alone gives an intra picture."""
        import av

        from engine.video_stream.decoder import ffmpeg_packet

        decoder = open_decoder(self.params, threads=False)
        packet = ffmpeg_packet(batch.column("data")[row].as_buffer())
        packet.pts, packet.dts = batch.column("pts")[row].as_py(), batch.column("dts")[row].as_py()
        try:
            pictures = decoder.decode(packet) + decoder.decode(None)
        except av.error.FFmpegError:
            return False
        return any(_is_intra(p) for p in pictures)


def _is_intra(picture: Any) -> bool:
    return bool(picture.key_frame) or int(picture.pict_type) == _INTRA
