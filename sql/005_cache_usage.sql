-- Mallard's catalog: when each cached inference result was last used, so that a cache limit
-- (SET inference_cache_limit) evicts the least recently used results first.
ALTER TABLE mallard.inference_cache ADD COLUMN IF NOT EXISTS last_used_at TIMESTAMP;
