"""Frames decoded on read from the stored stream: exact pixels on every clip and size, the
decoding work each query shape costs (counted), the frames reader of the inference scan,
and a long video read with flat memory."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import av
import numpy as np
import pytest
from sqlglot import exp

import engine
from engine.inference.frames import PIXEL_KEYFRAME_INTERVAL, FramesTable
from engine.video_stream.decoder import LOST_AFTER, WINDOW_PAST
from engine.video_stream.reading import decode_counters, stream_reader
from engine.video_stream.store import keyframe_index
from tests.conftest import ROOT, data_file
from tests.video_clips import LONG_COPIES, long_video, pyav_frames  # noqa: F401  (long_video: a fixture)

CLIPS = ["carphone.mp4", "bikes.mp4", "vtest.avi"]


def pyav_iter(path, size):
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if size is not None:
                frame = frame.reformat(width=size, height=size, format="rgb24", interpolation="AREA")
            yield frame.to_ndarray(format="rgb24")


def cost(con, query, params=None):
    """(rows, the decoding work the query did)."""
    before = decode_counters(con)
    rows = con.execute(query, params).fetchall()
    return rows, decode_counters(con) - before


@pytest.mark.parametrize("size", [None, 224], ids=["native", "224x224"])
@pytest.mark.parametrize("clip", CLIPS)
def test_every_frame_is_exactly_what_pyav_gives(con, clip, size):
    """SQL reads in order (a query per 100 frames) and at random, byte for byte against PyAV."""
    path = data_file(clip)
    options = f" WITH (width = {size}, height = {size})" if size else ""
    n = con.execute(f"LOAD VIDEO '{path}' INTO t{options}").rowcount
    reference = pyav_iter(path, size)
    kept = {}
    picks = set(np.random.default_rng(len(clip)).choice(n, 6, replace=False).tolist())
    for start in range(0, n, 100):
        rows = con.execute("SELECT frame_id, frame, height, width FROM t WHERE frame_id BETWEEN ? AND ? ORDER BY"
                           " frame_id", [start, start + 99]).fetchall()
        for frame_id, blob, height, width in rows:
            expected = next(reference)
            assert np.array_equal(np.frombuffer(blob, np.uint8).reshape(height, width, 3), expected), frame_id
            if frame_id in picks:
                kept[frame_id] = expected
    assert next(reference, None) is None
    for frame_id in sorted(kept, reverse=True):  # backwards: every read starts afresh at a keyframe
        blob = con.execute("SELECT frame FROM t WHERE frame_id = ?", [frame_id]).fetchone()[0]
        assert blob == kept[frame_id].tobytes(), frame_id
    assert np.array_equal(engine.frames_to_numpy(con, "t", frame_ids=sorted(kept)), np.stack([kept[k] for k in
                                                                                          sorted(kept)]))


def test_a_reused_frame_buffer_gives_every_frame_exactly(con, monkeypatch):
    """The SQL function reuses its frame buffer across calls of one shape (kept for native-size
    vectors; here for any size): every frame still byte for byte PyAV's, and the buffer is reused."""
    from engine.video_stream import reading

    made = []
    fresh = reading._frame_buffer
    monkeypatch.setattr(reading, "REPEAT_BYTES", -1)     # keep buffers of any size, no answers
    monkeypatch.setattr(reading, "_frame_buffer", lambda *shape: made.append(shape) or fresh(*shape))
    path = data_file("carphone.mp4")
    con.execute(f"LOAD VIDEO '{path}' INTO t")
    reference = pyav_iter(path, None)
    for start in range(0, 120, 20):
        rows = con.execute("SELECT frame, height, width FROM t WHERE frame_id BETWEEN ? AND ? ORDER BY frame_id",
                           [start, start + 19]).fetchall()
        for blob, height, width in rows:
            assert np.array_equal(np.frombuffer(blob, np.uint8).reshape(height, width, 3), next(reference))
    assert len(rows) == 20 and 1 <= len(made) < 6, made


def test_frame_functions_over_a_stream(con):
    path = data_file("carphone.mp4")
    con.execute(f"LOAD VIDEO '{path}' INTO clip WITH (limit = 30)")
    frames = pyav_frames(path, stop=30).astype(np.int16)
    rows = con.execute("SELECT frame_mean(frame), frame_diff(frame, lag(frame) OVER (ORDER BY frame_id)) FROM clip"
                       " ORDER BY frame_id").fetchall()
    assert [r[0] for r in rows] == pytest.approx([f.mean() for f in frames], abs=1e-9)
    assert rows[0][1] is None
    assert [r[1] for r in rows[1:]] == pytest.approx([np.abs(b - a).mean() for a, b in zip(frames, frames[1:])],
                                                     abs=1e-9)


# What each query shape costs ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_db(tmp_path_factory, long_video):
    path = tmp_path_factory.mktemp("longdb") / "long.duckdb"
    with engine.connect(path, progress="off") as con:
        con.execute("LOAD VIDEO ? INTO long WITH (width = 96, height = 72)", [str(long_video)])
    return path


@pytest.fixture
def long_con(long_db):
    connection = engine.connect(long_db, read_only=True, progress="off")
    try:
        yield connection
    finally:
        connection.close()


def test_limit_and_between_read_only_the_packets_they_need(long_con):
    rows, work = cost(long_con, "SELECT frame_id, frame FROM long LIMIT 3")
    assert len(rows) == 3 and work.frames_returned == 3
    assert work.packets_read <= 3 + 8 + 8 and work.frames_decoded <= 3 + 8
    rows, work = cost(long_con, "SELECT frame FROM long WHERE frame_id BETWEEN 2600 AND 2610")
    assert len(rows) == 11 and work.decoders_opened == 1
    stream_id = long_con.execute("SELECT stream_id FROM mallard.videos").fetchone()[0]
    keyframe = max(r[0] for r in long_con.execute(keyframe_index(stream_id)).fetchall() if r[5] and r[0] <= 2600)
    assert keyframe == 3 * 795  # vtest.avi's keyframes are 0, 250, 500, 750 in each copy
    needed = 2610 - keyframe + 1
    assert needed <= work.packets_read <= needed + 8 and needed <= work.frames_decoded <= needed + 8
    assert work.packet_bytes < 0.1 * long_con.execute("SELECT packet_bytes FROM mallard.videos"
                                                       ).fetchone()[0]
    rows, work = cost(long_con, "SELECT frame FROM long WHERE frame_id BETWEEN 2611 AND 2615")  # decoder kept
    assert len(rows) == 5 and work.decoders_opened == 0 and work.frames_decoded <= 5 + 8


def test_random_access_costs_at_most_one_gop(long_con):
    n = long_con.execute("SELECT count(*) FROM long").fetchone()[0]
    for frame_id in np.random.default_rng(3).choice(n, 12, replace=False).tolist():
        rows, work = cost(long_con, "SELECT frame FROM long WHERE frame_id = ?", [frame_id])
        assert len(rows) == 1 and work.frames_returned == 1
        assert work.frames_decoded <= 250 + 8, (frame_id, work)
        assert work.packets_read <= 250 + 8, (frame_id, work)


def test_a_sorted_sparse_read_decodes_each_frame_at_most_once(long_con):
    n = long_con.execute("SELECT count(*) FROM long").fetchone()[0]
    rows, work = cost(long_con, "SELECT frame_id, frame FROM long WHERE frame_id % 10 = 0 ORDER BY frame_id")
    assert len(rows) == -(-n // 10) and work.frames_returned == len(rows)  # DuckDB filters before decoding
    assert work.frames_decoded <= n and work.packets_read <= n + WINDOW_PAST * work.decoders_opened
    rows, work = cost(long_con, "SELECT frame FROM long ORDER BY frame_id DESC LIMIT 2")
    assert len(rows) == 2 and work.frames_returned == 2 and work.frames_decoded <= 250 + 8
    rows, work = cost(long_con, "SELECT frame_id, ts FROM long WHERE ts > 100")  # no frame column: no decoding
    assert len(rows) == n - 1001 and work.frames_decoded == 0


def test_the_counters_see_a_lost_frame_as_lost(con, tmp_path):
    """A frame whose packet is garbage is named; the frames around it still come out exactly."""
    data = bytearray(data_file("bikes.mp4").read_bytes())
    data[250_000:260_000] = bytes(10_000)
    path = tmp_path / "zeroed.mp4"
    path.write_bytes(bytes(data))
    con.execute(f"LOAD VIDEO '{path}' INTO bikes")
    lost = []
    for frame_id in range(110, 135):
        try:
            con.execute("SELECT frame FROM bikes WHERE frame_id = ?", [frame_id]).fetchall()
        except engine.DataError as e:
            assert f"frame {frame_id} of bikes (zeroed.mp4)" in str(e)
            lost.append(frame_id)
    assert lost and len(lost) < 25
    assert LOST_AFTER >= 16
    before = pyav_frames(path, start=100, stop=110)
    assert np.array_equal(engine.frames_to_numpy(con, "bikes", where="frame_id BETWEEN 100 AND 109"), before)


# The frames reader of the inference scan ------------------------------------------------------------


def test_the_frames_reader_decodes_from_packets_with_keyframe_flags(con):
    path = data_file("vtest.avi")
    con.execute(f"LOAD VIDEO '{path}' INTO traffic WITH (width = 64, height = 48)")
    table = FramesTable.resolve(con.session, exp.to_table("traffic"), "frame", "m")
    assert table.storage == "stream" and table.video_key is not None
    selection = table.select(con.session, exp.condition("frame_id BETWEEN 240 AND 509"))
    before = decode_counters(con)
    batches = list(table.frame_batches(con.session, selection.frame_ids, 48, 64, batch_size=32))
    work = decode_counters(con) - before
    assert [len(b) for b in batches] == [32] * 8 + [14]
    ids = np.concatenate([b.frame_ids for b in batches])
    assert ids.tolist() == list(range(240, 510))
    assert ids[np.concatenate([b.keyframes for b in batches])].tolist() == [250, 500]
    reference = pyav_frames(path, 64, 48, start=240, stop=510)
    assert np.array_equal(np.concatenate([b.frames for b in batches]), reference)
    assert work.frames_returned == 270 and work.packets_read <= 510 + 8  # from keyframe 0, once
    assert table.keyframes(con.session, np.arange(795)).nonzero()[0].tolist() == [0, 250, 500, 750]
    pair = table.read(con.session, np.array([260, 261]), 48, 64)
    assert np.array_equal(pair, reference[20:22])


def test_the_frames_reader_of_a_pixels_table(con):
    con.execute(f"LOAD VIDEO '{data_file('carphone.mp4')}' INTO clip WITH (store = 'pixels', limit = 8)")
    table = FramesTable.resolve(con.session, exp.to_table("clip"), "frame", "m")
    assert table.storage == "pixels" and table.stream_id is None
    batches = list(table.frame_batches(con.session, np.arange(8), 144, 176, batch_size=5))
    assert [b.keyframes.tolist() for b in batches] == [[True] + [False] * 4, [False] * 3]
    assert PIXEL_KEYFRAME_INTERVAL == 250
    assert np.array_equal(np.concatenate([b.frames for b in batches]), pyav_frames(data_file("carphone.mp4"),
                                                                                  stop=8))


def test_sql_before_commit_reads_held_packets_and_lets_them_go_after(db_path):
    con = engine.connect(db_path, progress="off")
    con.execute(f"LOAD VIDEO '{data_file('bikes.mp4')}' INTO bikes WITH (width = 80, height = 34)")
    reader = stream_reader(con.session)
    stream_id = con.execute("SELECT stream_id FROM mallard.videos").fetchone()[0]
    assert stream_id in reader.held
    reference = pyav_frames(data_file("bikes.mp4"), 80, 34, start=200, stop=203)
    blobs = [r[0] for r in con.execute("SELECT frame FROM bikes WHERE frame_id BETWEEN 200 AND 202").fetchall()]
    assert [np.frombuffer(b, np.uint8).reshape(34, 80, 3).tolist() for b in blobs] == reference.tolist()
    con.commit()
    con.execute("SELECT octet_length(frame) FROM bikes WHERE frame_id = 7").fetchall()
    assert stream_id not in reader.held
    con.close()


# A long video ----------------------------------------------------------------------------------------


def test_a_long_video_loads_scans_and_runs_a_model_with_flat_memory(tmp_path, long_video):
    """In a process of its own (so its memory is its own): RSS while scanning stays flat."""
    script = textwrap.dedent(f"""
        import json, os, numpy as np, engine
        from engine.video_stream.reading import decode_counters

        def rss():
            return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

        con = engine.connect({str(tmp_path / "long.duckdb")!r}, autocommit=True, progress="off")
        out = {{"start": rss()}}
        con.execute("LOAD VIDEO ? INTO long WITH (width = 96, height = 72)", [{str(long_video)!r}])
        out["frames"] = con.execute("SELECT count(*) FROM long").fetchone()[0]
        out["loaded"] = rss()
        marks, total = [], 0.0
        for i, (ids, frames) in enumerate(engine.iter_frames(con, "long", where="frame_id % 4 = 0", batch_size=16)):
            total += len(ids)
            if i % 6 == 0:
                marks.append(rss())
        out["scan"] = marks
        out["scanned"] = total
        out["sql_mean"] = con.execute("SELECT avg(frame_mean(frame)) FROM long WHERE frame_id < 300").fetchone()[0]
        out["iter_mean"] = float(np.mean([f.mean() for _, fs in engine.iter_frames(
            con, "long", where="frame_id < 300") for f in fs]))
        con.execute("CREATE MODEL mobilenet FROM ? WITH (architecture = 'mobilenet_v2')",
                    [{str(data_file("mobilenet_v2.pth"))!r}])
        before = decode_counters(con)
        labels = con.execute("SELECT frame_id, mobilenet(frame).class_id FROM long WHERE frame_id % 795 = 10"
                             " ORDER BY frame_id").fetchall()
        out["model_frames"] = [r[0] for r in labels]
        out["model_returned"] = (decode_counters(con) - before).frames_returned
        out["end"] = rss()
        print(json.dumps(out))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["frames"] == 795 * LONG_COPIES
    scan = np.array(out["scan"]) / 2**20
    assert out["scanned"] == out["frames"] // 4 + 1 and len(scan) > 8
    assert scan[2:].max() - scan[1] < 40, scan  # MiB: decoding a batch at a time, nothing piles up
    assert out["sql_mean"] == pytest.approx(out["iter_mean"], rel=1e-12)
    assert out["model_frames"] == list(range(10, out["frames"], 795)) and out["model_returned"] == len(
        out["model_frames"])
