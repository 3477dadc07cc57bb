SELECT frame_id, mobilenet(frame).label, mobilenet(frame).score FROM traffic WHERE frame_id < 300
