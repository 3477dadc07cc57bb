SELECT frame_id FROM traffic WHERE mobilenet(frame).score > 0.2 ORDER BY frame_id LIMIT 10
