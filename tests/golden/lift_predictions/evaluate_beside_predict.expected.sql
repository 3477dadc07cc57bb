SELECT
  e.class,
  e.recall,
  p.predicted_label
FROM __mallard_evaluate_1 AS e
JOIN __mallard_predict_2 AS p
  ON e.class = p.label
-- evaluate __mallard_evaluate_1: evaluate(fares, (SELECT km, hour, label FROM trips WHERE id % 5 = 0), label => 'label')
-- predict __mallard_predict_2: predict(fares, (SELECT * FROM trips))
