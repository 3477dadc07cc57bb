"""Codec-aware change detection: do the decoder's motion vectors find the changed 8x8 blocks
as well as the pixel difference does, and for how much less time?

    .venv/bin/python bench/bench_video_motion.py [--video data/vtest.avi] [--threshold 8]

The decoder exports motion vectors (FFmpeg's ``flags2=+export_mvs``; PyAV gives them as
frame side data): one per inter-coded macroblock, with its motion; intra-coded macroblocks
have none.  The motion-vector detector marks an 8x8 block changed when its macroblock moved
(non-zero motion) or is intra-coded (no vector), and unchanged when its macroblock copies
the previous picture in place (zero motion: skipped, or coded with a residual the side data
does not show).  The truth is the pixel difference the incremental engine uses (a block
changed when a pixel of it moved by more than ``--threshold``/255 from the previous frame,
``engine.inference.incremental.changes.changed_blocks``).

Prints, over every P-frame of the clip at its native size: recall (changed blocks the motion
vectors mark), the share of blocks each marks, and the time per frame of the pixel
difference against that of exporting and reading the motion vectors.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.inference.incremental.changes import changed_blocks
from engine.video_stream.codec import open_decoder
from engine.video_stream.decoder import ffmpeg_packet
from engine.video_stream.demux import open_video, packet_batches


def decode(path: str, export_mvs: bool) -> tuple[list, float]:
    """Every picture of the clip, and the seconds the decoder took."""
    import pyarrow as pa

    with open_video(path) as video:
        packets = pa.Table.from_batches(list(packet_batches(video)))
        params = video.params
    decoder = open_decoder(params, export_mvs=export_mvs)
    pictures = []
    started = time.perf_counter()
    for row in range(packets.num_rows):
        packet = ffmpeg_packet(packets.column("data")[row].as_buffer())
        packet.pts = packets.column("pts")[row].as_py()
        pictures += decoder.decode(packet)
    pictures += decoder.decode(None)
    return pictures, time.perf_counter() - started


def motion_blocks(picture, height: int, width: int, block: int = 8) -> np.ndarray | None:
    """(gh, gw) bool: blocks whose macroblock moved or is intra-coded; None for an intra picture."""
    vectors = [s for s in picture.side_data if s.type.name == "MOTION_VECTORS"]
    if not vectors:
        return None
    mv = vectors[0].to_ndarray()
    grid = (-(-height // block), -(-width // block))
    covered = np.zeros(grid, bool)
    moved = np.zeros(grid, bool)
    moving = (mv["motion_x"] != 0) | (mv["motion_y"] != 0)
    for dy in range(int(mv["h"].max()) // block):
        for dx in range(int(mv["w"].max()) // block):
            rows = np.clip((mv["dst_y"] - mv["h"] // 2) // block + dy, 0, grid[0] - 1)
            cols = np.clip((mv["dst_x"] - mv["w"] // 2) // block + dx, 0, grid[1] - 1)
            covered[rows, cols] = True
            np.logical_or.at(moved, (rows, cols), moving)
    return moved | ~covered


def main() -> None:
    """Decode the clip twice and compare the detectors frame by frame."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", default="data/vtest.avi")
    parser.add_argument("--threshold", type=float, default=8, help="pixel threshold, in 1/255")
    args = parser.parse_args()
    plain, plain_seconds = decode(args.video, export_mvs=False)
    with_mvs, mv_seconds = decode(args.video, export_mvs=True)
    frames = [p.to_ndarray(format="rgb24") for p in plain]
    height, width = frames[0].shape[:2]
    hits = misses = marked = changed = total = p_frames = 0
    pixel_time = motion_time = 0.0
    for index in range(1, len(frames)):
        started = time.perf_counter()
        truth = changed_blocks(frames[index][None], frames[index - 1], 8, args.threshold / 255)[0]
        pixel_time += time.perf_counter() - started
        started = time.perf_counter()
        marks = motion_blocks(with_mvs[index], height, width)
        motion_time += time.perf_counter() - started
        if marks is None:
            continue  # an intra picture: everything may have changed, both detectors agree
        p_frames += 1
        hits += int((truth & marks).sum())
        misses += int((truth & ~marks).sum())
        marked += int(marks.sum())
        changed += int(truth.sum())
        total += truth.size
    export = (mv_seconds - plain_seconds) / len(frames)
    print(f"{args.video}: {len(frames)} frames of {width}x{height}, {p_frames} P-frames, threshold "
          f"{args.threshold:g}/255, 8x8 blocks")
    print(f"blocks changed by the pixel difference: {changed / total:.3f} of all; marked by motion vectors: "
          f"{marked / total:.3f}")
    print(f"recall of the motion vectors against the pixel difference: {hits / (hits + misses):.3f} "
          f"({misses} changed blocks missed, {misses / p_frames:.1f} a frame)")
    print(f"time per frame: pixel difference {1000 * pixel_time / (len(frames) - 1):.2f} ms; motion vectors "
          f"{1000 * motion_time / (len(frames) - 1):.2f} ms to read + {1000 * export:.2f} ms more decoding "
          f"(decoding alone {1000 * plain_seconds / len(frames):.2f} ms a frame)")


if __name__ == "__main__":
    main()
