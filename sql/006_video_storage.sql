-- Mallard's catalog, video storage (issue 10): a video is stored as its compressed stream,
-- its packets copied from the container, and frames are decoded when they are read.
-- engine/video_stream/store.py describes the layout; docs/video.md explains it to users.

-- How each frames table stores its frames: 'stream' (packets, decoded on read) or 'pixels'
-- (RGB bytes in the table, as every table made before this migration).
ALTER TABLE mallard.videos ADD COLUMN storage VARCHAR DEFAULT 'pixels';
UPDATE mallard.videos SET storage = 'pixels' WHERE storage IS NULL;
ALTER TABLE mallard.videos ALTER COLUMN storage SET NOT NULL;

-- 'stream': what a decoder needs besides the packets.  The packets and the keyframe index
-- live in mallard.video_packets_<stream_id>, one row per packet in decoding order:
--   packet BIGINT, pts BIGINT, dts BIGINT, keyframe BOOLEAN (decodes on its own),
--   pos BIGINT (byte offset in the source file), frame_id BIGINT (the row of the frames table
--   this packet's picture is, NULL if none: every, limit), ts DOUBLE, entry_packet BIGINT
--   (the keyframe packet decoding starts from to reach that frame), data BLOB,
-- one table per video so that dropping a video frees its blocks.
ALTER TABLE mallard.videos ADD COLUMN stream_id BIGINT;
ALTER TABLE mallard.videos ADD COLUMN extradata BLOB;      -- the codec's private data (H.264's avcC, ...)
ALTER TABLE mallard.videos ADD COLUMN decoder JSON;        -- codec tag, coded size, pixel format, colour, time base
ALTER TABLE mallard.videos ADD COLUMN packet_count BIGINT;
ALTER TABLE mallard.videos ADD COLUMN packet_bytes BIGINT;
