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
  frame_id >= 100
ORDER BY
  frame_id DESC
LIMIT 10
OFFSET 5
-- scan __mallard_call_1: mobilenet ON traffic (frame) OUTPUTS prediction
