SELECT
  a.frame_id,
  (
    SELECT
      __mallard_call_1.prediction
    FROM __mallard_call_1
    WHERE
      __mallard_call_1.frame_id = a.frame_id
  ).label AS label,
  (
    SELECT
      __mallard_call_2.prediction
    FROM __mallard_call_2
    WHERE
      __mallard_call_2.frame_id = b.frame_id
  ).label AS previous
FROM traffic AS a
JOIN traffic AS b
  ON b.frame_id = a.frame_id - 1
WHERE
  a.frame_id < 5
-- scan __mallard_call_1: mobilenet ON traffic AS a (frame) OUTPUTS prediction WHERE frame_id < 5
-- scan __mallard_call_2: mobilenet ON traffic AS b (frame) OUTPUTS prediction
