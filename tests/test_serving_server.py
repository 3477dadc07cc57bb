"""The prediction server, for real: ``mallard serve`` in a subprocess on a free loopback port,
talked to over HTTP (no mocks), with the ImageNet MobileNetV2 on vtest.avi frames and a
numeric model whose answers are known."""
from __future__ import annotations

import io
import re
import subprocess
import threading
from collections import Counter

import numpy as np
import pytest
from PIL import Image

import engine
from engine.serving.client import image_input
from tests.conftest import data_file
from tests.serving_models import CREATE_FARES, expected_class, sum_sign_weights, synthetic_rows
from tests.serving_server import MALLARD, ROOT, start_server

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A database with models fares and flip (numeric), mobilenet (any size) and mobilenet64
    (64x64 only), frames of vtest.avi and training rows; a server on it."""
    folder = tmp_path_factory.mktemp("serving")
    db = folder / "shop.duckdb"
    with engine.connect(db, autocommit=True, progress="off") as con:
        con.execute(CREATE_FARES, [str(sum_sign_weights(folder / "fares.safetensors"))])
        con.execute(CREATE_FARES.replace("MODEL fares", "MODEL flip"), [str(folder / "fares.safetensors")])
        for name, size in (("mobilenet", ""), ("mobilenet64", ", input_size = 64")):
            con.execute(f"CREATE MODEL {name} FROM ? WITH (architecture = 'mobilenet_v2', labels = ?{size})",
                        [str(data_file("mobilenet_v2.pth")), str(data_file("imagenet_classes.txt"))])
        con.execute("LOAD VIDEO ? INTO traffic WITH (width = 64, height = 64, limit = 8)", [str(data_file("vtest.avi"))])
        values = synthetic_rows(2000, seed=1)
        con.execute("CREATE TABLE trips (id INTEGER, a DOUBLE, b DOUBLE, c DOUBLE)")
        con.execute("INSERT INTO trips SELECT * FROM (SELECT unnest(range(2000)) AS id, unnest(?::DOUBLE[]) AS a, "
                    "unnest(?::DOUBLE[]) AS b, unnest(?::DOUBLE[]) AS c)", [*values.T.tolist()])
        frames = engine.frames_to_numpy(con, "traffic")
    server = start_server(db, "--max-body-mb", "0.25", "--max-queue", "48", "--max-inputs", "64", "--slo-ms", "400",
                          "--max-delay-ms", "10", token=TOKEN)
    try:
        yield server, folder, frames
    finally:
        server.stop()


def png(frame: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, "PNG")
    return buffer.getvalue()


def rows_of(answer) -> list[list]:
    assert answer.status == 200, answer.body
    return answer.body["rows"]


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the Prometheus text (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} ") or (not labels and line.startswith(f"{name} ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_health_is_open_and_everything_else_needs_the_token(served):
    server, _, _ = served
    anonymous, wrong = server.client(token=False), server.client(token="s3cret-tokem")
    assert anonymous.health().status == 200 and anonymous.ready().body["ready"] is True
    for client in (anonymous, wrong):
        for answer in (client.models(), client.predict("fares", [{"a": 1, "b": 2, "c": 3}]),
                       client.sql("SELECT 1"), client.request("GET", "/metrics")):
            assert answer.status == 401 and answer.body["error"]["code"] == "unauthorized"
            assert answer.headers["www-authenticate"] == "Bearer"
    assert server.client().models().status == 200


def test_binds_loopback_by_default(served):
    server, _, _ = served
    assert server.url.startswith("http://127.0.0.1:")


def test_numeric_predictions_are_the_known_classes_and_equal_offline_predict(served):
    server, _, _ = served
    client = server.client()
    values = synthetic_rows(40, seed=7)
    answer = client.predict("fares", [{"a": a, "b": b, "c": c} for a, b, c in values])
    assert answer.status == 200 and answer.body["model_version"] == 1
    online = [p["class_id"] for p in answer.body["predictions"]]
    assert online == expected_class(values).tolist()
    rows_of(client.sql("CREATE TABLE requests_7 AS SELECT unnest(range(40)) AS id, unnest(?::DOUBLE[]) AS a, "
                       "unnest(?::DOUBLE[]) AS b, unnest(?::DOUBLE[]) AS c", [*values.T.tolist()]))
    offline = rows_of(client.sql("SELECT id, predicted_class_id, predicted_score FROM predict(fares, requests_7) "
                                 "ORDER BY id"))
    assert [r[1] for r in offline] == online
    np.testing.assert_allclose([r[2] for r in offline], [p["score"] for p in answer.body["predictions"]], rtol=1e-6)


def test_image_predictions_equal_offline_predict_over_the_frames(served):
    server, _, frames = served
    client = server.client()
    answer = client.predict("mobilenet", [image_input(png(f)) for f in frames])
    assert answer.status == 200
    offline = rows_of(client.sql("SELECT frame_id, predicted_label, predicted_score FROM predict(mobilenet, "
                                 "(SELECT * FROM traffic)) ORDER BY frame_id"))
    assert [p["label"] for p in answer.body["predictions"]] == [r[1] for r in offline]
    np.testing.assert_allclose([p["score"] for p in answer.body["predictions"]], [r[2] for r in offline], rtol=1e-4)


def test_batches_form_under_concurrent_load(served):
    server, _, frames = served
    before = server.client().metrics()
    codes: Counter[int] = Counter()

    def send(k: int) -> None:
        client = server.client()
        for i in range(6):
            noisy = np.clip(frames[(k + i) % len(frames)].astype(int) + k * 7 + i, 0, 255).astype(np.uint8)
            codes[client.predict("mobilenet", [image_input(png(noisy))], deadline_ms=60000).status] += 1

    threads = [threading.Thread(target=send, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == {200: 48}
    after = server.client().metrics()
    batches = metric(after, "mallard_batch_size_count", model="mobilenet") - metric(
        before, "mallard_batch_size_count", model="mobilenet")
    singles = metric(after, "mallard_batch_size_bucket", le="1.0", model="mobilenet") - metric(
        before, "mallard_batch_size_bucket", le="1.0", model="mobilenet")
    assert batches < 48 and singles < batches, (batches, singles)   # some batches held more than one input


def test_a_repeated_input_is_a_cache_hit(served):
    server, _, _ = served
    client = server.client()
    before = metric(client.metrics(), "mallard_cache_hits_total", model="fares")
    body = [{"a": 0.25, "b": -1.5, "c": 9.0}]
    first, second = client.predict("fares", body), client.predict("fares", body)
    assert first.body["predictions"] == second.body["predictions"]
    assert metric(client.metrics(), "mallard_cache_hits_total", model="fares") == before + 1
    logged = rows_of(client.sql("SELECT cache_hit, batch_size FROM served.fares WHERE request_id = ?",
                                [second.body["request_id"]]))
    assert logged == [[True, 0]]


@pytest.mark.parametrize("request_, status, code", [
    (("POST", "/v1/models/fares:predict", b"{\"inputs\": [{\"a\": 1"), 400, "malformed_json"),
    (("POST", "/v1/models/fares:predict", b"[1, 2]"), 400, "malformed_json"),
    (("POST", "/v1/models/fares:predict", {"inputs": []}), 400, "malformed_request"),
    (("POST", "/v1/models/fares:predict", {"inputs": [{"a": 1, "b": 2}]}), 422, "wrong_input"),
    (("POST", "/v1/models/fares:predict", {"inputs": [{"a": 1, "b": 2, "c": "x"}]}), 422, "wrong_input"),
    (("POST", "/v1/models/fares:predict", {"inputs": [[1, 2, 3]]}), 422, "wrong_input"),
    (("POST", "/v1/models/fares:predict", {"inputs": [{"a": 1, "b": 2, "c": 3}], "version": 0}), 400,
     "malformed_request"),
    (("POST", "/v1/models/fares:predict", {"inputs": [{"a": 1, "b": 2, "c": 3}], "version": 99}), 404,
     "unknown_version"),
    (("POST", "/v1/models/mobilenet:predict", {"inputs": [{"image_base64": "%%%"}]}), 422, "wrong_input"),
    (("POST", "/v1/models/mobilenet:predict", {"inputs": [image_input(b"GIF89a not really")]}), 422, "wrong_input"),
    (("POST", "/v1/models/mobilenet:predict", {"inputs": [{"a": 1}]}), 422, "wrong_input"),
    (("POST", "/v1/models/mobilenet64:predict", {"inputs": [image_input(png(np.zeros((32, 48, 3), np.uint8)))]}),
     422, "wrong_shape"),
    (("POST", "/v1/models/nosuch:predict", {"inputs": [{"a": 1}]}), 404, "unknown_model"),
    (("POST", "/v1/models/fares:predict", {"inputs": [{"a": i, "b": 0, "c": 0} for i in range(65)]}), 413,
     "too_many_inputs"),
    (("POST", "/v1/models/fares:predict", {"inputs": [{"a": 1, "b": 2, "c": 3, "pad": "x" * 300_000}]}), 413,
     "payload_too_large"),
    (("GET", "/v1/models/fares:predict", None), 405, "method_not_allowed"),
    (("GET", "/v2/everything", None), 404, "not_found"),
    (("POST", "/v1/sql", {"sql": "SELECT * FROM nosuch"}), 400, "ProgrammingError"),
    (("POST", "/v1/sql", {"sql": 42}), 400, "malformed_request"),
    (("POST", "/v1/models/fares:route", {"version": 77, "percent": 10}), 404, "unknown_version"),
])
def test_bad_requests_get_a_4xx_with_a_json_error_never_a_500(served, request_, status, code):
    server, _, _ = served
    client = server.client()
    method, path, body = request_
    if isinstance(body, bytes):  # raw bytes: sent as they are
        connection = client._connect()
        connection.request(method, path, body=body, headers={"Authorization": f"Bearer {TOKEN}",
                                                              "Content-Type": "application/json"})
        response = connection.getresponse()
        import json
        answer_status, answer = response.status, json.loads(response.read())
    else:
        found = client.request(method, path, body)
        answer_status, answer = found.status, found.body
    assert answer_status == status, answer
    assert answer["error"]["code"] == code and answer["error"]["message"]
    assert client.health().status == 200  # still serving


def test_a_full_queue_and_an_unmeetable_deadline_are_refused_at_once_with_retry_after(served):
    server, _, _ = served
    client = server.client()
    full = client.predict("fares", [{"a": i, "b": 0, "c": 0} for i in range(49)])  # the queue holds 48
    assert full.status == 429 and full.body["error"]["code"] == "queue_full"
    assert int(full.headers["retry-after"]) >= 1
    client.predict("fares", [{"a": 5.5, "b": 1, "c": 2}])  # a measured batch time
    late = client.predict("fares", [{"a": 6.5, "b": 1, "c": 2}], deadline_ms=0.001)
    assert late.status == 503 and late.body["error"]["code"] == "deadline"
    assert int(late.headers["retry-after"]) >= 1
    text = client.metrics()
    assert metric(text, "mallard_rejected_total", model="fares", reason="queue_full") >= 1
    assert metric(text, "mallard_rejected_total", model="fares", reason="deadline") >= 1


def test_a_hot_swap_under_load_loses_no_request_and_a_failed_load_keeps_the_old_version(served):
    server, folder, _ = served
    client = server.client()
    values = synthetic_rows(12, seed=3)
    inputs = [{"a": a, "b": b, "c": c} for a, b, c in values]
    results: list[tuple[int, int, list[int]]] = []
    stop = threading.Event()

    def load() -> None:
        mine = server.client()
        while not stop.is_set():
            answer = mine.predict("flip", inputs, deadline_ms=60000)
            classes = [p["class_id"] for p in answer.body.get("predictions", [])]
            results.append((answer.status, answer.body.get("model_version", -1), classes))

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        while len(results) < 10:
            threading.Event().wait(0.05)
        swapped = client.sql(CREATE_FARES.replace("MODEL fares", "MODEL flip"),
                             [str(sum_sign_weights(folder / "flipped.safetensors", scale=-1.0))])
        assert swapped.status == 200 and swapped.body["models"] == {"flip": "version 2 serves"}
        count = len(results)
        while len(results) < count + 10:
            threading.Event().wait(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join()
    truth = expected_class(values).tolist()
    assert all(status == 200 for status, _, _ in results), Counter(s for s, _, _ in results)
    assert {version for _, version, _ in results} == {1, 2}
    for _, version, classes in results:  # every answer is one version's, whole
        assert classes == (truth if version == 1 else [1 - c for c in truth])
    assert results[-1][1] == 2
    # a version the server cannot run (three-column weights told two inputs) leaves version 2 serving
    broken = client.sql("CREATE OR REPLACE MODEL flip FROM ? WITH (architecture = 'tiny_sum_sign', inputs = ['a', 'b'])",
                        [str(folder / "fares.safetensors")])
    assert broken.status == 200 and "version 3 failed to load" in broken.body["models"]["flip"]
    assert "version 2 keeps serving" in broken.body["models"]["flip"]
    listed = {m["name"]: m for m in client.models().body["models"]}
    assert listed["flip"]["version"] == 2 and "version 3 failed to load" in listed["flip"]["load_error"]
    assert client.predict("flip", inputs[:1]).body["model_version"] == 2


def test_a_version_named_in_the_request_and_a_canary_route(served):
    server, folder, _ = served
    client = server.client()
    body = [{"a": 3.0, "b": 0.0, "c": 1.0}]
    assert client.predict("fares", body, version=1).body["model_version"] == 1
    client.sql(CREATE_FARES.replace("MODEL fares", "MODEL flip"),
               [str(sum_sign_weights(folder / "flip4.safetensors", scale=-1.0))])
    current = {m["name"]: m for m in client.models().body["models"]}["flip"]["version"]
    routed = client.route("flip", 1, percent=50)
    assert routed.status == 200 and routed.body["canary"] == {"version": 1, "percent": 50.0}
    versions = Counter(client.predict("flip", [{"a": float(i), "b": 0.0, "c": 0.0}]).body["model_version"]
                       for i in range(10))
    assert versions == {1: 5, current: 5}
    listed = {m["name"]: m for m in client.models().body["models"]}["flip"]
    assert listed["canary"] == {"version": 1, "percent": 50.0} and 1 in listed["loaded_versions"]
    assert client.route("flip", None).body["canary"] is None


def test_served_traffic_is_logged_and_validate_finds_the_skew(served):
    server, _, _ = served
    client = server.client()
    shifted = synthetic_rows(200, seed=11) + np.array([8.0, 0.0, 0.0])  # column a moved by 4 standard deviations
    ids = []
    for start in range(0, 200, 40):
        answer = client.predict("fares", [{"a": a, "b": b, "c": c} for a, b, c in shifted[start:start + 40]])
        ids.append(answer.body["request_id"])
    logged = rows_of(client.sql("SELECT count(*), count(DISTINCT request_id), min(latency_ms) > 0, "
                                "bool_and(model_version = 1) FROM served.fares WHERE list_contains(?, request_id)", [ids]))
    assert logged == [[200, 5, True, True]]
    rows_of(client.sql("CREATE OR REPLACE TABLE trip_inputs AS SELECT a, b, c FROM trips"))
    rows_of(client.sql("INFER OR REPLACE SCHEMA trips_schema FROM trip_inputs"))
    skew = client.sql("VALIDATE (SELECT a, b, c FROM served.fares WHERE list_contains(?, request_id)) "
                      "AGAINST trips_schema WITH (training = trip_inputs)", [ids]).body
    found = {row[0] for row in skew["rows"]}
    assert found == {"a"}, skew["rows"]
    clean = client.sql("VALIDATE (SELECT a, b, c FROM trips WHERE id < 1000) AGAINST trips_schema "
                       "WITH (training = trip_inputs)").body
    assert clean["rows"] == [], clean["rows"]


def test_images_are_logged_as_statistics_not_pixels(served):
    server, _, frames = served
    client = server.client()
    data = png(frames[3])
    answer = client.predict("mobilenet", [image_input(data)])
    row = rows_of(client.sql("SELECT image_format, image_height, image_width, image_bytes, image_brightness, "
                             "image_sha256 FROM served.mobilenet WHERE request_id = ?", [answer.body["request_id"]]))[0]
    import hashlib
    assert row[:4] == ["PNG", 64, 64, len(data)]
    assert row[4] == pytest.approx(frames[3].mean()) and row[5] == hashlib.sha256(data).hexdigest()


def test_the_shell_sends_statements_to_the_server(served):
    server, _, _ = served
    done = subprocess.run([MALLARD, "--server", server.url, "--token", TOKEN, "-c",
                           "SELECT name, current_version FROM mallard.models WHERE name = 'fares'; SELECT nosuch FROM trips;"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "fares |               1" in done.stdout
    assert done.returncode == 1 and "Error (ProgrammingError): Binder Error" in done.stderr
    refused = subprocess.run([MALLARD, "--server", server.url, "-c", "SELECT 1"], cwd=ROOT, capture_output=True,
                             text=True, timeout=120)
    assert refused.returncode == 1 and "refused the token" in refused.stderr


def test_metrics_are_prometheus_text(served):
    server, _, _ = served
    text = server.client().metrics()
    for name in ("mallard_requests_total", "mallard_request_seconds_bucket", "mallard_queue_seconds_bucket",
                 "mallard_compute_seconds_bucket", "mallard_batch_size_bucket", "mallard_cache_hits_total",
                 "mallard_log_dropped_rows_total", "mallard_overhead_seconds_bucket"):
        assert re.search(rf"^{name}", text, re.M), name
    assert metric(text, "mallard_requests_total", endpoint="predict", model="fares", code="200") > 0


def test_after_sigterm_the_log_is_in_the_file_and_the_file_is_free(served):
    server, folder, _ = served
    answered = rows_of(server.client().sql("SELECT count(*) FROM served.fares"))[0][0]
    server.client().predict("fares", [{"a": 42.0, "b": 0.0, "c": 0.0}])
    assert server.stop() in (0, -15)  # uvicorn ends by the SIGTERM it caught, once everything is closed
    with engine.connect(folder / "shop.duckdb", read_only=True) as con:
        assert con.execute("SELECT count(*) FROM served.fares").fetchone()[0] == answered + 1
        assert con.execute("SELECT predicted_label FROM served.fares WHERE a = 42").fetchone() == ("high",)
