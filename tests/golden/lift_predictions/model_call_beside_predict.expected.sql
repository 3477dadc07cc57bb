SELECT
  p.frame_id,
  p.predicted_label,
  MOBILENET(t.frame).label AS other
FROM __mallard_predict_1 AS p
JOIN traffic AS t
  USING (frame_id)
-- predict __mallard_predict_1: predict(resnet, (SELECT * FROM traffic WHERE frame_id < ?))
