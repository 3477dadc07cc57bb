SELECT frame_id, mobilenet(frame).label FROM traffic WHERE frame_id >= 100 ORDER BY frame_id DESC LIMIT 10 OFFSET 5
