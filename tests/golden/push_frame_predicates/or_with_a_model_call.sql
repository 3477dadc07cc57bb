SELECT
  frame_id
FROM traffic
WHERE
  frame_id < 10
  OR (
    SELECT
      __mallard_call_1.prediction
    FROM __mallard_call_1
    WHERE
      __mallard_call_1.frame_id = traffic.frame_id
  ).label = 'car'
-- scan __mallard_call_1: mobilenet ON traffic (frame) OUTPUTS prediction
