"""Video stored as its compressed stream versus decoding the file with PyAV alone, side by side.

    .venv/bin/python bench/bench_video_load.py [--video data/vtest.avi] [--repeat 3] [--breakdown]

For each size (224x224 and native) it prints, measured in the same run with the repetitions
alternating, medians:

- load: ``LOAD VIDEO`` (the statement alone, on an open connection to a fresh file) against
  PyAV decoding every frame to an RGB numpy array (same threading, same resize), and the
  growth of the database file (after close) against the source file's size;
- scan: ``SELECT sum(frame_mean(frame)) FROM t`` (every frame decoded) against the same PyAV
  decode, and against PyAV decoding plus the same mean in numpy;
- random access: ``SELECT frame FROM t WHERE frame_id = k`` for 100 random k (frames decoded
  per query, against the GOP), and a sorted read of every 10th frame (frames decoded per
  frame returned);
- with ``--breakdown``, where the scan's time goes: decoding, conversion to RGB, handing the
  frames to DuckDB, frame_mean.

Targets (issue 10): growth <= 1.2x; load >= 5x PyAV at native size and >= 10x at 224x224;
scan >= 0.5 of PyAV at native size and >= 0.8 at 224x224; at most one GOP decoded per random
frame; each frame decoded at most once by a sorted read.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import engine
from engine.video_stream.reading import decode_counters
from engine.video_stream.store import keyframe_index


def pyav_alone(path: str, width: int | None, height: int | None, keep: list[np.ndarray] | None = None,
               mean: bool = False) -> int:
    """Decode every frame to RGB (resized when asked); the count, and the frames in ``keep`` if given."""
    count = 0
    total = 0
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            if width is not None:
                frame = frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA")
            pixels = frame.to_ndarray(format="rgb24")
            if keep is not None:
                keep.append(pixels)
            if mean:
                total += int(np.add.reduce(pixels.reshape(-1), dtype=np.uint32))
            count += 1
    return count


def options(width: int | None, height: int | None) -> str:
    """The WITH clause of a stored size."""
    return f" WITH (width = {width}, height = {height})" if width else ""


def empty_size(folder: str) -> int:
    """The size of a database file holding only Mallard's catalog."""
    db = os.path.join(folder, "empty.duckdb")
    engine.connect(db).close()
    size = os.path.getsize(db)
    os.remove(db)
    return size


def mallard_load(path: str, width: int | None, height: int | None, folder: str) -> tuple[float, int, int]:
    """(seconds of the LOAD VIDEO statement, frames, database file size after close)."""
    db = os.path.join(folder, f"load_{time.perf_counter_ns()}.duckdb")
    with engine.connect(db, autocommit=True, progress="off") as con:
        started = time.perf_counter()
        count = con.execute(f"LOAD VIDEO ? INTO frames{options(width, height)}", [path]).rowcount
        seconds = time.perf_counter() - started
    size = os.path.getsize(db)
    os.remove(db)
    return seconds, count, size


def timed(fn, *args) -> float:
    """Seconds one call takes."""
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


def load_section(path: str, size: tuple, label: str, repeat: int, folder: str) -> None:
    """LOAD VIDEO against PyAV alone, and the database's growth."""
    base, ours, sizes = [], [], []
    for _ in range(repeat):
        base.append(timed(pyav_alone, path, *size))
        seconds, n, db_size = mallard_load(path, *size, folder)
        ours.append(seconds)
        sizes.append(db_size)
    b, o = statistics.median(base), statistics.median(ours)
    growth = (statistics.median(sizes) - empty_size(folder)) / os.path.getsize(path)
    print(f"load  {label:8s} {n} frames: PyAV alone {b:6.2f} s  LOAD VIDEO {o:6.3f} s  ratio {b / o:6.1f}x  "
          f"(target {'10' if size[0] else '5'}x)   database growth {growth:.3f}x the file (target <= 1.2x)",
          flush=True)


def scan_section(con, path: str, size: tuple, label: str, repeat: int) -> None:
    """A full SQL scan against PyAV alone."""
    base, base_mean, ours = [], [], []
    for _ in range(repeat):
        base.append(timed(pyav_alone, path, *size))
        base_mean.append(timed(lambda: pyav_alone(path, *size, mean=True)))
        ours.append(timed(lambda: con.execute("SELECT sum(frame_mean(frame)) FROM t").fetchall()))
    b, bm, o = statistics.median(base), statistics.median(base_mean), statistics.median(ours)
    print(f"scan  {label:8s} SELECT sum(frame_mean(frame)): {o:6.2f} s  PyAV alone {b:6.2f} s  ratio "
          f"{b / o:5.2f} (target {'0.8' if size[0] else '0.5'})   PyAV + the same mean {bm:6.2f} s  ratio "
          f"{bm / o:5.2f}", flush=True)


def access_section(con, label: str, frames: int) -> None:
    """Random and sorted sparse reads, with the frames they decode."""
    stream_id = con.execute("SELECT stream_id FROM mallard.videos").fetchone()[0]
    keys = [r[0] for r in con.execute(keyframe_index(stream_id)).fetchall() if r[5]]
    gop = max(np.diff(keys + [frames]))
    decoded, seconds = [], []
    for k in np.random.default_rng(0).choice(frames, 100, replace=False).tolist():
        before = decode_counters(con)
        started = time.perf_counter()
        con.execute("SELECT frame FROM t WHERE frame_id = ?", [k]).fetchall()
        seconds.append(time.perf_counter() - started)
        decoded.append((decode_counters(con) - before).frames_decoded)
    before = decode_counters(con)
    started = time.perf_counter()
    rows = con.execute("SELECT frame FROM t WHERE frame_id % 10 = 0 ORDER BY frame_id").fetchall()
    sparse = time.perf_counter() - started
    work = decode_counters(con) - before
    print(f"read  {label:8s} 100 random frames: frames decoded per query mean {np.mean(decoded):.1f}, max "
          f"{max(decoded)} (GOP {gop}: target <= {gop}), {np.mean(seconds) * 1000:.1f} ms each;  every 10th frame "
          f"sorted: {len(rows)} returned, {work.frames_decoded} decoded of {frames} "
          f"({work.frames_decoded / len(rows):.2f} decoded per returned; each at most once: "
          f"{'yes' if work.frames_decoded <= frames else 'NO'}), {sparse:.2f} s", flush=True)


def breakdown(con, path: str, size: tuple, label: str) -> None:
    """Where a full scan's time goes, each step timed on its own."""
    from engine.video_stream.reading import stream_reader

    session = con.session
    stream_id = con.execute("SELECT stream_id FROM mallard.videos").fetchone()[0]
    reader = stream_reader(session)
    ids = np.arange(con.execute("SELECT count(*) FROM t").fetchone()[0])
    decode = timed(lambda: [None for _ in reader.decode(session, stream_id, ids)])
    convert = timed(lambda: [None for _ in reader.batches(session, stream_id, ids, 64)])
    udf = timed(lambda: con.execute("SELECT sum(octet_length(frame)) FROM t").fetchall())
    full = timed(lambda: con.execute("SELECT sum(frame_mean(frame)) FROM t").fetchall())
    print(f"  breakdown {label}: decode only {decode:.2f} s; + RGB conversion (engine.iter_frames path) {convert:.2f}"
          f" s; + into DuckDB (octet_length(frame)) {udf:.2f} s; + frame_mean {full:.2f} s", flush=True)


def main() -> None:
    """Run every section at 224x224 and at the native size."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", default="data/vtest.avi")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--breakdown", action="store_true", help="also time the steps of a full scan")
    args = parser.parse_args()
    folder = tempfile.mkdtemp()
    path = os.path.abspath(args.video)
    print(f"{os.path.basename(path)}: {os.path.getsize(path) / 1e6:.1f} MB; medians of {args.repeat}", flush=True)
    for size in ((224, 224), (None, None)):
        label = f"{size[0]}x{size[1]}" if size[0] else "native"
        load_section(path, size, label, args.repeat, folder)
        with engine.connect(os.path.join(folder, f"scan_{label}.duckdb"), autocommit=True, progress="off") as con:
            frames = con.execute(f"LOAD VIDEO ? INTO t{options(*size)}", [path]).rowcount
            con.execute("SELECT sum(frame_mean(frame)) FROM t").fetchall()  # warm: memory, decoders, caches
            scan_section(con, path, size, label, args.repeat)
            access_section(con, label, frames)
            if args.breakdown:
                breakdown(con, path, size, label)


if __name__ == "__main__":
    main()
