"""TFDV schemas in and out: IMPORT SCHEMA of the schema TFDV itself wrote for the flights
(tests/data/flights_tfdv_schema.pbtxt, made by scripts/tfdv_flights_schema.py with TFDV
1.16.1), EXPORT SCHEMA ... WITH (format = 'tfdv'), and what could not be mapped."""
from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

import engine
from engine.validation import export_schema, import_schema
from engine.validation.properties import COLUMN_PROPERTIES
from engine.validation.schema import ColumnSchema, Schema
from engine.validation.tfdv_schema import MALLARD_ONLY, SHARED, schema_from_tfdv, schema_to_tfdv
from tests.conftest import ROOT
from tests.test_validation_flights import flights_csv, load_flights
from tests.test_validation_schema import schema_rows

TFDV_SCHEMA = ROOT / "tests" / "data" / "flights_tfdv_schema.pbtxt"


@pytest.fixture(scope="module")
def flights(tmp_path_factory: pytest.TempPathFactory):
    with engine.connect(autocommit=True, progress="off") as con:
        load_flights(con, flights_csv(tmp_path_factory.mktemp("flights")))
        yield con


def tfdv_proto(text: str) -> schema_pb2.Schema:
    return text_format.Parse(text, schema_pb2.Schema())


def test_the_fixture_was_written_by_tfdv() -> None:
    proto = tfdv_proto(TFDV_SCHEMA.read_text())
    assert len(proto.feature) == 19 and [d.name for d in proto.string_domain] == ["carrier", "origin"]
    assert proto.feature[0].shape.dim[0].size == 1  # TFDV's inferred shapes and shared domains, as TFDV writes them


def test_import_maps_every_property_tfdv_wrote(flights: engine.Connection) -> None:
    cur = flights.execute(f"IMPORT SCHEMA tfdv_flights FROM '{TFDV_SCHEMA}'")
    assert [d[0] for d in cur.description] == ["column_name", "property", "value", "reason"]
    assert cur.fetchall() == []  # shapes of one value per row are what a column is; nothing else is left out
    assert cur.message.startswith("IMPORT SCHEMA: tfdv_flights version 1") and "0 not mapped" in cur.message
    rows = schema_rows(flights, "tfdv_flights")
    assert len(rows) == 19
    assert rows["year"]["deprecated"] and rows["year"]["type"] == "INT"
    assert rows["dep_time"]["type"] == "FLOAT" and rows["dep_time"]["min_fraction"] == 0.0
    assert rows["dep_time"]["min_count"] == 1
    assert rows["carrier"]["type"] == "STRING" and len(rows["carrier"]["domain"]) == 17 and "ZZ" in rows["carrier"]["domain"]
    assert rows["carrier"]["min_domain_mass"] == pytest.approx(0.99)
    assert rows["carrier"]["skew_comparator"] == "l_infinity <= 0.01"
    assert rows["origin"]["domain"] == ["EWR", "JFK", "LGA"]  # a domain TFDV declared at the top level
    assert (rows["origin"]["unique_min"], rows["origin"]["unique_max"]) == (1, 3)
    assert rows["origin"]["drift_comparator"] == "normalized_abs_difference <= 0.05"
    assert rows["distance"]["drift_comparator"] == "jensen_shannon_divergence <= 0.1 (quantiles histograms)"
    assert (rows["month"]["min"], rows["month"]["max"]) == (1, 12)
    assert (rows["air_time"]["min"], rows["air_time"]["max"], rows["air_time"]["disallow_nan"]) == (0, 800, True)
    assert rows["arr_delay"]["not_in_environment"] == ["SERVING"]
    assert rows["time_hour"]["type"] == "STRING" and rows["time_hour"]["domain"] is None
    schema = flights.execute("SELECT body FROM mallard.schemas WHERE name = 'tfdv_flights'").fetchone()[0]
    assert '"default_environment": [\n    "TRAINING",\n    "SERVING"\n  ]' in schema
    assert '"min_examples_count": 1000' in schema and '"max_fraction_threshold": 2.0' in schema


def test_the_flights_conform_to_tfdvs_schema_as_tfdv_found(flights: engine.Connection) -> None:
    flights.execute(f"IMPORT SCHEMA tfdv_conform FROM '{TFDV_SCHEMA}'")
    assert flights.execute("VALIDATE flights AGAINST tfdv_conform WITH (environment = 'TRAINING')").fetchall() == []
    # serving data lacks the label, as the schema's environments allow
    flights.execute("CREATE OR REPLACE VIEW serving AS SELECT * EXCLUDE (arr_delay) FROM flights")
    assert flights.execute("VALIDATE serving AGAINST tfdv_conform WITH (environment = 'SERVING')").fetchall() == []


def test_tfdvs_constraints_catch_broken_data(flights: engine.Connection) -> None:
    flights.execute(f"IMPORT SCHEMA tfdv_checks FROM '{TFDV_SCHEMA}'")
    flights.execute("CREATE OR REPLACE VIEW broken AS SELECT * REPLACE ("
                    " CASE WHEN flight % 20 = 0 THEN 'QQ' ELSE carrier END AS carrier,"
                    " CASE WHEN flight % 1000 = 7 THEN 13 ELSE month END AS month) FROM flights")
    found = {(r[0], r[1], r[2]) for r in flights.execute(
        "VALIDATE broken AGAINST tfdv_checks WITH (environment = 'TRAINING')").fetchall()}
    assert found == {("carrier", "ENUM_TYPE_UNEXPECTED_STRING_VALUES", "ERROR"), ("month", "INT_TYPE_BIG_INT", "ERROR")}


def normalized(proto: schema_pb2.Schema) -> schema_pb2.Schema:
    """TFDV's schema with shared domains inlined and shapes dropped (what a table column implies)."""
    shared = {d.name: d for d in proto.string_domain}
    for feature in proto.feature:
        if feature.WhichOneof("domain_info") == "domain":
            values = list(shared[feature.domain].value)
            feature.ClearField("domain")
            feature.string_domain.value.extend(values)
        feature.ClearField("shape")
        feature.ClearField("value_count")
    proto.ClearField("string_domain")
    return proto


def test_export_gives_back_what_tfdv_wrote(flights: engine.Connection, tmp_path: Path) -> None:
    flights.execute(f"IMPORT SCHEMA round_trip FROM '{TFDV_SCHEMA}'")
    out = tmp_path / "schema.pbtxt"
    cur = flights.execute(f"EXPORT SCHEMA round_trip TO '{out}'")  # the extension chooses TFDV's format
    assert cur.fetchall() == [] and "(TFDV; 0 not mapped)" in cur.message
    assert normalized(tfdv_proto(out.read_text())) == normalized(tfdv_proto(TFDV_SCHEMA.read_text()))


def test_export_of_an_inferred_schema_lists_what_tfdv_cannot_hold(flights: engine.Connection, tmp_path: Path) -> None:
    flights.execute("INFER SCHEMA inferred FROM flights WITH (environments = ['TRAINING', 'SERVING'])")
    flights.execute("ALTER SCHEMA inferred ALTER COLUMN month SET (min = 1, max = 12)")  # confirmed: a hard range
    flights.execute("ALTER SCHEMA inferred SET (max_duplicate_fraction = 0.01)")
    out = tmp_path / "inferred.txt"
    rows = flights.execute(f"EXPORT SCHEMA inferred TO '{out}' WITH (format = 'tfdv')").fetchall()
    unmapped = {(r[0], r[1]) for r in rows}
    assert ("tailnum", "patterns") in unmapped and ("time_hour", "patterns") in unmapped
    assert ("dep_delay", "min, max") in unmapped and ("month", "min, max") not in unmapped  # soft ranges stay out
    assert ("dep_delay", "baseline") in unmapped and (None, "max_duplicate_fraction") in unmapped
    exported = tfdv_proto(out.read_text())
    month = next(f for f in exported.feature if f.name == "month")
    assert (month.int_domain.min, month.int_domain.max) == (1, 12)
    carrier = next(f for f in exported.feature if f.name == "carrier")
    assert carrier.type == schema_pb2.BYTES and len(carrier.string_domain.value) == 16
    assert list(exported.default_environment) == ["TRAINING", "SERVING"]
    # read back, everything mapped is as it was
    back = flights.execute(f"IMPORT SCHEMA inferred_back FROM '{out}' WITH (format = 'tfdv')")
    assert back.fetchall() == []
    before, after = schema_rows(flights, "inferred"), schema_rows(flights, "inferred_back")
    for name, row in before.items():
        for key in ("type", "min_fraction", "min_count", "domain", "min_domain_mass", "unique_max", "disallow_nan"):
            assert after[name][key] == row[key], (name, key)
    assert (after["month"]["min"], after["month"]["max"]) == (1, 12) and after["dep_delay"]["min"] is None


def every_shared_property() -> Schema:
    """A schema that sets every property Mallard shares with TFDV."""
    columns = [
        ColumnSchema(name="city", type="STRING", min_fraction=0.9, min_count=5, domain=["Oslo", "Bergen"],
                     min_domain_mass=0.95, unique_min=1, unique_max=3, in_environment=["TRAINING"],
                     drift_l_infinity=0.1, skew_l_infinity=0.2, drift_normalized_abs_difference=0.3,
                     skew_normalized_abs_difference=0.4),
        ColumnSchema(name="fare", type="FLOAT", min_fraction=1.0, min_count=1, min=-0.5, max=0.1, disallow_nan=True,
                     disallow_inf=True, drift_jensen_shannon_divergence=0.05, skew_jensen_shannon_divergence=0.07,
                     jensen_shannon_histogram="QUANTILES", not_in_environment=["SERVING"]),
        ColumnSchema(name="seats", type="INT", min=1, max=9, deprecated=True),
        ColumnSchema(name="paid", type="BOOLEAN", min_fraction=1.0, min_count=1),
        ColumnSchema(name="at", type="TIMESTAMP"),
    ]
    return Schema(columns=columns, environments=["TRAINING", "SERVING"], min_examples_count=10,
                  max_examples_count=10**6, num_examples_drift_min_fraction=0.5, num_examples_drift_max_fraction=2.0)


def test_every_shared_property_survives_the_trip_through_tfdvs_format() -> None:
    assert set(COLUMN_PROPERTIES) == SHARED | set(MALLARD_ONLY)
    schema = every_shared_property()
    set_here = {name for c in schema.columns for name in COLUMN_PROPERTIES if getattr(c, name) not in (None, False, [])}
    assert set_here >= SHARED - {"type"}
    exported = schema_to_tfdv(schema)
    assert exported.unmapped == []
    back = schema_from_tfdv(exported.text, "test")
    assert back.unmapped == []
    fare = back.schema.column("fare")
    assert fare.max >= 0.1 and fare.max == pytest.approx(0.1) and fare.min <= -0.5  # float32, rounded outwards
    back.schema.column("fare").min, back.schema.column("fare").max = -0.5, 0.1
    assert back.schema == schema


def test_import_lists_what_mallard_cannot_take() -> None:
    text = """
    feature { name: "tokens" type: BYTES value_count { min: 2 max: 8 } natural_language_domain { } }
    feature { name: "when" type: BYTES time_domain { string_format: "%Y-%m-%d" } }
    feature { name: "code" type: INT int_domain { min: 0 max: 9 is_categorical: true }
              drift_comparator { infinity_norm { threshold: 0.1 } } }
    feature { name: "beta" type: FLOAT lifecycle_stage: ALPHA annotation { tag: "new" } }
    feature { name: "nested" type: STRUCT }
    feature { name: "flag" type: INT bool_domain { true_value: "yes" } }
    sparse_feature { name: "sparse" }
    dataset_constraints { num_examples_version_comparator { min_fraction_threshold: 0.9 } }
    """
    imported = schema_from_tfdv(text, "test")
    assert {(u.column_name, u.property) for u in imported.unmapped} == {
        ("tokens", "value_count"), ("tokens", "natural_language_domain"), ("when", "time_domain"),
        ("code", "int_domain.is_categorical"), ("code", "drift_comparator.infinity_norm"),
        ("beta", "lifecycle_stage"), ("beta", "annotation"), ("nested", "type"), ("flag", "bool_domain.true_value"),
        ("sparse", "sparse_feature"), (None, "dataset_constraints.num_examples_version_comparator")}
    schema = imported.schema
    assert [c.name for c in schema.columns] == ["tokens", "when", "code", "beta", "flag"]
    assert schema.column("beta").deprecated and schema.column("flag").type == "BOOLEAN"
    assert (schema.column("code").min, schema.column("code").max) == (0, 9)
    note = next(u for u in imported.unmapped if u.property == "lifecycle_stage")
    assert note.value == "'ALPHA'" and "TFDV does not validate" in note.reason


@pytest.mark.parametrize("text, match", [
    ('{"feature": []}', "expected a TFDV schema \\(a Schema text proto\\)"),
    ('feature { name: "x" type: INT colour: 1 }', "expected a TFDV schema"),
    ('feature { name: "x" type: BYTES domain: "missing" }', "names domain 'missing', which is not declared"),
    ('feature { name: "x" type: INT presence { min_fraction: 3 } }', "min_fraction: expected a fraction"),
    ('feature { name: "x" type: INT } feature { name: "X" type: INT }', "column 'x' appears twice"),
])
def test_bad_tfdv_files_are_refused_and_change_nothing(con: engine.Connection, tmp_path: Path, text: str,
                                                       match: str) -> None:
    path = tmp_path / "bad.pbtxt"
    path.write_text(text)
    with pytest.raises(engine.DataError, match=match):
        con.execute(f"IMPORT SCHEMA s FROM '{path}'")
    assert con.execute("SELECT count(*) FROM mallard.schemas").fetchone()[0] == 0


def test_the_format_comes_from_the_option_or_the_extension(con: engine.Connection, tmp_path: Path) -> None:
    con.execute("CREATE TABLE t AS SELECT range AS x, 'a' AS s FROM range(10)")
    con.execute("INFER SCHEMA s FROM t")
    con.execute(f"EXPORT SCHEMA s TO '{tmp_path / 'a.pbtxt'}'")
    con.execute(f"EXPORT SCHEMA s TO '{tmp_path / 'b.pbtxt'}' WITH (format = 'json')")
    con.execute(f"EXPORT SCHEMA s TO '{tmp_path / 'c.json'}'")
    assert (tmp_path / "a.pbtxt").read_text().startswith("feature {")
    assert (tmp_path / "b.pbtxt").read_text().startswith("{") and (tmp_path / "c.json").read_text().startswith("{")
    with pytest.raises(engine.DataError, match="EXPORT SCHEMA option format: expected one of 'json', 'tfdv', found 'xml'"):
        con.execute(f"EXPORT SCHEMA s TO '{tmp_path / 'd.xml'}' WITH (format = 'xml')")
    with pytest.raises(engine.DataError, match="expected a TFDV schema"):
        con.execute(f"IMPORT SCHEMA s2 FROM '{tmp_path / 'c.json'}' WITH (format = 'tfdv')")
    assert import_schema(con, "s3", export_schema(con, "s", format="tfdv"), format="tfdv") == 1
    with pytest.raises(engine.ProgrammingError, match="expected a schema format among json, tfdv, found 'yaml'"):
        export_schema(con, "s", format="yaml")
