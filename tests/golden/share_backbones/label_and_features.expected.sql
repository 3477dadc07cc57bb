SELECT
  frame_id,
  (
    SELECT
      __mallard_scan_1.prediction
    FROM __mallard_scan_1
    WHERE
      __mallard_scan_1.frame_id = traffic.frame_id
  ).label AS label,
  (
    SELECT
      __mallard_scan_1.features
    FROM __mallard_scan_1
    WHERE
      __mallard_scan_1.frame_id = traffic.frame_id
  ) AS f
FROM traffic
WHERE
  frame_id < 40
-- scan __mallard_scan_1: mobilenet ON traffic (frame) OUTPUTS features, prediction WHERE frame_id < 40
