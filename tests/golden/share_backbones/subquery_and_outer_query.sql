SELECT frame_id, mobilenet(frame).label FROM traffic WHERE frame_id < 20 AND mobilenet(frame).score > (SELECT avg(mobilenet(frame).score) FROM traffic WHERE frame_id BETWEEN 10 AND 30)
