SELECT
  p.predicted_label,
  __MALLARD_FN_1(t.km, t.hour).class_id AS again
FROM PREDICT(resnet, (
  SELECT
    FARES(km, hour).label AS guess,
    frame
  FROM traffic
)) AS p
JOIN trips AS t
  ON p.guess = t.label
-- function __mallard_fn_1: fares OVER 2 numbers OUTPUTS prediction
