"""LOAD VIDEO throughput versus decoding the same file with PyAV alone, side by side in one run.

    .venv/bin/python bench/bench_video_load.py [--video data/vtest.avi] [--repeat 3]

The baseline decodes every frame to an RGB numpy array with PyAV (same thread settings,
same resize) and keeps nothing.  Mallard decodes the same way and stores every frame in a
fresh DuckDB file, in one committed transaction.  Prints frames/s of each and the ratio
Mallard / PyAV (target: >= 0.8).

``--breakdown`` also times where LOAD VIDEO's time goes at 224x224: decoding alone, and
raw DuckDB inserting the already decoded frames (Arrow batches of 64, one commit each, as
LOAD VIDEO does) into a fresh file, with DuckDB's default compression and with
``force_compression = 'uncompressed'``, including the checkpoint at close.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import av
import duckdb
import numpy as np

import engine
from engine.video import frames_batch


def pyav_alone(path: str, width: int | None, height: int | None, keep: list[np.ndarray] | None = None) -> int:
    """Decode every frame to RGB (resized when asked); the count, and the frames in ``keep`` if given."""
    count = 0
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            if width is not None:
                frame = frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA")
            pixels = frame.to_ndarray(format="rgb24")
            if keep is not None:
                keep.append(pixels)
            count += 1
    return count


def mallard_load(path: str, width: int | None, height: int | None, folder: str) -> int:
    db = os.path.join(folder, f"load_{time.perf_counter_ns()}.duckdb")
    size = f" WITH (width = {width}, height = {height})" if width else ""
    with engine.connect(db, autocommit=True, progress="off") as con:
        count = con.execute(f"LOAD VIDEO ? INTO frames{size}", [path]).rowcount
    os.remove(db)
    return count


def breakdown(path: str, folder: str, width: int = 224, height: int = 224) -> None:
    """Decoding alone versus DuckDB writing the decoded frames alone (no decoding)."""
    started = time.perf_counter()
    pixels: list[np.ndarray] = []
    pyav_alone(path, width, height, keep=pixels)
    decode = time.perf_counter() - started
    frames = np.stack(pixels)
    batches = [frames_batch(i, [float(j) for j in range(i, min(i + 64, len(frames)))], frames[i:i + 64], path)
               for i in range(0, len(frames), 64)]
    print(f"breakdown at {width}x{height}: decoding alone {decode:.2f} s ({frames.nbytes / 1e6:.0f} MB of pixels)")
    for compression in ("auto", "uncompressed"):
        db = os.path.join(folder, f"raw_{compression}.duckdb")
        started = time.perf_counter()
        con = duckdb.connect(db)
        con.execute(f"SET force_compression = '{compression}'")
        con.execute("SET checkpoint_threshold = '1000 GiB'")
        first = batches[0]  # read by DuckDB's replacement scan, as `batch` below
        con.execute("CREATE TABLE frames AS SELECT * FROM first LIMIT 0")
        for batch in batches:
            con.execute("INSERT INTO frames SELECT * FROM batch")
        inserted = time.perf_counter() - started
        con.close()
        total = time.perf_counter() - started
        print(f"  raw DuckDB insert of the decoded frames, compression {compression:12s}: {inserted:.2f} s + "
              f"checkpoint at close {total - inserted:.2f} s = {total:.2f} s; file {os.path.getsize(db) / 1e6:.0f} MB")
        os.remove(db)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", default="data/vtest.avi")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--breakdown", action="store_true", help="also time decoding and DuckDB's writing apart")
    args = parser.parse_args()
    folder = tempfile.mkdtemp()
    if args.breakdown:
        breakdown(args.video, folder)
    for width, height in ((224, 224), (None, None)):
        label = f"{width}x{height}" if width else "native"
        base, ours = [], []
        for _ in range(args.repeat):
            started = time.perf_counter()
            n = pyav_alone(args.video, width, height)
            base.append(time.perf_counter() - started)
            started = time.perf_counter()
            m = mallard_load(args.video, width, height, folder)
            ours.append(time.perf_counter() - started)
            assert n == m, (n, m)
        b, o = statistics.median(base), statistics.median(ours)
        print(f"{os.path.basename(args.video)} {label:8s} {n} frames: PyAV alone {n / b:7.1f} frames/s ({b:.2f} s)  "
              f"LOAD VIDEO {n / o:7.1f} frames/s ({o:.2f} s)  ratio {b / o:.2f}", flush=True)


if __name__ == "__main__":
    main()
