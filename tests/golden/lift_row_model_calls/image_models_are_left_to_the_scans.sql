SELECT
  mobilenet(frame).label,
  features(fares, frame_id, 1) AS f
FROM traffic
