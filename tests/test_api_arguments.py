"""Arguments of the public Python API (cursors, the video helpers, load_model): a bad one is an
engine.Error that says what was expected and what was found, never a TypeError, ValueError,
AttributeError or a sqlglot error from deep inside; good ones keep working."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

import engine
from engine.video_stream.reading import stream_reader
from engine.video_stream.store import stream_of_table
from tests.conftest import data_file

FRAMES = 5  # frames loaded from carphone.mp4 into each table
TABLES = ["clip", "clip2"]  # stored as a stream, stored as pixels


@pytest.fixture(scope="module")
def video() -> Iterator[engine.Connection]:
    """A connection with the first frames of carphone.mp4 loaded twice: as a stream and as pixels."""
    con = engine.connect(progress="off", autocommit=True)
    path = data_file("carphone.mp4")
    con.execute(f"LOAD VIDEO '{path}' INTO clip WITH (limit = {FRAMES})")
    con.execute(f"LOAD VIDEO '{path}' INTO clip2 WITH (limit = {FRAMES}, store = 'pixels')")
    try:
        yield con
    finally:
        con.close()


# Cursor.fetchmany and arraysize ------------------------------------------------------------

BAD_SIZES = [-1, "2", 2.0, True, [2], object()]


@pytest.mark.parametrize("size", BAD_SIZES)
def test_fetchmany_rejects_a_size_that_is_not_a_whole_number_from_zero(con, size):
    cur = con.cursor()
    cur.execute("SELECT range FROM range(3)")
    with pytest.raises(engine.ProgrammingError, match="fetchmany size: expected a whole number >= 0, found"):
        cur.fetchmany(size)
    assert cur.fetchall() == [(0,), (1,), (2,)]  # the rows are still there


def test_fetchmany_takes_a_size_from_zero_and_caps_a_huge_one(con):
    cur = con.cursor()
    cur.execute("SELECT range FROM range(5)")
    assert cur.fetchmany(0) == []
    assert cur.fetchmany(2) == [(0,), (1,)]
    assert cur.fetchmany(np.int64(1)) == [(2,)]
    assert cur.fetchmany(2**70) == [(3,), (4,)]
    assert cur.fetchmany(2**70) == []
    cur.execute("SELECT range FROM range(4)")
    con.cursor().execute("SELECT 1")  # another cursor runs: cur's rows move into memory
    assert cur.fetchmany(2**70) == [(0,), (1,), (2,), (3,)]


@pytest.mark.parametrize("size", ["x", 0, -1, True, 1.5, None])
def test_arraysize_rejects_a_bad_value_when_assigned(con, size):
    cur = con.cursor()
    with pytest.raises(engine.ProgrammingError, match="arraysize: expected a whole number >= 1, found"):
        cur.arraysize = size
    assert cur.arraysize == 1
    assert cur.execute("SHOW MALLARD SETTINGS").fetchmany() != []


def test_arraysize_sets_what_fetchmany_fetches(con):
    cur = con.cursor()
    cur.arraysize = np.int32(3)
    assert cur.arraysize == 3 and type(cur.arraysize) is int
    assert len(cur.execute("SELECT range FROM range(10)").fetchmany()) == 3


# Cursor.executemany and callproc -------------------------------------------------------------

@pytest.mark.parametrize("parameter_sets", [None, 5, "ab", b"ab", {"a": 1}])
def test_executemany_rejects_parameter_sets_that_are_not_a_sequence(con, parameter_sets):
    with pytest.raises(engine.ProgrammingError, match="executemany: expected the parameter sets as a sequence"):
        con.cursor().executemany("SELECT ?", parameter_sets)


def test_executemany_rejects_a_statement_that_is_not_a_str(con):
    with pytest.raises(engine.ProgrammingError, match="expected the statement as a str, found int"):
        con.cursor().executemany(5, [])


def test_executemany_runs_each_parameter_set(con):
    con.execute("CREATE TABLE t (x INTEGER)")
    assert con.cursor().executemany("INSERT INTO t VALUES (?)", [(1,), [2]]).rowcount == 2
    con.cursor().executemany("INSERT INTO t VALUES (?)", ((i,) for i in range(3, 5)))
    assert con.execute("SELECT sum(x) FROM t").fetchone() == (10,)


@pytest.mark.parametrize("parameters", [None, 5, "FOO", {"a": 1}])
def test_callproc_rejects_parameters_that_are_not_a_list_or_tuple(con, parameters):
    with pytest.raises(engine.ProgrammingError, match="callproc: expected the parameters as a list or tuple, found"):
        con.cursor().callproc("lower", parameters)


def test_callproc_still_calls_the_function(con):
    cur = con.cursor()
    assert cur.callproc("lower", ["FOO"]) == ["FOO"]
    assert cur.fetchall() == [("foo",)]


# The video helpers: batch_size, where, frame_ids ---------------------------------------------

@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize("batch_size", [0, -1, "2", 2.0, True, None])
def test_iter_frames_rejects_a_batch_size_below_one_or_not_whole(video, table, batch_size):
    with pytest.raises(engine.ProgrammingError, match="batch_size: expected a whole number >= 1, found"):
        list(engine.iter_frames(video, table, batch_size=batch_size))


@pytest.mark.parametrize("table", TABLES)
def test_iter_frames_checks_its_arguments_when_called(video, table):
    with pytest.raises(engine.ProgrammingError, match="batch_size"):
        engine.iter_frames(video, table, batch_size=0)  # no next() needed


@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize("batch_size", [2, np.int64(2)])
def test_iter_frames_yields_every_frame_in_batches(video, table, batch_size):
    batches = list(engine.iter_frames(video, table, batch_size=batch_size))
    assert [ids.tolist() for ids, _ in batches] == [[0, 1], [2, 3], [4]]
    assert [frames.shape for _, frames in batches] == [(2, 144, 176, 3), (2, 144, 176, 3), (1, 144, 176, 3)]


def test_the_stream_reader_rejects_a_batch_size_below_one(video):
    session = video.session
    stream_id = stream_of_table(lambda q, p: session.sql(q, p).fetchall(), engine.video._table("clip"))
    assert stream_id is not None
    with pytest.raises(engine.ProgrammingError, match="batch_size: expected a whole number >= 1, found 0"):
        next(stream_reader(session).batches(session, stream_id, np.arange(FRAMES), 0))


SMUGGLED = ["frame_id = 0; SELECT 1", "frame_id = 0; DROP TABLE clip2", "SELECT 1", "1=1) UNION (SELECT 1",
            "frame_id = 'open", "frame_id = ", "frame_id = 0; frame_id", "frame_id = 0; lower('x')",
            "frame_id IN (SELECT 1; SELECT 2)", "(frame_id = 0; frame_id = 1)"]


@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize("where", SMUGGLED)
def test_where_must_be_one_sql_condition(video, table, where):
    with pytest.raises(engine.ProgrammingError, match="expected where to be one SQL condition") as raised:
        engine.frames_to_numpy(video, table, where=where)
    assert repr(where) in str(raised.value)
    assert video.execute("SELECT count(*) FROM clip2").fetchone() == (FRAMES,)  # nothing else ran


@pytest.mark.parametrize("table", TABLES)
def test_a_comment_in_where_stays_a_comment(video, table):
    frames = engine.frames_to_numpy(video, table, where="frame_id = 0 -- */ ; DROP TABLE clip2")
    assert frames.shape == (1, 144, 176, 3)
    assert video.execute("SELECT count(*) FROM clip2").fetchone() == (FRAMES,)


def test_a_long_where_is_quoted_cut_short(video):
    where = "frame_id = 0; " + "x" * 500
    with pytest.raises(engine.ProgrammingError, match=r"found 'frame_id = 0; x+\.\.\.$"):
        engine.frames_to_numpy(video, "clip", where=where)


@pytest.mark.parametrize("where", [5, b"frame_id = 0", ["frame_id = 0"]])
def test_where_must_be_a_str(video, where):
    with pytest.raises(engine.ProgrammingError, match="expected where as a SQL condition in a str, found"):
        engine.frames_to_numpy(video, "clip", where=where)


@pytest.mark.parametrize("table", TABLES)
def test_where_and_frame_ids_still_pick_frames(video, table):
    assert engine.frames_to_numpy(video, table, where="frame_id % 2 = 0").shape == (3, 144, 176, 3)
    every = engine.frames_to_numpy(video, table)
    picked = engine.frames_to_numpy(video, table, frame_ids=np.array([1, 3]))
    assert np.array_equal(picked, every[[1, 3]])


@pytest.mark.parametrize("frame_ids", [5, "12", [1.5], ["a"], [None]])
def test_frame_ids_must_be_whole_numbers(video, frame_ids):
    with pytest.raises(engine.ProgrammingError, match="expected (frame_ids as a sequence of whole numbers|a whole number)"):
        engine.frames_to_numpy(video, "clip2", frame_ids=frame_ids)


# frame_to_numpy ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("blob", "height", "width", "message"), [
    (None, 8, 8, "expected a frame as bytes, bytearray or memoryview, found NoneType"),
    ("x" * 192, 8, 8, "expected a frame as bytes, bytearray or memoryview, found str"),
    (bytes(192), 8.0, 8, "frame height: expected a whole number, found 8.0"),
    (bytes(192), 8, "8", "frame width: expected a whole number, found '8'"),
    (bytes(3), True, 1, "frame height: expected a whole number, found True"),
])
def test_frame_to_numpy_rejects_wrong_argument_types(blob, height, width, message):
    with pytest.raises(engine.ProgrammingError, match=message):
        engine.frame_to_numpy(blob, height, width)


@pytest.mark.parametrize(("blob", "height", "width", "message"), [
    (b"abc", -1, -1, "expected a frame height and width of at least 1, found -1x-1"),
    (b"", 0, 8, "expected a frame height and width of at least 1, found 0x8"),
    (bytes(191), 8, 8, "expected a frame of 8x8x3 = 192 bytes, found 191 bytes"),
    (memoryview(bytes(384))[::2], 8, 8, "expected a frame's bytes in one contiguous buffer"),
])
def test_frame_to_numpy_rejects_a_blob_that_does_not_fit(blob, height, width, message):
    with pytest.raises(engine.DataError, match=message):
        engine.frame_to_numpy(blob, height, width)


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_frame_to_numpy_reads_a_bytes_like_blob(kind):
    pixels = np.arange(8 * 4 * 3, dtype=np.uint8).reshape(8, 4, 3)
    assert np.array_equal(engine.frame_to_numpy(kind(pixels.tobytes()), 8, 4), pixels)


def test_frame_to_numpy_reads_a_stored_frame(video):
    blob, height, width = video.execute("SELECT frame, height, width FROM clip2 WHERE frame_id = 2").fetchone()
    frame = engine.frame_to_numpy(blob, height, width)
    assert frame.shape == (144, 176, 3)
    assert np.array_equal(frame, engine.frames_to_numpy(video, "clip2", frame_ids=[2])[0])


# Connections and names --------------------------------------------------------------------------

PIXELS = np.zeros((2, 4, 6, 3), np.uint8)
CALLS = {
    "iter_frames": lambda con: engine.iter_frames(con, "clip"),
    "frames_to_numpy": lambda con: engine.frames_to_numpy(con, "clip"),
    "frames_from_numpy": lambda con: engine.frames_from_numpy(con, "made", PIXELS),
    "load_model": lambda con: engine.load_model(con, "m"),
}
NOT_CONNECTIONS = {
    "None": (lambda con: None, "NoneType"),
    "int": (lambda con: 5, "int"),
    "duckdb": (lambda con: con.duckdb_connection, "DuckDBPyConnection"),
    "cursor": (lambda con: con.cursor(), "Cursor"),
}


@pytest.mark.parametrize("call", CALLS.values(), ids=list(CALLS))
@pytest.mark.parametrize("given", NOT_CONNECTIONS.values(), ids=list(NOT_CONNECTIONS))
def test_the_helpers_need_a_mallard_connection(video, call, given):
    make, found = given
    with pytest.raises(engine.ProgrammingError,
                       match=f"expected a Mallard connection from engine.connect\\(\\), found {found}$"):
        call(make(video))


@pytest.mark.parametrize("call", [
    lambda con, name: engine.iter_frames(con, name),
    lambda con, name: engine.frames_to_numpy(con, name),
    lambda con, name: engine.frames_from_numpy(con, name, PIXELS),
], ids=["iter_frames", "frames_to_numpy", "frames_from_numpy"])
@pytest.mark.parametrize("name", [None, 5, b"clip"])
def test_a_table_name_must_be_a_str(video, call, name):
    with pytest.raises(engine.ProgrammingError, match="expected a table name as a str, found"):
        call(video, name)


@pytest.mark.parametrize(("name", "version", "message"), [
    (None, None, "expected a model name as a non-empty str, found None"),
    (5, None, "expected a model name as a non-empty str, found 5"),
    ("", None, "expected a model name as a non-empty str, found ''"),
    ("m", "1", "load_model version: expected a whole number >= 1, found '1'"),
    ("m", 0, "load_model version: expected a whole number >= 1, found 0"),
    ("m", True, "load_model version: expected a whole number >= 1, found True"),
])
def test_load_model_checks_the_name_and_version(con, name, version, message):
    with pytest.raises(engine.ProgrammingError, match=message):
        engine.load_model(con, name, version)


def test_load_model_still_loads_a_model(con):
    con.execute("CREATE TABLE t AS SELECT range AS x, CASE WHEN range % 2 = 0 THEN 'even' ELSE 'odd' END AS label"
                " FROM range(40)")
    con.execute("CREATE MODEL parity WITH (architecture = 'mlp', hidden = [4], epochs = 1) AS SELECT x, label FROM t")
    assert type(engine.load_model(con, "parity", np.int64(1))).__name__ == "LayeredClassifier"
    with pytest.raises(engine.ProgrammingError, match="unknown model 'nope'"):
        engine.load_model(con, "nope")


@pytest.mark.parametrize(("keywords", "message"), [
    ({"fps": 0}, "expected fps as a number > 0, found 0"),
    ({"fps": float("nan")}, "expected fps as a number > 0, found nan"),
    ({"fps": "30"}, "expected fps as a number > 0, found '30'"),
    ({"fps": True}, "expected fps as a number > 0, found True"),
    ({"source": 5}, "expected source as a str, found int"),
])
def test_frames_from_numpy_checks_its_options(con, keywords, message):
    with pytest.raises(engine.ProgrammingError, match=message):
        engine.frames_from_numpy(con, "made", PIXELS, **keywords)


def test_frames_from_numpy_rejects_ragged_frames(con):
    with pytest.raises(engine.DataError, match=r"expected frames as an \(n, H, W, 3\) uint8 array"):
        engine.frames_from_numpy(con, "made", [np.zeros((4, 6, 3), np.uint8), np.zeros((2, 2, 3), np.uint8)])


@pytest.mark.parametrize("shape", [(2, 0, 4, 3), (2, 4, 0, 3)])
def test_frames_from_numpy_rejects_frames_without_pixels(con, shape):
    with pytest.raises(engine.DataError, match=r"with H and W at least 1, found uint8 \(2, [04], [04], 3\)"):
        engine.frames_from_numpy(con, "made", np.zeros(shape, np.uint8))
    assert con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'made'").fetchone() == (0,)


def test_frames_from_numpy_still_writes_a_table(con):
    pixels = np.arange(2 * 4 * 6 * 3, dtype=np.uint8).reshape(2, 4, 6, 3)
    assert engine.frames_from_numpy(con, "made", pixels, fps=np.float32(10)) == 2
    assert np.array_equal(engine.frames_to_numpy(con, "made"), pixels)
