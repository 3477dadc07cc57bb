"""LOAD VIDEO on real clips: both storage kinds, options, errors, atomicity (also under SIGKILL),
the catalog migration of databases made before video was stored as a stream."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import av
import duckdb
import numpy as np
import pytest

import engine
from engine.system_catalog import CATALOG_VERSION, drop_abandoned_loads, migrations
from engine.video_stream.store import keyframe_index
from tests.conftest import ROOT, data_file
from tests.video_clips import long_video, pyav_frames  # noqa: F401  (long_video: a fixture)


def table_names(con, schema="main"):
    names = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = ?",
                                       [schema]).fetchall()}
    assert not [n for n in names if n.startswith("__mallard_loading_")], names  # no staging table, ever
    return names


def nothing_stored(con):
    """No frames table, catalog row, stream or packets table is left."""
    assert "clip" not in table_names(con)
    assert not [n for n in table_names(con, "mallard") if n.startswith("video_packets_")]
    assert con.execute("SELECT count(*) FROM mallard.videos").fetchone() == (0,)
    return True


def test_frames_round_trip_exactly_to_pyav_arrays(con):
    path = data_file("carphone.mp4")
    cur = con.execute("LOAD VIDEO ? INTO clip", [str(path)])  # the path bound as a parameter
    assert cur.rowcount == 120 and "120 frames" in cur.message and "compressed stream" in cur.message
    frames = engine.frames_to_numpy(con, "clip")
    reference = pyav_frames(path)
    assert frames.shape == (120, 144, 176, 3) and frames.dtype == np.uint8
    assert np.array_equal(frames, reference)
    rows = con.execute("SELECT frame_id, ts, height, width, octet_length(frame), source FROM clip ORDER BY frame_id")\
        .fetchall()
    assert [r[0] for r in rows] == list(range(120))
    assert all(b[1] > a[1] for a, b in zip(rows, rows[1:]))  # timestamps increase
    assert rows[30][1] == pytest.approx(30 * 1001 / 30000, abs=1e-9)
    assert {r[2:] for r in rows} == {(144, 176, 144 * 176 * 3, str(path))}
    assert [d[0] for d in con.execute("SELECT * FROM clip LIMIT 1").description] == [
        "frame_id", "ts", "frame", "height", "width", "source"]


def test_catalog_records_the_load_and_its_storage(con):
    path = data_file("carphone.mp4")
    con.execute(f"LOAD VIDEO '{path}' INTO clip WITH (every = 4)")
    row = con.execute("SELECT table_name, source, codec, source_width, source_height, width, height, every,"
                      " frame_count, pixel_format, length(source_sha256), storage, stream_id IS NOT NULL"
                      " FROM mallard.videos").fetchone()
    assert row == ("clip", str(path), "h264", 176, 144, 176, 144, 4, 30, "rgb24", 64, "stream", True)
    stream_id, packets, stored, decoder = con.execute(
        "SELECT stream_id, packet_count, packet_bytes, decoder FROM mallard.videos").fetchone()
    assert packets == 120 and json.loads(decoder)["codec_tag"] == "avc1"
    assert abs(stored - os.path.getsize(path)) < 0.01 * os.path.getsize(path)  # the packets are the file
    index = con.execute(keyframe_index(stream_id)).fetchall()
    with av.open(str(path)) as container:
        pts = [p.pts for p in container.demux(video=0) if p.size]
    shown = np.argsort(pts, kind="stable")  # B-frames: the n-th frame shown is not the n-th packet
    assert [r[0] for r in index] == list(range(30)) and [r[3] for r in index] == shown[::4].tolist()
    assert [r[5] for r in index].count(True) == 1 and {r[6] for r in index} == {0}  # one keyframe, packet 0


def test_resize_every_and_limit(con):
    path = data_file("vtest.avi")
    con.execute(f"LOAD VIDEO '{path}' INTO small WITH (width = 224, height = 224, every = 3, limit = 10)")
    frames = engine.frames_to_numpy(con, "small")
    reference = pyav_frames(path, 224, 224, stop=30)
    assert frames.shape == (10, 224, 224, 3)
    assert np.array_equal(frames, reference[0:30:3])
    assert con.execute("SELECT max(ts) FROM small").fetchone() == (2.7,)
    con.execute(f"LOAD VIDEO '{path}' INTO half WITH (width = 384, limit = 2)")
    assert engine.frames_to_numpy(con, "half").shape == (2, 288, 384, 3)  # aspect ratio kept


def test_native_size_real_surveillance_frames(con):
    path = data_file("vtest.avi")
    con.execute(f"LOAD VIDEO '{path}' INTO traffic WITH (limit = 12)")
    frames = engine.frames_to_numpy(con, "traffic", where="frame_id >= 10")
    assert np.array_equal(frames, pyav_frames(path, start=10, stop=12))
    ids = [i for i, _ in engine.iter_frames(con, "traffic", frame_ids=[3, 7], batch_size=1)]
    assert [list(i) for i in ids] == [[3], [7]]


def test_moving_camera_clip(con):
    con.execute(f"LOAD VIDEO '{data_file('bikes.mp4')}' INTO bikes WITH (limit = 25)")
    assert con.execute("SELECT count(*), min(width), min(height) FROM bikes").fetchone() == (25, 640, 272)


def test_pixels_storage_keeps_the_materialized_form(con):
    path = data_file("carphone.mp4")
    cur = con.execute(f"LOAD VIDEO '{path}' INTO clip WITH (store = 'pixels', width = 88, every = 2, limit = 20)")
    assert "as pixels" in cur.message
    frames = engine.frames_to_numpy(con, "clip")
    assert np.array_equal(frames, pyav_frames(path, 88, 72, stop=40)[0:40:2])
    assert con.execute("SELECT storage, stream_id FROM mallard.videos").fetchone() == ("pixels", None)
    generated = con.execute("SELECT count(*) FROM duckdb_columns() WHERE table_name = 'clip' AND is_generated")
    assert generated.fetchone() == (0,)  # the frame column holds the bytes


def test_synthetic_frames_from_numpy(con):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(5, 7, 9, 3), dtype=np.uint8)
    assert engine.frames_from_numpy(con, "synthetic", pixels, fps=5) == 5
    assert np.array_equal(engine.frames_to_numpy(con, "synthetic"), pixels)
    assert con.execute("SELECT max(ts), any_value(codec), any_value(storage) FROM synthetic, mallard.videos "
                       "WHERE table_name = 'synthetic'").fetchone() == (0.8, "rawvideo", "pixels")
    with pytest.raises(engine.DataError, match="uint8"):
        engine.frames_from_numpy(con, "bad", pixels.astype(np.float32))


def test_the_database_no_longer_needs_the_file(db_path, tmp_path):
    copy = tmp_path / "copy.mp4"
    copy.write_bytes(data_file("bikes.mp4").read_bytes())
    with engine.connect(db_path, progress="off") as con:
        con.execute("LOAD VIDEO ? INTO bikes WITH (width = 160, height = 68)", [str(copy)])
    copy.unlink()
    with engine.connect(db_path, read_only=True) as con:
        frames = engine.frames_to_numpy(con, "bikes", where="frame_id BETWEEN 100 AND 140")
        assert np.array_equal(frames, pyav_frames(data_file("bikes.mp4"), 160, 68, start=100, stop=141))
        mean = con.execute("SELECT frame_mean(frame) FROM bikes WHERE frame_id = 120").fetchone()[0]
        assert mean == pytest.approx(frames[20].mean(), abs=1e-9)


# Bad input: a clear error, nothing written ----------------------------------------------------------


def _audio_only(path):
    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=8000)
        stream.layout = "mono"
        samples = (np.sin(np.arange(8000) / 10) * 3000).astype(np.int16)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return path


@pytest.mark.parametrize(("make_path", "message"), [
    (lambda tmp: tmp / "missing.avi", "not found"),
    (lambda tmp: tmp, "found a directory"),
    (lambda tmp: "/dev/null", "found a character device"),
    (lambda tmp: _write(tmp / "empty.mp4", b""), "found an empty file"),
    (lambda tmp: _audio_only(tmp / "tone.wav"), r"expected a video stream in .*tone.wav, found none \(streams: audio\)"),
    (lambda tmp: data_file("spam_collection.tsv"), "could not open"),
    (lambda tmp: _write(tmp / "noise.mp4", np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8)
                        .tobytes()), "expected a video"),
    (lambda tmp: _write(tmp / "truncated.mp4", data_file("carphone.mp4").read_bytes()[:300_000]), "could not open"),
])
@pytest.mark.parametrize("store", ["stream", "pixels"])
def test_unreadable_files_raise_data_error_and_write_nothing(con, tmp_path, make_path, message, store):
    path = make_path(tmp_path)
    with pytest.raises(engine.DataError, match=message):
        con.execute(f"LOAD VIDEO '{path}' INTO clip WITH (store = '{store}')")
    assert nothing_stored(con)


def test_a_damaged_clip_loads_and_reading_a_damaged_frame_names_it(con, tmp_path):
    """Bytes overwritten in the middle of carphone.mp4: the packets are all there, some are garbage."""
    data = bytearray(data_file("carphone.mp4").read_bytes())
    data[300_000:320_000] = np.random.default_rng(1).integers(0, 256, 20_000, dtype=np.uint8).tobytes()
    path = _write(tmp_path / "damaged.mp4", bytes(data))
    assert con.execute(f"LOAD VIDEO '{path}' INTO clip").rowcount == 120
    healthy = engine.frames_to_numpy(con, "clip", where="frame_id < 50")
    assert np.array_equal(healthy, pyav_frames(data_file("carphone.mp4"), stop=50))
    with pytest.raises(engine.DataError, match=r"frame (5\d|6\d) of clip \(damaged.mp4\) could not be decoded"):
        con.execute("SELECT sum(frame_mean(frame)) FROM clip").fetchall()
    with pytest.raises(engine.DataError, match=r"frame (5\d|6\d) of clip"):
        engine.frames_to_numpy(con, "clip")
    failed = []
    for frame_id in range(55, 70):
        try:
            con.execute("SELECT frame FROM clip WHERE frame_id = ?", [frame_id]).fetchall()
        except engine.DataError as e:
            assert f"frame {frame_id} of clip" in str(e)
            failed.append(frame_id)
    assert 0 < len(failed) < 15
    assert con.execute("SELECT octet_length(frame) FROM clip WHERE frame_id = 119").fetchone() == (76032,)


def test_a_truncated_avi_loads_what_it_holds(con, tmp_path):
    data = data_file("vtest.avi").read_bytes()
    path = _write(tmp_path / "half.avi", data[:len(data) // 2])
    cur = con.execute(f"LOAD VIDEO '{path}' INTO clip WITH (width = 96, height = 72)")
    assert 350 < cur.rowcount < 400 and "the file may be truncated" in cur.message
    last = cur.rowcount - 1
    reference = pyav_frames(path, 96, 72, start=last - 5, stop=last)  # PyAV's frames of the truncated file
    assert np.array_equal(engine.frames_to_numpy(con, "clip", where=f"frame_id >= {last - 5} AND frame_id < {last}"),
                          reference)
    stream_id = con.execute("SELECT stream_id FROM mallard.videos").fetchone()[0]
    assert [r[0] for r in con.execute(keyframe_index(stream_id)).fetchall() if r[5]] == [0, 250]
    with pytest.raises(engine.DataError, match=f"frame {last} of clip .*corrupt"):  # its last packet is cut
        con.execute("SELECT frame FROM clip WHERE frame_id = ?", [last]).fetchall()


def test_existing_table_needs_or_replace_and_replacing_frees_the_stream(con):
    path = data_file("carphone.mp4")
    con.execute("CREATE TABLE clip AS SELECT 1 AS keep_me")
    with pytest.raises(engine.ProgrammingError, match="already exists; use LOAD OR REPLACE VIDEO"):
        con.execute(f"LOAD VIDEO '{path}' INTO clip")
    assert con.execute("SELECT * FROM clip").fetchall() == [(1,)]
    con.execute(f"LOAD OR REPLACE VIDEO '{path}' INTO clip WITH (limit = 3)")
    con.execute(f"LOAD OR REPLACE VIDEO '{path}' INTO clip WITH (limit = 4)")
    assert con.execute("SELECT count(*) FROM clip").fetchone() == (4,)
    assert con.execute("SELECT frame_count FROM mallard.videos").fetchall() == [(4,)]
    assert len([n for n in table_names(con, "mallard") if n.startswith("video_packets_")]) == 1
    con.execute(f"LOAD OR REPLACE VIDEO '{path}' INTO clip WITH (limit = 2, store = 'pixels')")
    assert not [n for n in table_names(con, "mallard") if n.startswith("video_packets_")]
    assert con.execute("SELECT storage, stream_id FROM mallard.videos").fetchall() == [("pixels", None)]


@pytest.mark.parametrize(("options", "error", "message"), [
    ("WITH (speed = 2)", engine.ProgrammingError, "unknown LOAD VIDEO option 'speed'"),
    ("WITH (every = 0)", engine.DataError, "expected a positive whole number, found 0"),
    ("WITH (width = 'big')", engine.DataError, "found 'big'"),
    ("WITH (width = 100000)", engine.DataError, "option width: expected a whole number in \\[1, 16384\\], found 100000"),
    ("WITH (height = 100000, store = 'pixels')", engine.DataError, "option height: expected .* found 100000"),
    ("WITH (store = 'frames')", engine.DataError, "option store: expected one of 'stream', 'pixels'"),
    ("WITH (batch_frames = 8)", engine.ProgrammingError, "batch_frames applies to store = 'pixels' only"),
])
def test_bad_options_blame_the_option(con, options, error, message):
    with pytest.raises(error, match=message):
        con.execute(f"LOAD VIDEO '{data_file('carphone.mp4')}' INTO clip {options}")
    assert nothing_stored(con)


def test_read_only_database_refuses_load(db_path):
    engine.connect(db_path).close()
    with engine.connect(db_path, read_only=True) as con, pytest.raises(engine.ProgrammingError, match="read-only"):
        con.execute(f"LOAD VIDEO '{data_file('carphone.mp4')}' INTO clip")


# Transactions ------------------------------------------------------------------------------------------


def test_load_then_select_in_one_transaction_and_rollback(db_path):
    con = engine.connect(db_path, progress="off")  # PEP 249 manual commit
    path = data_file("carphone.mp4")
    con.execute(f"LOAD VIDEO '{path}' INTO clip WITH (limit = 40)")
    reference = pyav_frames(path, stop=40)
    blob = con.execute("SELECT frame FROM clip WHERE frame_id = 33").fetchone()[0]  # SQL, before COMMIT
    assert np.array_equal(np.frombuffer(blob, np.uint8).reshape(144, 176, 3), reference[33])
    assert np.array_equal(engine.frames_to_numpy(con, "clip", where="frame_id < 5"), reference[:5])
    con.rollback()
    assert nothing_stored(con)
    con.execute(f"LOAD VIDEO '{path}' INTO clip WITH (limit = 5)")
    con.commit()
    con.execute(f"LOAD OR REPLACE VIDEO '{path}' INTO clip WITH (limit = 6)")
    assert con.execute("SELECT count(*), sum(octet_length(frame)) FROM clip").fetchone() == (6, 6 * 76032)
    con.commit()
    con.close()
    with engine.connect(db_path, read_only=True) as again:
        assert again.execute("SELECT count(*) FROM clip").fetchone() == (6,)
        assert again.execute("SELECT table_name FROM mallard.videos").fetchall() == [("clip",)]
        assert len([n for n in table_names(again, "mallard") if n.startswith("video_packets_")]) == 1


def test_another_connection_never_sees_or_drops_a_load_in_progress(db_path):
    con = engine.connect(db_path, progress="off")
    con.execute(f"LOAD VIDEO '{data_file('carphone.mp4')}' INTO clip")  # not committed yet
    other = con.duckdb_connection.cursor()  # what a second connect of this process runs on open
    assert drop_abandoned_loads(other) == []
    assert other.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'clip' OR table_name LIKE"
                         " 'video_packets_%'").fetchone() == (0,)
    con.commit()
    assert other.execute("SELECT count(*) FROM clip").fetchone() == (120,)
    assert drop_abandoned_loads(other) == []  # the committed stream is read by clip: kept
    con.close()


def test_a_dropped_frames_table_gives_its_stream_back_on_the_next_open(db_path):
    with engine.connect(db_path, progress="off") as con:
        con.execute(f"LOAD VIDEO '{data_file('carphone.mp4')}' INTO clip")
        con.execute("ALTER TABLE clip RENAME TO renamed")  # still read: its frame column names its stream
    with engine.connect(db_path) as con:
        assert len([n for n in table_names(con, "mallard") if n.startswith("video_packets_")]) == 1
        assert con.execute("SELECT octet_length(frame) FROM renamed WHERE frame_id = 3").fetchone() == (76032,)
        con.execute("DROP TABLE renamed")
    with engine.connect(db_path) as con:
        assert nothing_stored(con)


def test_reopening_a_file_finds_everything(db_path):
    with engine.connect(db_path, progress="off") as con:
        con.execute(f"LOAD VIDEO '{data_file('carphone.mp4')}' INTO clip WITH (limit = 6)")
        expected = engine.frames_to_numpy(con, "clip")
    with engine.connect(db_path) as con:
        assert np.array_equal(engine.frames_to_numpy(con, "clip"), expected)
        assert con.execute("SELECT frame_count FROM mallard.videos").fetchone() == (6,)


@pytest.mark.parametrize("store", ["stream", "pixels"])
def test_sigkill_during_load_leaves_nothing_even_to_a_read_only_reader(db_path, long_video, store):
    """Kill the process while a long load is writing; the file must be clean, read-only first.

    A stream load writes its packets as it reads them; a pixels load of 795 frames stays in
    memory until COMMIT, so that one is killed while it commits."""
    clip, size = (long_video, "") if store == "stream" else (data_file("vtest.avi"), ", width = 320, height = 240")
    child = textwrap.dedent(f"""
        import sys, engine
        con = engine.connect({str(db_path)!r}, autocommit=True, progress="off")
        con.execute("CREATE TABLE before_load AS SELECT 42 AS answer")
        print("loading", flush=True)
        con.execute("LOAD VIDEO '{clip}' INTO clip WITH (store = '{store}'{size})")
        print("finished", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout.readline().strip() == "loading"
    wal = db_path.with_name(db_path.name + ".wal")
    deadline = time.monotonic() + 60
    start = sum(p.stat().st_size for p in (db_path, wal) if p.exists())
    written = 0
    while time.monotonic() < deadline and proc.poll() is None:
        written = sum(p.stat().st_size for p in (db_path, wal) if p.exists()) - start
        if written > 4_000_000:  # well into writing
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the load finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    with engine.connect(db_path, read_only=True) as reader:  # before any read-write open cleans up
        assert nothing_stored(reader)
    with engine.connect(db_path) as con:
        assert nothing_stored(con)
        assert con.execute("SELECT answer FROM before_load").fetchall() == [(42,)]
        assert con.execute("SELECT value FROM mallard.meta WHERE key = 'catalog_version'").fetchone() == (
            str(CATALOG_VERSION),)
        con.execute(f"LOAD VIDEO '{data_file('carphone.mp4')}' INTO clip WITH (limit = 2)")
        assert con.execute("SELECT count(*) FROM clip").fetchone() == (2,)


# The catalog migration -------------------------------------------------------------------------------


def test_a_database_of_the_previous_version_opens_and_its_pixel_tables_work(db_path):
    """A file as Mallard wrote it before migration 005: catalog 4, frames stored as pixels."""
    path = data_file("carphone.mp4")
    frames = pyav_frames(path, 88, 72, stop=6)
    raw = duckdb.connect(str(db_path))
    for number, migration in migrations():
        if number < 5:
            raw.execute(migration.read_text())
    raw.execute("INSERT INTO mallard.meta VALUES ('catalog_version', '4')")
    raw.execute("CREATE TABLE traffic (frame_id BIGINT NOT NULL, ts DOUBLE, frame BLOB NOT NULL, height INTEGER,"
                " width INTEGER, source VARCHAR)")
    raw.executemany("INSERT INTO traffic VALUES (?, ?, ?, 72, 88, ?)",
                    [[i, i / 30, frames[i].tobytes(), str(path)] for i in range(6)])
    raw.execute("INSERT INTO mallard.videos (table_name, source, source_bytes, source_sha256, codec, source_width,"
                " source_height, width, height, fps, every, frame_count, pixel_format)"
                " VALUES ('traffic', ?, 1, 'abc', 'h264', 176, 144, 88, 72, 30, 1, 6, 'rgb24')", [str(path)])
    raw.execute("CREATE TABLE __mallard_loading_0123456789ab (frame_id BIGINT)")  # a load killed back then
    raw.close()
    with engine.connect(db_path) as con:
        assert con.execute("SELECT value FROM mallard.meta WHERE key = 'catalog_version'").fetchone() == (
            str(CATALOG_VERSION),)
        assert con.execute("SELECT storage, stream_id FROM mallard.videos").fetchall() == [("pixels", None)]
        assert np.array_equal(engine.frames_to_numpy(con, "traffic"), frames)
        means = [r[0] for r in con.execute("SELECT frame_mean(frame) FROM traffic ORDER BY frame_id").fetchall()]
        assert means == pytest.approx([f.mean() for f in frames], abs=1e-9)
        from sqlglot import exp

        from engine.inference.frames import FramesTable
        table = FramesTable.resolve(con.session, exp.to_table("traffic"), "frame", "m")
        assert table.storage == "pixels" and table.video_key is not None
        assert "__mallard_loading_0123456789ab" not in table_names(con)


def _write(path, data):
    path.write_bytes(data)
    return path
