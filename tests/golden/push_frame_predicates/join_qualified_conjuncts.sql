SELECT a.frame_id, mobilenet(a.frame).label FROM traffic AS a JOIN bikes AS b ON a.frame_id = b.frame_id WHERE a.frame_id < 10 AND b.ts > 1 AND a.height = 224
