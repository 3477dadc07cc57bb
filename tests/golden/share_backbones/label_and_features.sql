SELECT frame_id, mobilenet(frame).label, features(mobilenet, frame) AS f FROM traffic WHERE frame_id < 40
