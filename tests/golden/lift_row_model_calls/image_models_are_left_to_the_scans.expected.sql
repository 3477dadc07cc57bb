SELECT
  MOBILENET(frame).label,
  __MALLARD_FN_1(frame_id, 1) AS f
FROM traffic
-- function __mallard_fn_1: fares OVER 2 numbers OUTPUTS features
