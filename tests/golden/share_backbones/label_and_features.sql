SELECT
  frame_id,
  (
    SELECT
      __mallard_call_1.prediction
    FROM __mallard_call_1
    WHERE
      __mallard_call_1.frame_id = traffic.frame_id
  ).label AS label,
  (
    SELECT
      __mallard_call_1.features
    FROM __mallard_call_1
    WHERE
      __mallard_call_1.frame_id = traffic.frame_id
  ) AS f
FROM traffic
WHERE
  frame_id < 40
-- scan __mallard_call_1: mobilenet ON traffic (frame) OUTPUTS features, prediction WHERE frame_id < 40
