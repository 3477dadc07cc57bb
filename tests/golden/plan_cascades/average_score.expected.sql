SELECT
  estimate AS "mean_score"
FROM __mallard_cascade_1
-- cascade __mallard_cascade_1: mobilenet ON traffic (frame) ESTIMATE avg(score) ACCURACY 0.9
-- accuracy 0.9
