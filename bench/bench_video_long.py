"""A synthetic hour of real video: vtest.avi remuxed end to end 45 times (35,775 frames, no
re-encoding), loaded as its compressed stream, scanned, and run through a model over a
sample, with the process's memory (RSS) printed as it goes.

    .venv/bin/python bench/bench_video_long.py [--copies 45] [--size 224] [--sample 1000]

Prints: the remux time; LOAD VIDEO's time against PyAV decoding the first copy (scaled to
the hour: decoding the whole hour with PyAV alone would take as long again as the scan);
the database's growth against the file; a scan of every frame through ``engine.iter_frames``
and one through SQL (``sum(frame_mean(frame))``), each with RSS at 10 points (flat: decoding
holds one batch, SQL one DuckDB vector of 2048 frames); ``LIMIT 10`` and ``WHERE frame_id
BETWEEN`` with the packets they read against all the packets; and MobileNetV2 over every
``--sample``-th frame through SQL, with the frames it decoded.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import engine  # noqa: E402
from engine.video_stream.reading import decode_counters  # noqa: E402
from engine.video_stream.synthetic import concatenate  # noqa: E402


def rss_mb() -> float:
    """The process's resident memory, MiB."""
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def duckdb_mb(con: engine.Connection) -> float:
    """Memory DuckDB's buffer manager holds (mostly cached blocks of the database: evictable)."""
    return con.duckdb_connection.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchone()[0] / 2**20


def peak_mb() -> float:
    """The process's peak resident memory (VmHWM), MiB."""
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pyav_seconds(path: str, size: int, frames: int) -> float:
    """PyAV alone decoding ``frames`` frames of ``path`` to RGB at size x size."""
    started = time.perf_counter()
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for index, frame in enumerate(container.decode(stream)):
            if index >= frames:
                break
            frame.reformat(width=size, height=size, format="rgb24", interpolation="AREA").to_ndarray(format="rgb24")
    return time.perf_counter() - started


def main() -> None:
    """Build the hour, load it, then scan, query and run the model."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=45)
    parser.add_argument("--size", type=int, default=224, help="stored frame size (size x size)")
    parser.add_argument("--sample", type=int, default=1000, help="the model runs over every n-th frame")
    parser.add_argument("--no-sql-scan", action="store_true")
    args = parser.parse_args()
    folder = tempfile.mkdtemp()
    source = str(ROOT / "data" / "vtest.avi")
    hour = os.path.join(folder, f"vtest_x{args.copies}.avi")
    started = time.perf_counter()
    packets = concatenate(source, hour, args.copies)
    print(f"remux: {packets} packets, {os.path.getsize(hour) / 1e6:.0f} MB in {time.perf_counter() - started:.2f} s",
          flush=True)
    db = os.path.join(folder, "hour.duckdb")
    engine.connect(db).close()
    empty = os.path.getsize(db)
    con = engine.connect(db, autocommit=True, progress="off")
    print(f"RSS after connect {rss_mb():.0f} MB", flush=True)
    started = time.perf_counter()
    frames = con.execute(f"LOAD VIDEO ? INTO hour WITH (width = {args.size}, height = {args.size})", [hour]).rowcount
    load = time.perf_counter() - started
    pyav_copy = pyav_seconds(source, args.size, 795)
    print(f"load: {frames} frames in {load:.2f} s; PyAV alone decodes one copy in {pyav_copy:.2f} s, so the hour in "
          f"about {pyav_copy * args.copies:.0f} s: ratio {pyav_copy * args.copies / load:.0f}x; RSS {rss_mb():.0f} MB, "
          f"peak {peak_mb():.0f} MB", flush=True)
    con.close()
    print(f"database growth {(os.path.getsize(db) - empty) / os.path.getsize(hour):.3f}x the file", flush=True)
    con = engine.connect(db, autocommit=True, progress="off")
    scan_iter(con, frames)
    if not args.no_sql_scan:
        scan_sql(con, frames)
    touched(con, packets, frames)
    model(con, args.sample)
    con.close()


def scan_iter(con: engine.Connection, frames: int) -> None:
    """Every frame through engine.iter_frames, RSS at each tenth."""
    marks, cached = [], []
    started = time.perf_counter()
    seen = 0
    for ids, batch in engine.iter_frames(con, "hour", batch_size=64):
        seen += len(ids)
        if len(marks) < seen * 10 // frames:
            marks.append(rss_mb())
            cached.append(duckdb_mb(con))
    seconds = time.perf_counter() - started
    print(f"scan (engine.iter_frames, batches of 64): {seen} frames in {seconds:.1f} s ({seen / seconds:.0f} frames/s);"
          f" RSS at each tenth: {' '.join(f'{m:.0f}' for m in marks)} MB, of which DuckDB's buffer manager (the"
          f" packets' blocks it caches): {' '.join(f'{m:.0f}' for m in cached)} MB", flush=True)


def scan_sql(con: engine.Connection, frames: int) -> None:
    """Every frame through SQL, a tenth per query, RSS after each."""
    marks, cached = [], []
    started = time.perf_counter()
    for start in range(0, frames, frames // 10 + 1):
        con.execute("SELECT sum(frame_mean(frame)) FROM hour WHERE frame_id BETWEEN ? AND ?",
                    [start, start + frames // 10]).fetchall()
        marks.append(rss_mb())
        cached.append(duckdb_mb(con))
    seconds = time.perf_counter() - started
    print(f"scan (SQL sum(frame_mean(frame)), a tenth per query): {seconds:.1f} s; RSS after each: "
          f"{' '.join(f'{m:.0f}' for m in marks)} MB (DuckDB's buffer manager {' '.join(f'{m:.0f}' for m in cached)}"
          f" MB); peak {peak_mb():.0f} MB", flush=True)


def touched(con: engine.Connection, packets: int, frames: int) -> None:
    """Packets read and frames decoded by LIMIT, BETWEEN and a point query."""
    middle, late = frames * 5 // 9, frames * 6 // 7
    for query in ("SELECT frame_id, frame FROM hour LIMIT 10",
                  f"SELECT frame_id, frame FROM hour WHERE frame_id BETWEEN {middle} AND {middle + 9}",
                  f"SELECT frame FROM hour WHERE frame_id = {late}"):
        before = decode_counters(con)
        started = time.perf_counter()
        rows = con.execute(query).fetchall()
        work = decode_counters(con) - before
        print(f"{query}: {len(rows)} rows in {time.perf_counter() - started:.3f} s; read {work.packets_read} of "
              f"{packets} packets ({work.packet_bytes / 1e6:.2f} MB), decoded {work.frames_decoded} frames", flush=True)


def model(con: engine.Connection, sample: int) -> None:
    """MobileNetV2 over a sample of the frames, through SQL."""
    con.execute("CREATE MODEL mobilenet FROM ? WITH (architecture = 'mobilenet_v2')",
                [str(ROOT / "data" / "mobilenet_v2.pth")])
    before = decode_counters(con)
    started = time.perf_counter()
    rows = con.execute(f"SELECT frame_id, mobilenet(frame).class_id FROM hour WHERE frame_id % {sample} = 0"
                       ).fetchall()
    work = decode_counters(con) - before
    print(f"model over every {sample}th frame: {len(rows)} frames in {time.perf_counter() - started:.1f} s; decoded "
          f"{work.frames_decoded} frames ({work.decoders_opened} runs); RSS {rss_mb():.0f} MB, peak {peak_mb():.0f} MB",
          flush=True)


if __name__ == "__main__":
    main()
