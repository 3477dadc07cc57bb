SELECT frame_id, mobilenet(frame).score AS score FROM traffic WHERE mobilenet(frame).label = 'alp' ORDER BY mobilenet(frame).score DESC LIMIT 10
-- accuracy 0.95
