SELECT
  frame_id,
  (
    SELECT
      __mallard_call_1.prediction
    FROM __mallard_call_1
    WHERE
      __mallard_call_1.frame_id = traffic.frame_id
  ).label AS label
FROM traffic
WHERE
  frame_id < 300
  AND ts > 1.5
  AND (
    SELECT
      __mallard_call_1.prediction
    FROM __mallard_call_1
    WHERE
      __mallard_call_1.frame_id = traffic.frame_id
  ).score > 0.5
-- scan __mallard_call_1: mobilenet ON traffic (frame) OUTPUTS prediction
