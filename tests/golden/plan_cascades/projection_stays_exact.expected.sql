SELECT
  frame_id,
  MOBILENET(frame).label
FROM traffic
WHERE
  MOBILENET(frame).label = 'alp'
-- accuracy 0.95
-- note inference_accuracy = 0.95 not applied: a cascade answers a WHERE condition <model>(frame).<label|class_id|score> <op> <constant>, and this query has 2 model calls (mobilenet); exact inference
