SELECT
  id,
  __MALLARD_FN_1(km, hour).label AS label,
  __MALLARD_FN_2(km * 1.6, 8) AS scores
FROM trips
WHERE
  __MALLARD_FN_1(km, hour).score > 0.9
-- function __mallard_fn_1: fares OVER 2 numbers OUTPUTS prediction
-- function __mallard_fn_2: fares OVER 2 numbers OUTPUTS logits
