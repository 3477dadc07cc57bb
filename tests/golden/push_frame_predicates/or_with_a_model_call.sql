SELECT frame_id FROM traffic WHERE frame_id < 10 OR mobilenet(frame).label = 'car'
