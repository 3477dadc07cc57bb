SELECT
  (
    SELECT
      __mallard_call_1.prediction
    FROM __mallard_call_1
    WHERE
      __mallard_call_1.frame_id = traffic.frame_id
  )['label'] AS label,
  COUNT(*) AS frames
FROM traffic
GROUP BY
  1
ORDER BY
  2 DESC
-- scan __mallard_call_1: mobilenet ON traffic (frame) OUTPUTS prediction
