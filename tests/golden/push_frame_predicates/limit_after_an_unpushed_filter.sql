SELECT
  frame_id
FROM traffic
WHERE
  (
    SELECT
      __mallard_call_1.prediction
    FROM __mallard_call_1
    WHERE
      __mallard_call_1.frame_id = traffic.frame_id
  ).score > 0.2
ORDER BY
  frame_id
LIMIT 10
-- scan __mallard_call_1: mobilenet ON traffic (frame) OUTPUTS prediction
