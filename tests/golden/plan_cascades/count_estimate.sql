SELECT count(*) FROM traffic WHERE frame_id < 500 AND mobilenet(frame).label = 'alp'
-- accuracy 0.9
