-- Mallard's catalog, video storage (issue 10): a video is stored as its compressed stream,
-- its packets copied from the container, and frames are decoded when they are read.
-- engine/video_stream describes the layout; docs/video.md explains it to users.

-- How each frames table stores its frames: 'stream' (packets, decoded on read) or 'pixels'
-- (RGB bytes, as every table made before this migration).
ALTER TABLE mallard.videos ADD COLUMN storage VARCHAR DEFAULT 'pixels';
ALTER TABLE mallard.videos ADD COLUMN stream_id BIGINT;      -- 'stream': its row of video_streams
UPDATE mallard.videos SET storage = 'pixels' WHERE storage IS NULL;
ALTER TABLE mallard.videos ALTER COLUMN storage SET NOT NULL;

-- One row per stored stream: what a decoder needs besides the packets.  The packets live in
-- their own table, mallard.video_packets_<stream_id>, one row per packet in decoding order
-- (packet BIGINT, pts BIGINT, dts BIGINT, keyframe BOOLEAN, pos BIGINT, data BLOB), so that
-- dropping a video frees its blocks.
CREATE TABLE IF NOT EXISTS mallard.video_streams (
    stream_id      BIGINT PRIMARY KEY,
    table_name     VARCHAR NOT NULL,      -- the frames table it was loaded into
    source         VARCHAR NOT NULL,      -- the file it came from (no longer needed to read it)
    codec          VARCHAR NOT NULL,      -- FFmpeg's decoder name
    extradata      BLOB,                  -- the codec's private data (H.264's avcC, ...)
    decoder        JSON NOT NULL,         -- codec tag, coded size, pixel format, colour, time base
    width          INTEGER NOT NULL,      -- of the RGB frames the table yields
    height         INTEGER NOT NULL,
    every          INTEGER NOT NULL,      -- every n-th frame (presentation order) is a row
    frame_count    BIGINT NOT NULL,       -- rows of the frames table
    packet_count   BIGINT NOT NULL,
    packet_bytes   BIGINT NOT NULL,
    packets_table  VARCHAR NOT NULL       -- the name of its packets table in the mallard schema
);

-- The keyframe index: one row per frame of a stored stream.  To decode a frame, a decoder
-- starts at entry_packet and is fed every packet up to (and a little past) its own.
CREATE TABLE IF NOT EXISTS mallard.video_frames (
    stream_id      BIGINT NOT NULL,
    frame_id       BIGINT NOT NULL,       -- the frames table's frame_id
    pts            BIGINT NOT NULL,       -- presentation time stamp, in the stream's time base
    ts             DOUBLE NOT NULL,       -- seconds
    packet         BIGINT NOT NULL,       -- the frame's own packet, in decoding order
    pos            BIGINT,                -- that packet's byte offset in the source file
    keyframe       BOOLEAN NOT NULL,      -- decoding can start at this frame
    entry_packet   BIGINT NOT NULL        -- the keyframe packet decoding starts from
);
