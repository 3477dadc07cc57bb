SELECT a.frame_id, mobilenet(a.frame).label, mobilenet(b.frame).label AS previous FROM traffic AS a JOIN traffic AS b ON b.frame_id = a.frame_id - 1 WHERE a.frame_id < 5
