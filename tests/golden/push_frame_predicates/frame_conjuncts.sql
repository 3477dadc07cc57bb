SELECT frame_id, mobilenet(frame).label FROM traffic WHERE frame_id < 300 AND ts > 1.5 AND mobilenet(frame).score > 0.5
