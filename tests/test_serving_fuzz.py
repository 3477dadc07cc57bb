"""Hostile inputs to prediction serving: ``predict(...)`` calls with random arguments raise only
engine errors, and request bodies of any shape raise only the server's 4xx ApiError."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine
from engine.serving.model_inputs import ModelInput
from engine.serving.payloads import ApiError, decode_image, decode_input, parse_json, predict_request
from tests.test_fuzz import NAMES, VALUES

ARGUMENTS = st.one_of(VALUES, NAMES, st.sampled_from(["(SELECT * FROM t)", "(SELECT 1)", "t", "(FROM t)", "m",
                                                       "(SELECT 'x'::BLOB AS frame)", "(VALUES (1))", "()"]))
OPTIONS = st.lists(st.tuples(st.sampled_from(["batch_size", "version", "input", "bogus"]), VALUES), max_size=2)


@pytest.fixture(scope="module")
def con():
    import tempfile
    from pathlib import Path

    from tests.serving_models import CREATE_FARES, sum_sign_weights

    connection = engine.connect(progress="off", autocommit=True)
    connection.execute(CREATE_FARES.replace("MODEL fares", "MODEL m"),
                       [str(sum_sign_weights(Path(tempfile.mkdtemp()) / "m.safetensors"))])
    connection.execute("CREATE TABLE t AS SELECT 1.5 AS a, 2 AS b, NULL::DOUBLE AS c, 'x' AS text")
    yield connection
    connection.close()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.lists(ARGUMENTS, max_size=3), OPTIONS)
def test_predict_with_hostile_arguments_raises_only_engine_errors(con, arguments, options):
    call = ", ".join([*arguments, *(f"{k} => {v}" for k, v in options)])
    try:
        cursor = con.execute(f"SELECT * FROM predict({call})")
        cursor.fetchmany(5)
    except engine.Error:
        pass


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=10),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=12)
BODIES = st.one_of(st.binary(max_size=40), JSON.map(lambda v: json.dumps(v).encode()),
                   st.dictionaries(st.sampled_from(["inputs", "version", "deadline_ms", "x"]), JSON, max_size=3)
                   .map(lambda v: json.dumps(v).encode()))


@settings(max_examples=300, deadline=None)
@given(BODIES)
def test_request_bodies_of_any_shape_raise_only_a_4xx_api_error(body):
    models = (ModelInput("numeric", columns=("a", "b")), ModelInput("image", size=(8, 8)))
    try:
        request = predict_request(parse_json(body), max_inputs=8)
        for model in models:
            for i, value in enumerate(request.inputs):
                item = decode_input(value, i, model)
                if item.encoded is not None:
                    decode_image(item, i, model, max_pixels=10_000)
                else:
                    assert item.array is not None and np.isfinite(item.array).all()
    except ApiError as e:
        assert 400 <= e.status < 500 and e.body()["error"]["message"]
