SELECT
  (
    SELECT
      __mallard_call_1.prediction
    FROM __mallard_call_1
    WHERE
      __mallard_call_1.frame_id = traffic.frame_id
  ).label AS label
FROM traffic
WHERE
  frame_id < ? AND frame_id % 2 = 0
-- scan __mallard_call_1: mobilenet ON traffic (frame) OUTPUTS prediction
