"""LOAD VIDEO throughput versus decoding the same file with PyAV alone, side by side in one run.

    .venv/bin/python bench/bench_video_load.py [--video data/vtest.avi] [--repeat 3]

The baseline decodes every frame to an RGB numpy array with PyAV (same thread settings,
same resize) and keeps nothing.  Mallard decodes the same way and stores every frame in a
fresh DuckDB file, in one committed transaction.  Prints frames/s of each and the ratio
Mallard / PyAV (target: >= 0.8).
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import av

import engine


def pyav_alone(path: str, width: int | None, height: int | None) -> int:
    count = 0
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            if width is not None:
                frame = frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA")
            frame.to_ndarray(format="rgb24")
            count += 1
    return count


def mallard_load(path: str, width: int | None, height: int | None, folder: str) -> int:
    db = os.path.join(folder, f"load_{time.perf_counter_ns()}.duckdb")
    size = f" WITH (width = {width}, height = {height})" if width else ""
    with engine.connect(db, autocommit=True, progress="off") as con:
        count = con.execute(f"LOAD VIDEO ? INTO frames{size}", [path]).rowcount
    os.remove(db)
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", default="data/vtest.avi")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    folder = tempfile.mkdtemp()
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
