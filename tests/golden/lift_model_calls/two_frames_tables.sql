SELECT a.frame_id, mobilenet(a.frame).label AS traffic_label, mobilenet(b.frame).label AS bikes_label FROM traffic AS a JOIN bikes AS b ON a.frame_id = b.frame_id
