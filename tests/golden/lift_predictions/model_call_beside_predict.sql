SELECT p.frame_id, p.predicted_label, mobilenet(t.frame).label AS other FROM predict(resnet, (SELECT * FROM traffic WHERE frame_id < ?)) AS p JOIN traffic AS t USING (frame_id)
