SELECT frame_id FROM traffic WHERE mobilenet(frame).label = 'alp'
-- accuracy 0.95
