"""Counters of the decoding work a connection did: what a query cost, measured, not guessed.

>>> a = DecodeCounters(packets_read=10, frames_decoded=10, frames_returned=2)
>>> b = DecodeCounters(packets_read=25, frames_decoded=30, frames_returned=3, decoders_opened=1)
>>> b - a
DecodeCounters(packets_read=15, packet_bytes=0, frames_decoded=20, frames_returned=1, decoders_opened=1)
"""
from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass
class DecodeCounters:
    """Totals since the connection opened (subtract two snapshots for one statement)."""

    packets_read: int = 0        # packets read from the database (rows of the packets tables)
    packet_bytes: int = 0        # their bytes
    frames_decoded: int = 0      # pictures the decoders output (including ones no query asked for)
    frames_returned: int = 0     # frames converted to RGB and handed to a query or a reader
    decoders_opened: int = 0     # decoders started at a keyframe (one per seek)

    def __sub__(self, other: DecodeCounters) -> DecodeCounters:
        return DecodeCounters(**{f.name: getattr(self, f.name) - getattr(other, f.name) for f in fields(self)})

    def copy(self) -> DecodeCounters:
        """A snapshot."""
        return DecodeCounters(**{f.name: getattr(self, f.name) for f in fields(self)})
