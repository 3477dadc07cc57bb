SELECT frame_id FROM traffic ORDER BY mobilenet(frame).score ASC LIMIT 10
-- accuracy 0.9
