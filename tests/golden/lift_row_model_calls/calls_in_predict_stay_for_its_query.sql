SELECT
  p.predicted_label,
  fares(t.km, t.hour).class_id AS again
FROM predict(resnet, (SELECT fares(km, hour).label AS guess, frame FROM traffic)) AS p
JOIN trips AS t
  ON p.guess = t.label
