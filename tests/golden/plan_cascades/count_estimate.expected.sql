SELECT
  estimate AS "count_star()"
FROM __mallard_cascade_1
-- cascade __mallard_cascade_1: mobilenet ON traffic (frame) WHERE label = 'alp' ESTIMATE count ACCURACY 0.9 RESTRICT frame_id < 500
-- accuracy 0.9
