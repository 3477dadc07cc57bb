SELECT mobilenet(frame).label FROM traffic WHERE frame_id < ? AND frame_id % 2 = 0
