SELECT
  id,
  fares(km, hour).label,
  logits(fares, km * 1.6, 8) AS scores
FROM trips
WHERE
  fares(km, hour).score > 0.9
