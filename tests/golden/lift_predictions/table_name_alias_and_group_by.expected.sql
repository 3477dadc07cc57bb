SELECT
  p.predicted_label,
  COUNT(*) AS n
FROM __mallard_predict_1 AS p
GROUP BY
  1
-- predict __mallard_predict_1: predict(resnet, (SELECT * FROM traffic), version => 2)
