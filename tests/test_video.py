"""LOAD VIDEO on real clips: exact pixels, options, errors, atomicity (also under SIGKILL)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import av
import numpy as np
import pytest

import engine
from tests.conftest import ROOT, data_file


def pyav_frames(path, width=None, height=None):
    """The reference: every frame decoded by PyAV alone, as RGB arrays."""
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if width is not None:
                frame = frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA")
            frames.append(frame.to_ndarray(format="rgb24"))
    return frames


def table_names(con):
    names = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'")
             .fetchall()}
    assert not [n for n in names if n.startswith("__mallard_loading_")], names  # no staging table left over
    return names


def test_frames_round_trip_exactly_to_pyav_arrays(con):
    path = data_file("carphone.mp4")
    cur = con.execute("LOAD VIDEO ? INTO clip", [str(path)])  # the path bound as a parameter
    assert cur.rowcount == 120 and "120 frames" in cur.message
    frames = engine.frames_to_numpy(con, "clip")
    reference = np.stack(pyav_frames(path))
    assert frames.shape == (120, 144, 176, 3) and frames.dtype == np.uint8
    assert np.array_equal(frames, reference)
    rows = con.execute("SELECT frame_id, ts, height, width, octet_length(frame), source FROM clip ORDER BY frame_id")\
        .fetchall()
    assert [r[0] for r in rows] == list(range(120))
    assert all(b[1] > a[1] for a, b in zip(rows, rows[1:]))  # timestamps increase
    assert rows[30][1] == pytest.approx(30 * 1001 / 30000, abs=1e-6)
    assert {r[2:] for r in rows} == {(144, 176, 144 * 176 * 3, str(path))}


def test_catalog_records_the_load(con):
    path = data_file("carphone.mp4")
    con.execute(f"LOAD VIDEO '{path}' INTO clip WITH (every = 4)")
    row = con.execute("SELECT table_name, source, codec, source_width, source_height, width, height, every,"
                      " frame_count, pixel_format, length(source_sha256) FROM mallard.videos").fetchone()
    assert row == ("clip", str(path), "h264", 176, 144, 176, 144, 4, 30, "rgb24", 64)


def test_resize_every_and_limit(con):
    path = data_file("vtest.avi")
    con.execute(f"LOAD VIDEO '{path}' INTO small WITH (width = 224, height = 224, every = 3, limit = 10)")
    frames = engine.frames_to_numpy(con, "small")
    reference = pyav_frames(path, 224, 224)
    assert frames.shape == (10, 224, 224, 3)
    assert np.array_equal(frames, np.stack(reference[0:30:3]))
    con.execute(f"LOAD VIDEO '{path}' INTO half WITH (width = 384, limit = 2)")
    assert engine.frames_to_numpy(con, "half").shape == (2, 288, 384, 3)  # aspect ratio kept


def test_native_size_real_surveillance_frames(con):
    path = data_file("vtest.avi")
    con.execute(f"LOAD VIDEO '{path}' INTO traffic WITH (limit = 12)")
    frames = engine.frames_to_numpy(con, "traffic", where="frame_id >= 10")
    assert np.array_equal(frames, np.stack(pyav_frames(path)[10:12]))
    ids = [i for i, _ in engine.iter_frames(con, "traffic", frame_ids=[3, 7], batch_size=1)]
    assert [list(i) for i in ids] == [[3], [7]]


def test_moving_camera_clip(con):
    con.execute(f"LOAD VIDEO '{data_file('bikes.mp4')}' INTO bikes WITH (limit = 25)")
    assert con.execute("SELECT count(*), min(width), min(height) FROM bikes").fetchone() == (25, 640, 272)


def test_synthetic_frames_from_numpy(con):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(5, 7, 9, 3), dtype=np.uint8)
    assert engine.frames_from_numpy(con, "synthetic", pixels, fps=5) == 5
    assert np.array_equal(engine.frames_to_numpy(con, "synthetic"), pixels)
    assert con.execute("SELECT max(ts), any_value(codec) FROM synthetic, mallard.videos "
                       "WHERE table_name = 'synthetic'").fetchone() == (0.8, "rawvideo")
    with pytest.raises(engine.DataError, match="uint8"):
        engine.frames_from_numpy(con, "bad", pixels.astype(np.float32))


# Errors leave nothing behind ----------------------------------------------------------------------


@pytest.mark.parametrize("make_path", [
    lambda tmp: tmp / "missing.avi",
    lambda tmp: tmp,  # a directory
    lambda tmp: data_file("spam_collection.tsv"),  # not a video
    lambda tmp: _write(tmp / "noise.mp4", np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8)
                       .tobytes()),
    lambda tmp: _write(tmp / "truncated.mp4", data_file("carphone.mp4").read_bytes()[:300_000]),
])
def test_unreadable_files_raise_data_error_and_create_nothing(con, tmp_path, make_path):
    path = make_path(tmp_path)
    with pytest.raises(engine.DataError):
        con.execute(f"LOAD VIDEO '{path}' INTO clip")
    assert "clip" not in table_names(con)
    assert con.execute("SELECT count(*) FROM mallard.videos").fetchone() == (0,)


def test_corruption_midway_rolls_the_whole_load_back(con, tmp_path):
    """The file opens and decodes for a while (58 frames), then the decoder fails."""
    data = bytearray(data_file("carphone.mp4").read_bytes())
    data[300_000:320_000] = np.random.default_rng(1).integers(0, 256, 20_000, dtype=np.uint8).tobytes()
    path = _write(tmp_path / "damaged.mp4", bytes(data))
    with pytest.raises(engine.DataError, match="corrupt"):
        con.execute(f"LOAD VIDEO '{path}' INTO clip WITH (batch_frames = 8)")
    assert "clip" not in table_names(con)
    assert con.execute("SELECT count(*) FROM mallard.videos").fetchone() == (0,)


def test_existing_table_needs_or_replace(con):
    path = data_file("carphone.mp4")
    con.execute("CREATE TABLE clip AS SELECT 1 AS keep_me")
    with pytest.raises(engine.ProgrammingError, match="already exists; use LOAD OR REPLACE VIDEO"):
        con.execute(f"LOAD VIDEO '{path}' INTO clip")
    assert con.execute("SELECT * FROM clip").fetchall() == [(1,)]
    con.execute(f"LOAD OR REPLACE VIDEO '{path}' INTO clip WITH (limit = 3)")
    con.execute(f"LOAD OR REPLACE VIDEO '{path}' INTO clip WITH (limit = 4)")
    assert con.execute("SELECT count(*) FROM clip").fetchone() == (4,)
    assert con.execute("SELECT frame_count FROM mallard.videos").fetchall() == [(4,)]


@pytest.mark.parametrize(("options", "error", "message"), [
    ("WITH (speed = 2)", engine.ProgrammingError, "unknown LOAD VIDEO option 'speed'"),
    ("WITH (every = 0)", engine.DataError, "expected a positive whole number, found 0"),
    ("WITH (width = 'big')", engine.DataError, "found 'big'"),
])
def test_bad_options(con, options, error, message):
    with pytest.raises(error, match=message):
        con.execute(f"LOAD VIDEO '{data_file('carphone.mp4')}' INTO clip {options}")
    assert "clip" not in table_names(con)


def test_read_only_database_refuses_load(db_path):
    engine.connect(db_path).close()
    with engine.connect(db_path, read_only=True) as con:
        with pytest.raises(engine.ProgrammingError, match="read-only"):
            con.execute(f"LOAD VIDEO '{data_file('carphone.mp4')}' INTO clip")


def test_load_is_part_of_the_open_transaction(db_path):
    con = engine.connect(db_path, progress="off")  # PEP 249 manual commit
    con.execute(f"LOAD VIDEO '{data_file('carphone.mp4')}' INTO clip WITH (limit = 5)")
    con.rollback()
    assert "clip" not in table_names(con)
    con.execute(f"LOAD VIDEO '{data_file('carphone.mp4')}' INTO clip WITH (limit = 5)")
    con.commit()
    con.execute(f"LOAD OR REPLACE VIDEO '{data_file('carphone.mp4')}' INTO clip WITH (limit = 5)")
    con.commit()
    con.close()
    with engine.connect(db_path, read_only=True) as again:
        assert again.execute("SELECT count(*) FROM clip").fetchone() == (5,)
        assert again.execute("SELECT table_name FROM mallard.videos").fetchall() == [("clip",)]


def test_reopening_a_file_finds_everything(db_path):
    with engine.connect(db_path, progress="off") as con:
        con.execute(f"LOAD VIDEO '{data_file('carphone.mp4')}' INTO clip WITH (limit = 6)")
        expected = engine.frames_to_numpy(con, "clip")
    with engine.connect(db_path) as con:
        assert np.array_equal(engine.frames_to_numpy(con, "clip"), expected)
        assert con.execute("SELECT frame_count FROM mallard.videos").fetchone() == (6,)


def test_sigkill_during_load_leaves_no_partial_table(db_path):
    """Kill the process while a long native-size load is writing; the file must be clean."""
    clip = data_file("vtest.avi")
    child = textwrap.dedent(f"""
        import sys, engine
        con = engine.connect({str(db_path)!r}, autocommit=True, progress="off")
        con.execute("CREATE TABLE before_load AS SELECT 42 AS answer")
        print("loading", flush=True)
        con.execute("LOAD VIDEO '{clip}' INTO traffic")
        print("finished", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout.readline().strip() == "loading"
    wal = db_path.with_name(db_path.name + ".wal")
    deadline = time.monotonic() + 60
    written = 0
    while time.monotonic() < deadline and proc.poll() is None:
        written = sum(p.stat().st_size for p in (db_path, wal) if p.exists())
        if written > 40_000_000:  # well into writing frames
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the load finished before it could be killed"
    assert written > 40_000_000, "the load never started writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    with engine.connect(db_path) as con:
        assert "traffic" not in table_names(con)
        assert con.execute("SELECT answer FROM before_load").fetchall() == [(42,)]
        assert con.execute("SELECT count(*) FROM mallard.videos").fetchone() == (0,)
        from engine.system_catalog import CATALOG_VERSION
        assert con.execute("SELECT value FROM mallard.meta WHERE key = 'catalog_version'").fetchone() == (
            str(CATALOG_VERSION),)
        # the database still works: a load after the crash succeeds
        con.execute(f"LOAD VIDEO '{data_file('carphone.mp4')}' INTO clip WITH (limit = 2)")
        assert con.execute("SELECT count(*) FROM clip").fetchone() == (2,)


def _write(path, data):
    path.write_bytes(data)
    return path
