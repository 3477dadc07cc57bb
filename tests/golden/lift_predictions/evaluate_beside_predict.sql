SELECT
  e.class,
  e.recall,
  p.predicted_label
FROM evaluate(fares, (SELECT km, hour, label FROM trips WHERE id % 5 = 0), label => 'label') AS e
JOIN predict(fares, trips) AS p
  ON e.class = p.label
