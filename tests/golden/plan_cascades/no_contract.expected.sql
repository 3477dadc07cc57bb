SELECT
  frame_id
FROM traffic
WHERE
  MOBILENET(frame).label = 'alp'
