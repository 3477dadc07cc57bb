-- Mallard's catalog, cascades (issue 13, part 3): aggregates and top-k under an accuracy
-- contract (BlazeIt) recorded in mallard.cascades next to selections.

ALTER TABLE mallard.cascades ADD COLUMN kind VARCHAR DEFAULT 'selection';  -- selection | count | avg | top_k
ALTER TABLE mallard.cascades ADD COLUMN estimate DOUBLE;         -- count/avg: the answer returned (unrounded)
ALTER TABLE mallard.cascades ADD COLUMN interval_low DOUBLE;     -- its 95% confidence interval
ALTER TABLE mallard.cascades ADD COLUMN interval_high DOUBLE;
ALTER TABLE mallard.cascades ADD COLUMN estimate_sample BIGINT;  -- reference answers the estimate / top k rests on
ALTER TABLE mallard.cascades ADD COLUMN variance_ratio DOUBLE;   -- Var with the control variate / Var of plain sampling
ALTER TABLE mallard.cascades ADD COLUMN overlap_bound DOUBLE;    -- top_k: the overlap with the exact top k certified
