SELECT
  a.frame_id,
  (
    SELECT
      __mallard_call_1.prediction
    FROM __mallard_call_1
    WHERE
      __mallard_call_1.frame_id = a.frame_id
  ).label AS traffic_label,
  (
    SELECT
      __mallard_call_2.prediction
    FROM __mallard_call_2
    WHERE
      __mallard_call_2.frame_id = b.frame_id
  ).label AS bikes_label
FROM traffic AS a
JOIN bikes AS b
  ON a.frame_id = b.frame_id
-- scan __mallard_call_1: mobilenet ON traffic AS a (frame) OUTPUTS prediction
-- scan __mallard_call_2: mobilenet ON bikes AS b (frame) OUTPUTS prediction
