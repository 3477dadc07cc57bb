SELECT frame_id FROM traffic WHERE mobilenet(frame).label = 'alp'
