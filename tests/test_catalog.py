"""The catalog: created from sql/ on first connect, versioned, migrated, persistent."""
from __future__ import annotations

import duckdb
import pytest

import engine
from engine.system_catalog import CATALOG_VERSION, catalog_version, migrations, sql_dir


def test_first_connect_creates_the_versioned_catalog(db_path):
    with engine.connect(db_path) as con:
        version = con.execute("SELECT value FROM mallard.meta WHERE key = 'catalog_version'").fetchone()[0]
        assert int(version) == CATALOG_VERSION == migrations()[-1][0]
        tables = {r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'mallard'").fetchall()}
        assert {"meta", "videos"} <= tables


def test_migration_files_are_numbered_without_gaps():
    numbers = [n for n, _ in migrations()]
    assert numbers == list(range(1, len(numbers) + 1))
    assert (sql_dir() / "001_catalog.sql").exists()


def test_reopening_does_not_migrate_again(db_path):
    with engine.connect(db_path) as con:
        created = con.execute("SELECT value FROM mallard.meta WHERE key = 'created_at'").fetchone()
    with engine.connect(db_path) as con:
        assert con.execute("SELECT value FROM mallard.meta WHERE key = 'created_at'").fetchone() == created


def test_an_older_catalog_is_migrated_and_keeps_its_rows(db_path):
    """A file made by a release that had only migration 001 is brought up to date."""
    first = migrations()[0][1].read_text()
    raw = duckdb.connect(str(db_path))
    raw.execute(first)
    raw.execute("INSERT INTO mallard.meta VALUES ('catalog_version', '1')")
    raw.execute("INSERT INTO mallard.videos (table_name, source, source_bytes, source_sha256, codec, source_width,"
                " source_height, width, height, fps, every, frame_count, pixel_format)"
                " VALUES ('old', '/x.avi', 1, 'abc', 'h264', 2, 2, 2, 2, 1, 1, 1, 'rgb24')")
    raw.close()
    with engine.connect(db_path) as con:
        assert catalog_version(con.duckdb_connection) == CATALOG_VERSION
        assert con.execute("SELECT table_name FROM mallard.videos").fetchall() == [("old",)]


def test_a_newer_catalog_is_refused(db_path):
    engine.connect(db_path).close()
    raw = duckdb.connect(str(db_path))
    raw.execute("UPDATE mallard.meta SET value = ? WHERE key = 'catalog_version'", [str(CATALOG_VERSION + 1)])
    raw.close()
    with pytest.raises(engine.OperationalError, match="newer than this Mallard"):
        engine.connect(db_path)


def test_read_only_open_of_an_unmigrated_file_is_refused(db_path):
    duckdb.connect(str(db_path)).close()
    with pytest.raises(engine.OperationalError, match="open it once without read_only"):
        engine.connect(db_path, read_only=True)


def test_plain_duckdb_files_gain_a_catalog_and_keep_their_data(db_path):
    raw = duckdb.connect(str(db_path))
    raw.execute("CREATE TABLE mine AS SELECT 'kept' AS v")
    raw.close()
    with engine.connect(db_path) as con:
        assert con.execute("SELECT v FROM mine").fetchall() == [("kept",)]
        assert catalog_version(con.duckdb_connection) == CATALOG_VERSION


def test_bad_database_argument(tmp_path):
    with pytest.raises(engine.InterfaceError):
        engine.connect(42)  # type: ignore[arg-type]
    with pytest.raises(engine.Error):
        engine.connect(tmp_path / "no_such_dir" / "x.duckdb")
