SELECT frame_id, mobilenet(frame).label FROM traffic WHERE mobilenet(frame).label = 'alp'
-- accuracy 0.95
