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
      __mallard_call_1.prediction
    FROM __mallard_call_1
    WHERE
      __mallard_call_1.frame_id = traffic.frame_id
  ).score AS score
FROM traffic
WHERE
  frame_id < 300
-- scan __mallard_call_1: mobilenet ON traffic (frame) OUTPUTS prediction
