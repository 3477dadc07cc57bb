"""The anomaly checks: one SQL query each, over statistics, never over rows.

Every query reads relations :mod:`engine.validation.validation_run` prepares for one run:

- ``mallard_v_schema``: the schema's columns (``expected`` under the run's environment,
  thresholds already resolved against the settings), keyed by lower-case ``key``;
- ``mallard_v_current`` / ``mallard_v_current_values``: the validated data's statistics;
- ``mallard_v_columns``: expected schema columns joined with the data's columns;
- ``mallard_v_dataset``: one row of row counts and dataset constraints;
- ``mallard_v_previous`` / ``mallard_v_training`` and their ``*_distances`` (categorical
  L-infinity and normalized absolute difference), when VALIDATE names them.

and returns ``column_name, anomaly, severity, description, measured, threshold, source``.
The kinds carry TFDV's names; ``MALLARD_*`` kinds are checks TFDV does not make.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    """One anomaly query; ``needs`` names the reference relation it reads (None: none)."""

    name: str
    sql: str
    needs: str | None = None


def _comparator_checks(reference: str, prefix: str) -> tuple[Check, ...]:
    """Drift (vs ``previous``) or skew (vs ``training``) comparators, as TFDV defines them."""
    return (
        Check(f"{prefix}_l_infinity", f"""
SELECT c.column_name, 'COMPARATOR_L_INFTY_HIGH', 'ERROR',
       'L-infinity distance to the {reference} statistics is ' || anomaly_number(d.l_infinity)
       || ' (largest change at value ''' || coalesce(d.l_infinity_value, '') || '''), above the {prefix} threshold '
       || anomaly_number(c.{prefix}_l_infinity), d.l_infinity, c.{prefix}_l_infinity, 'TFDV'
FROM mallard_v_columns c JOIN mallard_v_{reference}_distances d ON lower(d.column_name) = c.key
WHERE c.type_ok AND c.{prefix}_l_infinity IS NOT NULL AND d.l_infinity > c.{prefix}_l_infinity""", reference),
        Check(f"{prefix}_normalized_abs_difference", f"""
SELECT c.column_name, 'COMPARATOR_NORMALIZED_ABSOLUTE_DIFFERENCE_HIGH', 'ERROR',
       'normalized absolute difference to the {reference} statistics is '
       || anomaly_number(d.normalized_abs_difference) || ', above the {prefix} threshold '
       || anomaly_number(c.{prefix}_normalized_abs_difference),
       d.normalized_abs_difference, c.{prefix}_normalized_abs_difference, 'TFDV'
FROM mallard_v_columns c JOIN mallard_v_{reference}_distances d ON lower(d.column_name) = c.key
WHERE c.type_ok AND c.{prefix}_normalized_abs_difference IS NOT NULL
  AND d.normalized_abs_difference > c.{prefix}_normalized_abs_difference""", reference),
        Check(f"{prefix}_jensen_shannon_divergence", f"""
SELECT column_name, 'COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH', 'ERROR',
       'Jensen-Shannon divergence of the ' || lower(jensen_shannon_histogram) || ' histograms to the {reference} statistics is '
       || anomaly_number(jsd)
       || ', above the {prefix} threshold ' || anomaly_number({prefix}_jensen_shannon_divergence)
       || ' (mean ' || anomaly_number(reference_mean) || ' -> ' || anomaly_number(mean) || ')',
       jsd, {prefix}_jensen_shannon_divergence, 'TFDV'
FROM (SELECT c.column_name, c.mean, c.{prefix}_jensen_shannon_divergence, c.jensen_shannon_histogram,
             r.mean AS reference_mean,
             CASE WHEN c.jensen_shannon_histogram = 'QUANTILES'
                  THEN histogram_jsd(c.quantile_histogram, r.quantile_histogram)
                  ELSE histogram_jsd(c.histogram, r.histogram) END AS jsd
      FROM mallard_v_columns c JOIN mallard_v_{reference} r USING (key)
      WHERE c.type_ok AND c.{prefix}_jensen_shannon_divergence IS NOT NULL)
WHERE jsd > {prefix}_jensen_shannon_divergence""", reference),
    )


CHECKS: tuple[Check, ...] = (
    Check("missing_column", """
SELECT s.column_name, 'SCHEMA_MISSING_COLUMN', 'ERROR',
       'column is in the schema (as ' || s.type || ') but not in the data', NULL, NULL, 'TFDV'
FROM mallard_v_schema s
WHERE s.expected AND (s.min_count > 0 OR s.min_fraction > 0)
  AND s.key NOT IN (SELECT key FROM mallard_v_current)"""),
    Check("new_column", """
SELECT c.column_name, 'SCHEMA_NEW_COLUMN', 'ERROR',
       'column (' || c.sql_type || ') is in the data but not in the schema', NULL, NULL, 'TFDV'
FROM mallard_v_current c WHERE c.key NOT IN (SELECT key FROM mallard_v_schema)"""),
    Check("data_type", """
SELECT column_name, 'UNEXPECTED_DATA_TYPE', 'ERROR',
       'expected ' || type || ' values, found ' || data_type || ' (' || sql_type || ')', NULL, NULL, 'TFDV'
FROM mallard_v_columns WHERE NOT type_ok"""),
    Check("fraction_present", """
SELECT column_name, 'FEATURE_TYPE_LOW_FRACTION_PRESENT', 'ERROR',
       anomaly_percent(present / count) || ' of rows have a value (' || missing || ' missing); the schema asks for at least '
       || anomaly_percent(min_fraction), present / count, min_fraction, 'TFDV'
FROM mallard_v_columns WHERE count > 0 AND present / count < min_fraction"""),
    Check("number_present", """
SELECT column_name, 'FEATURE_TYPE_LOW_NUMBER_PRESENT', 'ERROR',
       present || ' rows have a value; the schema asks for at least ' || min_count, present, min_count, 'TFDV'
FROM mallard_v_columns WHERE present < min_count"""),
    Check("domain", """
SELECT c.column_name, 'ENUM_TYPE_UNEXPECTED_STRING_VALUES', 'ERROR',
       anomaly_percent(o.outside / c.present) || ' of values are outside the domain of ' || len(c.domain)
       || ' values, e.g. ' || anomaly_examples(o.examples), o.outside / c.present, 1 - c.min_domain_mass, 'TFDV'
FROM mallard_v_columns c
JOIN (SELECT c.key, coalesce(sum(v.count), 0) + any_value(c.unstored_count) AS outside,
             list(v.value ORDER BY v.count DESC)[1:5] AS examples
      FROM mallard_v_columns c JOIN mallard_v_current_values v ON lower(v.column_name) = c.key
      WHERE v.kind = 'value' AND c.domain IS NOT NULL AND NOT list_contains(c.domain, v.value)
      GROUP BY c.key) o USING (key)
WHERE c.type_ok AND c.present > 0 AND o.outside / c.present > 1 - c.min_domain_mass"""),
    Check("big_value", """
SELECT column_name, CASE WHEN type = 'INT' THEN 'INT_TYPE_BIG_INT' ELSE 'FLOAT_TYPE_BIG_FLOAT' END,
       CASE WHEN inferred_range THEN 'WARNING' ELSE 'ERROR' END,
       'largest value ' || anomaly_number(data_max) || ' is above the schema''s max ' || anomaly_number(max)
       || CASE WHEN inferred_range THEN ' (an inferred range: ALTER SCHEMA ' || schema_name || ' ALTER COLUMN '
               || column_name || ' SET (max = ' || anomaly_number(data_max) || ') widens it, SET (max = NULL) drops it)'
               ELSE '' END,
       data_max, max, 'TFDV'
FROM mallard_v_columns WHERE type_ok AND max IS NOT NULL AND data_max > max"""),
    Check("small_value", """
SELECT column_name, CASE WHEN type = 'INT' THEN 'INT_TYPE_SMALL_INT' ELSE 'FLOAT_TYPE_SMALL_FLOAT' END,
       CASE WHEN inferred_range THEN 'WARNING' ELSE 'ERROR' END,
       'smallest value ' || anomaly_number(data_min) || ' is below the schema''s min ' || anomaly_number(min)
       || CASE WHEN inferred_range THEN ' (an inferred range: ALTER SCHEMA ' || schema_name || ' ALTER COLUMN '
               || column_name || ' SET (min = ' || anomaly_number(data_min) || ') widens it, SET (min = NULL) drops it)'
               ELSE '' END,
       data_min, min, 'TFDV'
FROM mallard_v_columns WHERE type_ok AND min IS NOT NULL AND data_min < min"""),
    Check("nan", """
SELECT column_name, 'FLOAT_TYPE_HAS_NAN', 'ERROR', nan_count || ' values are NaN', nan_count, 0, 'TFDV'
FROM mallard_v_columns WHERE type_ok AND disallow_nan AND nan_count > 0"""),
    Check("inf", """
SELECT column_name, 'FLOAT_TYPE_HAS_INF', 'ERROR', inf_count || ' values are infinite', inf_count, 0, 'TFDV'
FROM mallard_v_columns WHERE type_ok AND disallow_inf AND inf_count > 0"""),
    Check("high_unique", """
SELECT column_name, 'FEATURE_TYPE_HIGH_UNIQUE', 'ERROR',
       distinct_count || ' distinct values, more than the schema''s ' || unique_max, distinct_count, unique_max, 'TFDV'
FROM mallard_v_columns WHERE type_ok AND unique_max IS NOT NULL AND distinct_count > unique_max"""),
    Check("low_unique", """
SELECT column_name, 'FEATURE_TYPE_LOW_UNIQUE', 'ERROR',
       distinct_count || ' distinct values, fewer than the schema''s ' || unique_min, distinct_count, unique_min, 'TFDV'
FROM mallard_v_columns WHERE type_ok AND unique_min IS NOT NULL AND distinct_count < unique_min"""),
    Check("dataset_low", """
SELECT NULL, 'DATASET_LOW_NUM_EXAMPLES', 'ERROR',
       row_count || ' rows, fewer than the schema''s ' || min_examples_count, row_count, min_examples_count, 'TFDV'
FROM mallard_v_dataset WHERE row_count < min_examples_count"""),
    Check("dataset_high", """
SELECT NULL, 'DATASET_HIGH_NUM_EXAMPLES', 'ERROR',
       row_count || ' rows, more than the schema''s ' || max_examples_count, row_count, max_examples_count, 'TFDV'
FROM mallard_v_dataset WHERE row_count > max_examples_count"""),
    Check("fewer_than_previous", """
SELECT NULL, 'COMPARATOR_LOW_NUM_EXAMPLES', 'ERROR',
       row_count || ' rows are ' || anomaly_number(row_count / previous_row_count) || ' of the previous '
       || previous_row_count || ', below the threshold ' || anomaly_number(drift_min_fraction),
       row_count / previous_row_count, drift_min_fraction, 'TFDV'
FROM mallard_v_dataset WHERE previous_row_count > 0 AND row_count / previous_row_count < drift_min_fraction"""),
    Check("more_than_previous", """
SELECT NULL, 'COMPARATOR_HIGH_NUM_EXAMPLES', 'ERROR',
       row_count || ' rows are ' || anomaly_number(row_count / previous_row_count) || ' times the previous '
       || previous_row_count || ', above the threshold ' || anomaly_number(drift_max_fraction),
       row_count / previous_row_count, drift_max_fraction, 'TFDV'
FROM mallard_v_dataset WHERE previous_row_count > 0 AND row_count / previous_row_count > drift_max_fraction"""),
    *_comparator_checks("previous", "drift"),
    *_comparator_checks("training", "skew"),
    Check("numeric_shift", """
SELECT column_name, 'MALLARD_NUMERIC_SHIFT', 'WARNING',
       'distribution moved from the statistics the schema was inferred from: Jensen-Shannon divergence '
       || anomaly_number(jsd) || ' over the baseline''s deciles (median ' || anomaly_number(baseline_quantiles[6]) || ' -> '
       || anomaly_number(median) || ', mean ' || anomaly_number(baseline_mean) || ' -> ' || anomaly_number(mean) || ')',
       jsd, shift_threshold, 'MALLARD'
FROM (SELECT *, histogram_jsd_to_masses(sketch, baseline_cuts, baseline_masses) AS jsd
      FROM mallard_v_columns
      WHERE type_ok AND type IN ('INT', 'FLOAT') AND baseline_masses IS NOT NULL AND shift_threshold < 1
        AND NOT shift_covered)
WHERE jsd > shift_threshold"""),
    Check("missing_rise", """
SELECT column_name, 'MALLARD_MISSING_RISE', 'WARNING',
       anomaly_percent(missing_fraction) || ' of rows are missing a value, up from '
       || anomaly_percent(baseline_missing_fraction) || ' in the statistics the schema was inferred from',
       missing_fraction - baseline_missing_fraction, missing_rise_threshold, 'MALLARD'
FROM mallard_v_columns
WHERE min_fraction < 1 AND missing_rise_threshold < 1 AND count > 0
  AND missing_fraction - baseline_missing_fraction > missing_rise_threshold"""),
    Check("format_change", """
SELECT c.column_name, 'MALLARD_FORMAT_CHANGE', 'WARNING',
       anomaly_percent(o.off / c.present) || ' of values have a shape outside the schema''s patterns '
       || anomaly_examples(c.patterns[1:3]) || ', e.g. ' || anomaly_examples(o.examples),
       o.off / c.present, c.max_off_pattern_fraction, 'MALLARD'
FROM mallard_v_columns c
JOIN (SELECT c.key, c.present - coalesce(sum(v.count) FILTER (WHERE list_contains(c.patterns, v.value)), 0) AS off,
             list(v.value ORDER BY v.count DESC) FILTER (WHERE NOT list_contains(c.patterns, v.value))[1:3] AS examples
      FROM mallard_v_columns c LEFT JOIN mallard_v_current_values v ON lower(v.column_name) = c.key AND v.kind = 'pattern'
      WHERE c.patterns IS NOT NULL AND c.present > 0
      GROUP BY c.key, c.present) o USING (key)
WHERE c.type_ok AND c.max_off_pattern_fraction < 1 AND o.off / c.present > c.max_off_pattern_fraction"""),
    Check("duplicates", """
SELECT NULL, 'MALLARD_DUPLICATE_ROWS', 'WARNING',
       duplicate_rows || ' rows (' || anomaly_percent(duplicate_rows / row_count) || ') repeat an earlier row',
       duplicate_rows / row_count, max_duplicate_fraction, 'MALLARD'
FROM mallard_v_dataset WHERE row_count > 0 AND max_duplicate_fraction < 1
  AND duplicate_rows / row_count > max_duplicate_fraction"""),
)
