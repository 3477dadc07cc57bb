-- Data validation (issue 4): the SQL that merges per-span partial statistics, builds
-- histograms and quantiles, and measures distances between distributions.  Loaded into every
-- connection as TEMP macros (never persisted).
--
-- A histogram is a list of buckets STRUCT(low DOUBLE, high DOUBLE, count DOUBLE): mass is
-- uniform inside a bucket, and a bucket with low = high is a point mass (TFDV's convention).
--
-- Numbers are sketched with DDSketch (Masson, Rim and Lee, VLDB 2019): a value x goes to bin
-- ceil(log_gamma |x|) (signed, with a bin of its own for 0), gamma = (1 + a) / (1 - a) for a
-- relative accuracy a of 1%; a span's sketch is the map bin -> count that DuckDB's
-- histogram() aggregate builds in the statistics scan, and sketches of spans merge by adding
-- counts bin by bin, exactly.  Time (epoch seconds) uses hourly bins instead.

-- The shape of a string: digits become 9, capitals A, small letters a (first 64 characters).
-- value_shape('2013-01-01T10:00:00Z') = '9999-99-99A99:99:99A'
CREATE OR REPLACE TEMP MACRO value_shape(s) AS
    regexp_replace(regexp_replace(regexp_replace(left(s, 64), '[0-9]', '9', 'g'), '[A-Z]', 'A', 'g'),
                   '[a-z]', 'a', 'g')
    || CASE WHEN length(s) > 64 THEN '~' ELSE '' END;

-- The DDSketch bin of a finite number (relative accuracy 1%; |x| < 1e-9 counts as 0), the
-- hourly bin of a time in epoch seconds, and the bounds of a bin.
CREATE OR REPLACE TEMP MACRO sketch_key(x) AS
    CASE WHEN abs(x) < 1e-9 THEN 0
         ELSE (sign(x) * (ceil(ln(abs(x)) / ln(1.01 / 0.99)) + 1100))::INTEGER END;
CREATE OR REPLACE TEMP MACRO sketch_time_key(x) AS CASE WHEN isfinite(x) THEN floor(x / 3600)::INTEGER END;
CREATE OR REPLACE TEMP MACRO sketch_bucket_low(key, kind) AS
    CASE WHEN kind = 'TIMESTAMP' THEN key * 3600.0
         WHEN key = 0 THEN 0.0
         WHEN key > 0 THEN pow(1.01 / 0.99, key - 1101)
         ELSE -pow(1.01 / 0.99, -key - 1100) END;
CREATE OR REPLACE TEMP MACRO sketch_bucket_high(key, kind) AS
    CASE WHEN kind = 'TIMESTAMP' THEN (key + 1) * 3600.0
         WHEN key = 0 THEN 0.0
         WHEN key > 0 THEN pow(1.01 / 0.99, key - 1100)
         ELSE -pow(1.01 / 0.99, -key - 1101) END;
-- A sketch (bin -> count) as a histogram, its outer buckets clipped to [lo, hi].
CREATE OR REPLACE TEMP MACRO sketch_histogram(bins, kind, lo, hi) AS
    list_sort(list_transform(map_entries(bins), lambda e: {
        'low': greatest(lo, sketch_bucket_low(e.key, kind)),
        'high': least(hi, sketch_bucket_high(e.key, kind)), 'count': e.value::DOUBLE}));

-- Distinct values estimated from a KMV sketch: the k smallest 64-bit hashes of the distinct
-- values (exact when fewer than k values were seen).
CREATE OR REPLACE TEMP MACRO kmv_distinct(hashes, k) AS
    CASE WHEN len(hashes) < k THEN len(hashes)
         ELSE round((k - 1) / (hashes[k]::DOUBLE / 18446744073709551616.0)) END;

-- Mass of histogram h at or below x.
CREATE OR REPLACE TEMP MACRO histogram_cdf(h, x) AS coalesce(list_sum(list_transform(h, lambda b:
    CASE WHEN b.high <= b.low THEN CASE WHEN x >= b.low THEN b.count ELSE 0.0 END
         ELSE b.count * greatest(0.0, least(1.0, (x - b.low) / (b.high - b.low))) END)), 0.0);

CREATE OR REPLACE TEMP MACRO histogram_total(h) AS coalesce(list_sum(list_transform(h, lambda b: b.count)), 0.0);

-- The sorted distinct bucket boundaries of a histogram.
CREATE OR REPLACE TEMP MACRO histogram_boundaries(h) AS
    list_sort(list_distinct(list_concat(list_transform(h, lambda b: b.low), list_transform(h, lambda b: b.high))));

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

-- Masses of h in the open bins (-inf, u1], (u1, u2], ..., (u[k], +inf) cut at sorted u.
CREATE OR REPLACE TEMP MACRO histogram_open_bin_masses(h, u) AS
    list_concat(histogram_bin_masses(h, u), [histogram_total(h) - histogram_cdf(h, u[len(u)])]);
-- Jensen-Shannon divergence between reference masses (over the open bins cut at u) and h's
-- masses over the same bins: MALLARD_NUMERIC_SHIFT, with u the reference's deciles, so that
-- extreme values cannot move the bins.
CREATE OR REPLACE TEMP MACRO histogram_jsd_to_masses(h, u, masses) AS
    CASE WHEN histogram_total(h) > 0 AND len(u) > 0 AND list_sum(masses) > 0 THEN greatest(0.0, least(1.0,
        jsd_of_masses(list_zip(masses, histogram_open_bin_masses(h, u)), list_sum(masses), histogram_total(h)))) END;
-- The deciles that cut a column's open bins, from its 11 quantiles (distinct interior ones).
CREATE OR REPLACE TEMP MACRO decile_cuts(quantiles) AS list_sort(list_distinct(quantiles[2:10]));

-- A quantile histogram: buckets between consecutive quantiles, equal counts (TFDV's QUANTILES).
CREATE OR REPLACE TEMP MACRO quantile_histogram(q, total) AS
    CASE WHEN q IS NULL OR len(q) < 2 THEN []
         ELSE list_transform(range(1, len(q)), lambda i: {'low': q[i], 'high': q[i + 1], 'count': total / (len(q) - 1)}) END;

-- How anomaly descriptions write numbers, fractions and example values.
CREATE OR REPLACE TEMP MACRO anomaly_number(x) AS coalesce(printf('%.6g', x::DOUBLE), 'NULL');
CREATE OR REPLACE TEMP MACRO anomaly_percent(x) AS coalesce(printf('%.2f%%', 100 * x::DOUBLE), 'NULL');
CREATE OR REPLACE TEMP MACRO anomaly_examples(values) AS
    array_to_string(list_transform(values, lambda v: '''' || v || ''''), ', ');

-- The partial statistics of a set.  While a statement computes statistics it has not stored
-- (VALIDATE of a table, say), engine.validation.statistics_store stages them in temp tables
-- (mallard_span_*) and redefines these three macros to read those too, until it drops them.
CREATE OR REPLACE TEMP MACRO validation_spans(stats_name) AS TABLE
    SELECT * FROM mallard.statistics_spans WHERE statistics = stats_name;
CREATE OR REPLACE TEMP MACRO validation_partials(stats_name) AS TABLE
    SELECT * FROM mallard.statistics_columns WHERE statistics = stats_name;
CREATE OR REPLACE TEMP MACRO validation_partial_values(stats_name) AS TABLE
    SELECT * FROM mallard.statistics_values WHERE statistics = stats_name;

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
           bool_and(unstored_count = 0) AS all_values_stored, sum(unstored_count)::BIGINT AS unstored_count,
           sum(distinct_count)::BIGINT AS span_distinct,
           list_sort(list_distinct(flatten(list(distinct_hashes))))[1:1024] AS hashes
    FROM parts GROUP BY column_name
),
spread AS (
    SELECT p.column_name, sum(p.m2 + p.finite * (p.mean - b.mean) ^ 2) AS m2
    FROM parts p JOIN base b USING (column_name) WHERE p.finite > 0 GROUP BY p.column_name
),
bins AS (
    SELECT column_name, key, sum(value)::DOUBLE AS count
    FROM (SELECT column_name, unnest(map_entries(bins), recursive := true) FROM parts WHERE finite > 0)
    GROUP BY column_name, key
),
buckets AS (
    SELECT s.column_name, s.count,
           greatest(b.min, sketch_bucket_low(s.key, b.type)) AS low,
           least(b.max, sketch_bucket_high(s.key, b.type)) AS high,
           sum(s.count) OVER (PARTITION BY s.column_name ORDER BY sketch_bucket_low(s.key, b.type), s.key
                              ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before,
           sum(s.count) OVER (PARTITION BY s.column_name) AS total
    FROM bins s JOIN base b USING (column_name)
),
deciles AS (
    SELECT column_name, list(q ORDER BY p) AS q FROM (
        SELECT c.column_name, p.p,
               min(CASE WHEN c.high > c.low THEN c.low + (p.p * c.total - coalesce(c.before, 0)) / c.count * (c.high - c.low)
                        ELSE c.low END) AS q
        FROM buckets c, (SELECT unnest([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]) AS p) p
        WHERE coalesce(c.before, 0) < p.p * c.total AND p.p * c.total <= coalesce(c.before, 0) + c.count
        GROUP BY c.column_name, p.p)
    GROUP BY column_name
),
edges AS (
    SELECT e.column_name, list(e.f ORDER BY e.k) AS f FROM (
        SELECT b.column_name, k.k,
               sum(CASE WHEN c.high <= c.low THEN CASE WHEN c.low <= b.min + k.k * (b.max - b.min) / 10 THEN c.count ELSE 0 END
                        ELSE c.count * greatest(0.0, least(1.0, (b.min + k.k * (b.max - b.min) / 10 - c.low) / (c.high - c.low)))
                   END) AS f
        FROM base b JOIN buckets c USING (column_name), (SELECT unnest(range(1, 10)) AS k) k
        WHERE b.max > b.min
        GROUP BY b.column_name, k.k) e
    GROUP BY e.column_name
),
merged_values AS (
    SELECT column_name, count(*) AS stored_distinct,
           list({'value': value, 'count': count} ORDER BY count DESC, value)[1:20] AS top_values
    FROM validation_values(stats_name) WHERE kind = 'value' GROUP BY column_name
),
quantile_lists AS (
    SELECT b.column_name, CASE WHEN b.finite > 0 THEN list_concat([b.min], coalesce(d.q, []), [b.max]) END AS quantiles
    FROM base b LEFT JOIN deciles d USING (column_name)
)
SELECT b.column_name, b.position, b.type, b.sql_type, s.spans,
       s.row_count AS count, b.present, s.row_count - b.present AS missing,
       (s.row_count - b.present) / nullif(s.row_count, 0) AS missing_fraction,
       b.zeros, b.nan_count, b.inf_count, b.mean, sqrt(sp.m2 / nullif(b.finite, 0)) AS std_dev,
       b.min, CASE WHEN len(q.quantiles) = 11 THEN q.quantiles[6] END AS median, b.max, q.quantiles,
       CASE WHEN b.finite IS NULL OR b.finite = 0 THEN []
            WHEN b.max <= b.min THEN [{'low': b.min, 'high': b.max, 'count': b.finite::DOUBLE}]
            ELSE list_transform(range(1, 11), lambda k: {
                'low': b.min + (k - 1) * (b.max - b.min) / 10,
                'high': CASE WHEN k = 10 THEN b.max ELSE b.min + k * (b.max - b.min) / 10 END,
                'count': CASE WHEN k = 10 THEN b.finite::DOUBLE ELSE e.f[k] END - CASE WHEN k = 1 THEN 0.0 ELSE e.f[k - 1] END})
       END AS histogram,
       quantile_histogram(q.quantiles, b.finite) AS quantile_histogram,
       CASE WHEN b.type NOT IN ('STRING', 'BOOLEAN') THEN NULL
            WHEN b.column_spans = 1 THEN b.span_distinct
            WHEN b.all_values_stored THEN coalesce(v.stored_distinct, 0)
            ELSE kmv_distinct(b.hashes, 1024) END::BIGINT AS distinct_count,
       b.length_sum / nullif(b.present, 0) AS avg_length,
       v.top_values, b.finite, b.unstored_count, coalesce(h.sketch, []) AS sketch
FROM base b CROSS JOIN spans s
LEFT JOIN spread sp USING (column_name)
LEFT JOIN quantile_lists q USING (column_name)
LEFT JOIN edges e USING (column_name)
LEFT JOIN merged_values v USING (column_name)
LEFT JOIN (SELECT column_name, list({'low': low, 'high': high, 'count': count} ORDER BY low, high) AS sketch
           FROM buckets GROUP BY column_name) h USING (column_name)
ORDER BY b.position;

-- A data schema version as a table, one row per column, read from its JSON document in
-- mallard.schemas (schema_version NULL: the latest).  SHOW SCHEMA shows its first columns;
-- VALIDATE reads the thresholds and baselines.
CREATE OR REPLACE TEMP MACRO validation_schema(schema_name, schema_version) AS TABLE
WITH document AS (
    SELECT json_transform(body, '{"feature":[{"name":"VARCHAR","type":"VARCHAR","presence":{"min_fraction":"DOUBLE","min_count":"BIGINT"},"string_domain":{"value":["VARCHAR"]},"distribution_constraints":{"min_domain_mass":"DOUBLE"},"int_domain":{"min":"DOUBLE","max":"DOUBLE","disallow_nan":"BOOLEAN","disallow_inf":"BOOLEAN"},"float_domain":{"min":"DOUBLE","max":"DOUBLE","disallow_nan":"BOOLEAN","disallow_inf":"BOOLEAN"},"unique_constraints":{"min":"BIGINT","max":"BIGINT"},"in_environment":["VARCHAR"],"not_in_environment":["VARCHAR"],"drift_comparator":{"infinity_norm":{"threshold":"DOUBLE"},"normalized_abs_difference":{"threshold":"DOUBLE"},"jensen_shannon_divergence":{"threshold":"DOUBLE","source":{"type":"VARCHAR"}}},"skew_comparator":{"infinity_norm":{"threshold":"DOUBLE"},"normalized_abs_difference":{"threshold":"DOUBLE"},"jensen_shannon_divergence":{"threshold":"DOUBLE","source":{"type":"VARCHAR"}}},"lifecycle_stage":"VARCHAR","mallard":{"sql_type":"VARCHAR","value_patterns":{"pattern":["VARCHAR"],"max_off_pattern_fraction":"DOUBLE"},"shift_threshold":"DOUBLE","missing_rise_threshold":"DOUBLE","baseline":{"count":"DOUBLE","missing_fraction":"DOUBLE","mean":"DOUBLE","quantiles":["DOUBLE"],"decile_cuts":["DOUBLE"],"decile_masses":["DOUBLE"]},"inferred":["VARCHAR"]}}]}') AS doc
    FROM mallard.schemas
    WHERE name = schema_name
      AND version = coalesce(schema_version, (SELECT max(version) FROM mallard.schemas WHERE name = schema_name))
),
features AS (
    SELECT unnest(doc.feature) AS f, generate_subscripts(doc.feature, 1) - 1 AS position FROM document
),
flat AS (
    SELECT position, f.name AS column_name, f.type AS type, f.mallard.sql_type AS sql_type,
           coalesce(f.presence.min_fraction, 0.0) AS min_fraction, coalesce(f.presence.min_count, 0) AS min_count,
           f.string_domain.value AS domain,
           CASE WHEN f.string_domain.value IS NOT NULL THEN coalesce(f.distribution_constraints.min_domain_mass, 1.0) END
               AS min_domain_mass,
           coalesce(f.int_domain.min, f.float_domain.min) AS min, coalesce(f.int_domain.max, f.float_domain.max) AS max,
           coalesce(f.float_domain.disallow_nan, f.int_domain.disallow_nan, false) AS disallow_nan,
           coalesce(f.float_domain.disallow_inf, f.int_domain.disallow_inf, false) AS disallow_inf,
           f.unique_constraints.min AS unique_min, f.unique_constraints.max AS unique_max,
           f.mallard.value_patterns.pattern AS patterns,
           f.mallard.value_patterns.max_off_pattern_fraction AS max_off_pattern_fraction,
           coalesce(f.in_environment, []) AS in_environment, coalesce(f.not_in_environment, []) AS not_in_environment,
           f.drift_comparator.infinity_norm.threshold AS drift_l_infinity,
           f.skew_comparator.infinity_norm.threshold AS skew_l_infinity,
           f.drift_comparator.normalized_abs_difference.threshold AS drift_normalized_abs_difference,
           f.skew_comparator.normalized_abs_difference.threshold AS skew_normalized_abs_difference,
           f.drift_comparator.jensen_shannon_divergence.threshold AS drift_jensen_shannon_divergence,
           f.skew_comparator.jensen_shannon_divergence.threshold AS skew_jensen_shannon_divergence,
           coalesce(f.drift_comparator.jensen_shannon_divergence.source.type,
                    f.skew_comparator.jensen_shannon_divergence.source.type) AS jensen_shannon_histogram,
           f.mallard.shift_threshold AS shift_threshold, f.mallard.missing_rise_threshold AS missing_rise_threshold,
           coalesce(f.lifecycle_stage = 'DEPRECATED', false) AS deprecated,
           f.mallard.baseline.count AS baseline_count, f.mallard.baseline.missing_fraction AS baseline_missing_fraction,
           f.mallard.baseline.mean AS baseline_mean, f.mallard.baseline.quantiles AS baseline_quantiles,
           f.mallard.baseline.decile_cuts AS baseline_cuts, f.mallard.baseline.decile_masses AS baseline_masses,
           coalesce(list_contains(f.mallard.inferred, 'range'), false) AS inferred_range
    FROM features
)
SELECT *,
       nullif(concat_ws(', ',
           'l_infinity <= ' || printf('%g', drift_l_infinity),
           'normalized_abs_difference <= ' || printf('%g', drift_normalized_abs_difference),
           'jensen_shannon_divergence <= ' || printf('%g', drift_jensen_shannon_divergence)
               || coalesce(' (' || lower(jensen_shannon_histogram) || ' histograms)', '')), '') AS drift_comparator,
       nullif(concat_ws(', ',
           'l_infinity <= ' || printf('%g', skew_l_infinity),
           'normalized_abs_difference <= ' || printf('%g', skew_normalized_abs_difference),
           'jensen_shannon_divergence <= ' || printf('%g', skew_jensen_shannon_divergence)
               || coalesce(' (' || lower(jensen_shannon_histogram) || ' histograms)', '')), '') AS skew_comparator
FROM flat
ORDER BY position;

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
