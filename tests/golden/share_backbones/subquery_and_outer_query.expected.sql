SELECT
  frame_id,
  (
    SELECT
      __mallard_scan_1.prediction
    FROM __mallard_scan_1
    WHERE
      __mallard_scan_1.frame_id = traffic.frame_id
  ).label AS label
FROM traffic
WHERE
  frame_id < 20
  AND (
    SELECT
      __mallard_scan_1.prediction
    FROM __mallard_scan_1
    WHERE
      __mallard_scan_1.frame_id = traffic.frame_id
  ).score > (
    SELECT
      AVG(
        (
          SELECT
            __mallard_scan_1.prediction
          FROM __mallard_scan_1
          WHERE
            __mallard_scan_1.frame_id = traffic.frame_id
        ).score
      ) AS "avg(mobilenet(frame).score)"
    FROM traffic
    WHERE
      frame_id BETWEEN 10 AND 30
  )
-- scan __mallard_scan_1: mobilenet ON traffic (frame) OUTPUTS prediction WHERE (frame_id < 20) OR (frame_id BETWEEN 10 AND 30)
