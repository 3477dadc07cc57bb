-- Mallard's catalog, version 1: the mallard schema, its version row, and loaded videos.
-- Files named NNN_*.sql in this folder are migrations, applied once each, in order, inside
-- one transaction; mallard.meta records the highest one applied.

CREATE SCHEMA IF NOT EXISTS mallard;

CREATE TABLE IF NOT EXISTS mallard.meta (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);

-- One row per frames table made by LOAD VIDEO.
CREATE TABLE IF NOT EXISTS mallard.videos (
    table_name     VARCHAR PRIMARY KEY,   -- the frames table (schema-qualified if not main)
    source         VARCHAR NOT NULL,      -- absolute path of the file it was decoded from
    source_bytes   BIGINT  NOT NULL,
    source_sha256  VARCHAR NOT NULL,      -- of the file's bytes: identifies the video for caches
    codec          VARCHAR NOT NULL,
    source_width   INTEGER NOT NULL,
    source_height  INTEGER NOT NULL,
    width          INTEGER NOT NULL,      -- of the stored frames
    height         INTEGER NOT NULL,
    fps            DOUBLE,
    every          INTEGER NOT NULL,      -- every n-th decoded frame was kept
    frame_count    BIGINT  NOT NULL,      -- frames stored
    duration_s     DOUBLE,
    pixel_format   VARCHAR NOT NULL,      -- 'rgb24': frame BLOB is height*width*3 bytes, row-major
    loaded_at      TIMESTAMP NOT NULL DEFAULT current_timestamp,
    load_seconds   DOUBLE
);
