SELECT
  a.frame_id,
  (
    SELECT
      __mallard_call_1.prediction
    FROM __mallard_call_1
    WHERE
      __mallard_call_1.frame_id = a.frame_id
  ).label AS label
FROM traffic AS a
JOIN bikes AS b
  ON a.frame_id = b.frame_id
WHERE
  a.frame_id < 10 AND b.ts > 1 AND a.height = 224
-- scan __mallard_call_1: mobilenet ON traffic AS a (frame) OUTPUTS prediction
