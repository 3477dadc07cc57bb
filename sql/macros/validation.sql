-- Data validation (issue 4): the SQL that merges per-span partial statistics, builds
-- histograms and quantiles, and measures distances between distributions.  Loaded into every
-- connection as TEMP macros (never persisted).
--
-- A histogram is a list of buckets STRUCT(low DOUBLE, high DOUBLE, count DOUBLE): mass is
-- uniform inside a bucket, and a bucket with low = high is a point mass (TFDV's convention).
-- A span's quantile sketch (approx_quantile at 0, 1/B, ..., 1) is the histogram of B buckets
-- of equal mass between consecutive points, so merging spans is concatenating histograms.

-- Staging for statistics being computed (per connection, never written to the file): a span
-- is computed here first; COMPUTE STATISTICS copies it into mallard.statistics_*, VALIDATE
-- reads it in place and drops it.
CREATE TEMP TABLE IF NOT EXISTS mallard_span_rows AS SELECT * FROM mallard.statistics_spans LIMIT 0;
CREATE TEMP TABLE IF NOT EXISTS mallard_span_columns AS SELECT * FROM mallard.statistics_columns LIMIT 0;
CREATE TEMP TABLE IF NOT EXISTS mallard_span_values AS SELECT * FROM mallard.statistics_values LIMIT 0;

-- The shape of a string: digits become 9, capitals A, small letters a (first 64 characters).
-- value_shape('2013-01-01T10:00:00Z') = '9999-99-99A99:99:99A'
CREATE OR REPLACE TEMP MACRO value_shape(s) AS
    regexp_replace(regexp_replace(regexp_replace(left(s, 64), '[0-9]', '9', 'g'), '[A-Z]', 'A', 'g'),
                   '[a-z]', 'a', 'g')
    || CASE WHEN length(s) > 64 THEN '~' ELSE '' END;

-- Distinct values estimated from a KMV sketch: the k smallest 64-bit hashes of the distinct
-- values (exact when fewer than k values were seen).
CREATE OR REPLACE TEMP MACRO kmv_distinct(hashes, k) AS
    CASE WHEN len(hashes) < k THEN len(hashes)
         ELSE round((k - 1) / (hashes[k]::DOUBLE / 18446744073709551616.0)) END;

-- Mass of histogram h at or below x, and strictly below x.
CREATE OR REPLACE TEMP MACRO histogram_cdf(h, x) AS coalesce(list_sum(list_transform(h, lambda b:
    CASE WHEN b.high <= b.low THEN CASE WHEN x >= b.low THEN b.count ELSE 0.0 END
         ELSE b.count * greatest(0.0, least(1.0, (x - b.low) / (b.high - b.low))) END)), 0.0);
CREATE OR REPLACE TEMP MACRO histogram_cdf_below(h, x) AS coalesce(list_sum(list_transform(h, lambda b:
    CASE WHEN b.high <= b.low THEN CASE WHEN x > b.low THEN b.count ELSE 0.0 END
         ELSE b.count * greatest(0.0, least(1.0, (x - b.low) / (b.high - b.low))) END)), 0.0);

CREATE OR REPLACE TEMP MACRO histogram_total(h) AS coalesce(list_sum(list_transform(h, lambda b: b.count)), 0.0);

-- The sorted distinct bucket boundaries of a histogram.
CREATE OR REPLACE TEMP MACRO histogram_boundaries(h) AS
    list_sort(list_distinct(list_concat(list_transform(h, lambda b: b.low), list_transform(h, lambda b: b.high))));

-- A quantile sketch of n values as a histogram of equal-mass buckets.
CREATE OR REPLACE TEMP MACRO sketch_histogram(q, n) AS
    list_transform(range(1, len(q)), lambda i: {'low': q[i], 'high': q[i + 1], 'count': n / (len(q) - 1)});

-- Masses of h in the bins of sorted boundaries u: (-inf, u1], (u1, u2], ..., (u[k-1], u[k]].
CREATE OR REPLACE TEMP MACRO histogram_bin_masses(h, u) AS list_transform(range(1, len(u) + 1), lambda i:
    histogram_cdf(h, u[i]) - CASE WHEN i = 1 THEN 0.0 ELSE histogram_cdf(h, u[i - 1]) END);

-- Jensen-Shannon divergence in log base 2 (so in [0, 1]) of two histograms, as TFDV defines it:
-- both are re-bucketed onto the union of their boundaries, mass uniform within a bucket.
CREATE OR REPLACE TEMP MACRO jsd_of_masses(pairs, total_a, total_b) AS list_sum(list_transform(pairs, lambda m:
      CASE WHEN m[1] > 0 THEN 0.5 * (m[1] / total_a) * log2((m[1] / total_a) / ((m[1] / total_a + m[2] / total_b) / 2)) ELSE 0.0 END
    + CASE WHEN m[2] > 0 THEN 0.5 * (m[2] / total_b) * log2((m[2] / total_b) / ((m[1] / total_a + m[2] / total_b) / 2)) ELSE 0.0 END));
CREATE OR REPLACE TEMP MACRO histogram_jsd(a, b) AS
    CASE WHEN histogram_total(a) > 0 AND histogram_total(b) > 0 THEN greatest(0.0, least(1.0, jsd_of_masses(
        list_zip(histogram_bin_masses(a, histogram_boundaries(list_concat(a, b))),
                 histogram_bin_masses(b, histogram_boundaries(list_concat(a, b)))),
        histogram_total(a), histogram_total(b)))) END;

-- Jensen-Shannon divergence of histograms a and b over fixed bins: (-inf, u1], (u1, u2], ...,
-- (u[k], +inf) for sorted interior boundaries u.  With u the deciles of a reference (a), this is
-- a drift measure that extreme values cannot sway (MALLARD_NUMERIC_SHIFT).
CREATE OR REPLACE TEMP MACRO histogram_open_bin_masses(h, u) AS
    list_concat(histogram_bin_masses(h, u), [histogram_total(h) - histogram_cdf(h, u[len(u)])]);
CREATE OR REPLACE TEMP MACRO histogram_jsd_binned(a, b, u) AS
    CASE WHEN histogram_total(a) > 0 AND histogram_total(b) > 0 AND len(u) > 0 THEN greatest(0.0, least(1.0, jsd_of_masses(
        list_zip(histogram_open_bin_masses(a, u), histogram_open_bin_masses(b, u)),
        histogram_total(a), histogram_total(b)))) END;

-- The inverse of a CDF given at sorted points u (f: mass at or below, fb: mass below) at mass t;
-- j is the first point whose f reaches t.  Linear between points, a point mass where fb < f.
CREATE OR REPLACE TEMP MACRO cdf_inverse(u, f, fb, t, j) AS
    CASE WHEN j > len(u) THEN u[len(u)]
         WHEN j = 1 OR fb[j] < t THEN u[j]
         ELSE u[j - 1] + (t - f[j - 1]) / (fb[j] - f[j - 1]) * (u[j] - u[j - 1]) END;
CREATE OR REPLACE TEMP MACRO cdf_quantiles(u, f, fb, total, probs) AS list_transform(probs, lambda p:
    cdf_inverse(u, f, fb, p * total, 1 + len(list_filter(f, lambda v: v < p * total * (1 - 1e-12)))));

-- An equal-width histogram of `buckets` buckets over [lo, hi] read off histogram h.
CREATE OR REPLACE TEMP MACRO equal_width_histogram(h, lo, hi, buckets) AS
    CASE WHEN lo IS NULL THEN []
         WHEN hi <= lo THEN [{'low': lo, 'high': hi, 'count': histogram_total(h)}]
         ELSE list_transform(range(0, buckets), lambda k: {
             'low': lo + k * (hi - lo) / buckets,
             'high': CASE WHEN k = buckets - 1 THEN hi ELSE lo + (k + 1) * (hi - lo) / buckets END,
             'count': CASE WHEN k = buckets - 1 THEN histogram_total(h) ELSE histogram_cdf(h, lo + (k + 1) * (hi - lo) / buckets) END
                      - CASE WHEN k = 0 THEN 0.0 ELSE histogram_cdf(h, lo + k * (hi - lo) / buckets) END})
    END;

-- A quantile histogram: buckets between consecutive quantiles, equal counts (TFDV's QUANTILES).
CREATE OR REPLACE TEMP MACRO quantile_histogram(q, total) AS
    CASE WHEN q IS NULL OR len(q) < 2 THEN []
         ELSE list_transform(range(1, len(q)), lambda i: {'low': q[i], 'high': q[i + 1], 'count': total / (len(q) - 1)}) END;

-- How anomaly descriptions write numbers, fractions and example values.
CREATE OR REPLACE TEMP MACRO anomaly_number(x) AS coalesce(printf('%.6g', x::DOUBLE), 'NULL');
CREATE OR REPLACE TEMP MACRO anomaly_percent(x) AS coalesce(printf('%.2f%%', 100 * x::DOUBLE), 'NULL');
CREATE OR REPLACE TEMP MACRO anomaly_examples(values) AS
    array_to_string(list_transform(values, lambda v: '''' || v || ''''), ', ');

-- The partial statistics of a set: stored spans plus spans staged by this connection.
CREATE OR REPLACE TEMP MACRO validation_spans(stats_name) AS TABLE
    SELECT * FROM mallard.statistics_spans WHERE statistics = stats_name
    UNION ALL SELECT * FROM mallard_span_rows WHERE statistics = stats_name;
CREATE OR REPLACE TEMP MACRO validation_partials(stats_name) AS TABLE
    SELECT * FROM mallard.statistics_columns WHERE statistics = stats_name
    UNION ALL SELECT * FROM mallard_span_columns WHERE statistics = stats_name;
CREATE OR REPLACE TEMP MACRO validation_partial_values(stats_name) AS TABLE
    SELECT * FROM mallard.statistics_values WHERE statistics = stats_name
    UNION ALL SELECT * FROM mallard_span_values WHERE statistics = stats_name;

-- Merged value counts (kind 'value') and value-shape counts (kind 'pattern') of a set, ranked.
CREATE OR REPLACE TEMP MACRO validation_values(stats_name) AS TABLE
    SELECT column_name, kind, value, count,
           row_number() OVER (PARTITION BY column_name, kind ORDER BY count DESC, value) AS rank
    FROM (SELECT column_name, kind, value, sum(count)::BIGINT AS count
          FROM validation_partial_values(stats_name) GROUP BY ALL);

-- The statistics of a set, one row per column, merged over its spans.
CREATE OR REPLACE TEMP MACRO validation_statistics(stats_name) AS TABLE
WITH spans AS (
    SELECT count(*) AS spans, sum(row_count)::BIGINT AS row_count FROM validation_spans(stats_name)
),
parts AS (SELECT * FROM validation_partials(stats_name)),
base AS (
    SELECT column_name, min(position) AS position, any_value(kind) AS type, any_value(sql_type) AS sql_type,
           sum(present)::BIGINT AS present, sum(finite)::BIGINT AS finite, sum(nan_count)::BIGINT AS nan_count,
           sum(inf_count)::BIGINT AS inf_count, sum(zeros)::BIGINT AS zeros,
           sum(finite * mean) / nullif(sum(finite), 0) AS mean, min(min) AS min, max(max) AS max,
           sum(length_sum)::BIGINT AS length_sum, count(*) AS column_spans,
           bool_and(unstored_count = 0) AS all_values_stored, sum(unstored_count)::BIGINT AS unstored_count, sum(distinct_count)::BIGINT AS span_distinct,
           list_sort(list_distinct(flatten(list(distinct_hashes))))[1:1024] AS hashes,
           flatten(list(sketch_histogram(quantiles, finite)) FILTER (WHERE finite > 0)) AS sketch
    FROM parts GROUP BY column_name
),
spread AS (
    SELECT p.column_name, sum(p.m2 + p.finite * (p.mean - b.mean) ^ 2) AS m2
    FROM parts p JOIN base b USING (column_name) WHERE p.finite > 0 GROUP BY p.column_name
),
cdf AS (
    SELECT column_name, histogram_boundaries(sketch) AS u FROM base WHERE finite > 0
),
cdf_points AS (
    SELECT c.column_name, c.u,
           list_transform(c.u, lambda x: histogram_cdf(b.sketch, x)) AS f,
           list_transform(c.u, lambda x: histogram_cdf_below(b.sketch, x)) AS fb
    FROM cdf c JOIN base b USING (column_name)
),
deciles AS (
    SELECT column_name,
           cdf_quantiles(u, f, fb, f[len(f)], [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]) AS q
    FROM cdf_points
),
merged_values AS (
    SELECT column_name, count(*) AS stored_distinct,
           list({'value': value, 'count': count} ORDER BY count DESC, value)[1:20] AS top_values
    FROM validation_values(stats_name) WHERE kind = 'value' GROUP BY column_name
)
SELECT b.column_name, b.position, b.type, b.sql_type, s.spans,
       s.row_count AS count, b.present, s.row_count - b.present AS missing,
       (s.row_count - b.present) / nullif(s.row_count, 0) AS missing_fraction,
       b.zeros, b.nan_count, b.inf_count, b.mean, sqrt(sp.m2 / nullif(b.finite, 0)) AS std_dev,
       b.min, d.q[6] AS median, b.max,
       CASE WHEN d.q IS NOT NULL THEN list_concat([b.min], d.q[2:10], [b.max]) END AS quantiles,
       equal_width_histogram(b.sketch, b.min, b.max, 10) AS histogram,
       quantile_histogram(CASE WHEN d.q IS NOT NULL THEN list_concat([b.min], d.q[2:10], [b.max]) END, b.finite) AS quantile_histogram,
       CASE WHEN b.type NOT IN ('STRING', 'BOOLEAN') THEN NULL
            WHEN b.column_spans = 1 THEN b.span_distinct
            WHEN b.all_values_stored THEN coalesce(v.stored_distinct, 0)
            ELSE kmv_distinct(b.hashes, 1024) END::BIGINT AS distinct_count,
       b.length_sum / nullif(b.present, 0) AS avg_length,
       v.top_values, b.finite, b.unstored_count, b.sketch
FROM base b CROSS JOIN spans s
LEFT JOIN spread sp USING (column_name)
LEFT JOIN deciles d USING (column_name)
LEFT JOIN merged_values v USING (column_name)
ORDER BY b.position;

-- L-infinity distance (TFDV): max over values of |p_a(v) - p_b(v)|, each side normalized by
-- its own count of present values; and TFDV's normalized absolute difference
-- max |count_a(v) - count_b(v)| / (present_a + present_b).  One row per categorical column.
CREATE OR REPLACE TEMP MACRO validation_category_distances(stats_a, stats_b) AS TABLE
WITH a AS (SELECT column_name, value, count FROM validation_values(stats_a) WHERE kind = 'value'),
     b AS (SELECT column_name, value, count FROM validation_values(stats_b) WHERE kind = 'value'),
     na AS (SELECT column_name, sum(present) AS n FROM validation_partials(stats_a) GROUP BY ALL),
     nb AS (SELECT column_name, sum(present) AS n FROM validation_partials(stats_b) GROUP BY ALL),
     joined AS (
         SELECT column_name, value, coalesce(a.count, 0) AS count_a, coalesce(b.count, 0) AS count_b
         FROM a FULL OUTER JOIN b USING (column_name, value)
     )
SELECT j.column_name,
       max(abs(j.count_a / nullif(na.n, 0) - j.count_b / nullif(nb.n, 0))) AS l_infinity,
       arg_max(j.value, abs(j.count_a / nullif(na.n, 0) - j.count_b / nullif(nb.n, 0))) AS l_infinity_value,
       max(abs(j.count_a - j.count_b)) / nullif(any_value(na.n) + any_value(nb.n), 0) AS normalized_abs_difference
FROM joined j JOIN na USING (column_name) JOIN nb USING (column_name)
GROUP BY j.column_name;
