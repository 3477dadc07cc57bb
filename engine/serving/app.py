"""The server's HTTP/JSON endpoints, a Starlette application.

============================  =====================================================================
``POST /v1/models/<m>:predict``  ``{"inputs": [...]}`` -> ``{"model", "model_version", "predictions"}``
``GET /v1/models``               the served models: version answering, input, canary, batch limit, errors
``POST /v1/models/<m>:route``    ``{"version": 3, "percent": 10}``: a canary route (``version`` null ends it)
``POST /v1/sql``                 ``{"sql": "...", "parameters": [...]}``: statements on the server's connection
``GET /metrics``                 Prometheus text
``GET /healthz``, ``/readyz``    alive; ready (every model loaded): both without a token
============================  =====================================================================

With a token (``--token``), every other endpoint needs ``Authorization: Bearer <token>``
(compared in constant time) and answers 401 without it.  Every error is JSON
(``{"error": {"code", "message"}}``) with a 4xx status for what the client got wrong: a
malformed body 400, a wrong input 422, an unknown model 404, a body over the limit 413, a
full queue 429 and a deadline that cannot be met 503 (both with ``Retry-After``).

A predict request is checked and decoded on the event loop (an image is hashed first and
decoded only on a cache miss), its inputs go to the model's queue (:mod:`engine.serving.batching`)
and the answer comes when the worker has run them; the traffic log gets one row per input.
"""
from __future__ import annotations

import asyncio
import datetime
import hmac
import math
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.errors import Error
from engine.serving.batching import BatchController, Job, ModelQueue, Outcome, Rejected
from engine.serving.cache import PredictionCache
from engine.serving.metrics import CONTENT_TYPE, ServerMetrics
from engine.serving.payloads import ApiError, DecodedInput, decode_image, decode_input, parse_json, predict_request
from engine.serving.sql_endpoint import MAX_ROWS, run_statement
from engine.serving.versions import ModelRegistry

if TYPE_CHECKING:
    import engine
    from engine.serving.config import ServerConfig
    from engine.serving.predictor import Predictor
    from engine.serving.traffic_log import TrafficLog

#: Endpoints answered without a token.
OPEN_PATHS = ("/healthz", "/readyz")
_PREDICT_PATH = re.compile(r"^/v1/models/([^/]+):(predict|route)$")


class ServingState:
    """What the endpoints share: settings, the server's connection and its lock, the models,
    the cache, the traffic log and the metrics."""

    def __init__(self, config: ServerConfig, connection: engine.Connection, log: TrafficLog | None,
                 metrics: ServerMetrics | None = None) -> None:
        self.config, self.connection, self.log = config, connection, log
        self.metrics = metrics or ServerMetrics()
        self.cache = PredictionCache(config.cache_bytes)
        self.lock = threading.RLock()    # the server's connection: statements, model loads
        self.loop: asyncio.AbstractEventLoop | None = None
        self.load_error: str | None = None
        self.registry = ModelRegistry(connection, self.lock, self._queue, device=config.device,
                                      on_swap=self._swapped, on_drop=self._dropped)

    def _queue(self, model: str) -> ModelQueue:
        controller = BatchController(self.config.slo_seconds, self.config.max_batch, self.config.fixed_batch)
        return ModelQueue(model, controller, max_queue=self.config.max_queue,
                          max_delay=self.config.max_delay_ms / 1000, on_done=self._settle, metrics=self.metrics)

    def _swapped(self, model: str, version: int) -> None:
        self.metrics.served_version.labels(model=model).set(version)

    def _dropped(self, model: str) -> None:
        self.cache.forget_model(model)

    def _settle(self, results: list[tuple[Job, Outcome]]) -> None:
        """From a worker thread: hand each outcome to its request, one loop wake-up per batch."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(_resolve, results)

    def load_models(self) -> None:
        """Load every model's current version (at start, in a thread: /readyz says when done)."""
        try:
            warm_up_decoders()
            self.registry.refresh()
        except Exception as e:  # reported by /readyz and /v1/models; the server keeps answering
            self.load_error = f"loading the models failed: {e}"

    def run_sql(self, sql: str, parameters: list[Any] | None, max_rows: int) -> dict[str, Any]:
        """A statement of ``POST /v1/sql`` (in a worker thread), then the catalog's changes."""
        if self.log is not None:
            self.log.flush()  # what was served so far is visible to the statement
        with self.lock:
            try:
                result = run_statement(self.connection, sql, parameters, max_rows)
            except Error as e:
                raise ApiError(400, type(e).__name__, str(e)) from None
            result["models"] = self.registry.refresh()
        return result


def warm_up_decoders() -> None:
    """Decode a PNG and a JPEG once, so that the first request does not pay Pillow's imports."""
    import io

    import numpy as np
    from PIL import Image

    from engine.serving.images import decode_image as decode

    for kind in ("PNG", "JPEG"):
        buffer = io.BytesIO()
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buffer, kind)
        decode(buffer.getvalue())


def _resolve(results: list[tuple[Job, Outcome]]) -> None:
    for job, outcome in results:
        future: asyncio.Future[Outcome] = job.token
        if not future.done():
            future.set_result(outcome)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


def _error_response(error: ApiError) -> JSONResponse:
    return json_response(error.body(), error.status, error.headers)


def _retry_headers(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 once it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "payload_too_large", f"expected a body of at most {limit} bytes, found {declared} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "payload_too_large", f"expected a body of at most {limit} bytes, found more")
        chunks.append(chunk)
    return b"".join(chunks)


# Endpoints ---------------------------------------------------------------------------------

def _endpoint(handler: Callable[[ServingState, Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint whose ApiErrors become JSON answers."""
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request.app.state.serving, request)
        except ApiError as e:
            return _error_response(e)

    endpoint.__name__ = handler.__name__
    return endpoint


async def healthz(state: ServingState, request: Request) -> Response:
    return json_response({"status": "ok"})


async def readyz(state: ServingState, request: Request) -> Response:
    ready = state.registry.ready and state.load_error is None
    body = {"ready": ready, "models": sorted(state.registry.models), "error": state.load_error}
    return json_response(body, 200 if ready else 503)


async def list_models(state: ServingState, request: Request) -> Response:
    log = state.log
    return json_response({
        "models": [served.describe() for _, served in sorted(state.registry.models.items())],
        "log": None if log is None else {"schema": log.schema, "written": log.written, "dropped": log.dropped,
                                         "error": log.error},
    })


async def metrics(state: ServingState, request: Request) -> Response:
    state.metrics.cache_bytes.set(state.cache.bytes)
    return Response(state.metrics.render(), media_type=CONTENT_TYPE)


async def sql(state: ServingState, request: Request) -> Response:
    body = parse_json(await read_body(request, state.config.max_body_bytes))
    text, parameters, max_rows = body.get("sql"), body.get("parameters"), body.get("max_rows", MAX_ROWS)
    if not isinstance(text, str) or not text.strip():
        raise ApiError(400, "malformed_request", "expected \"sql\": the statement text")
    if parameters is not None and not isinstance(parameters, list):
        raise ApiError(400, "malformed_request", "expected \"parameters\": a list of values")
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 0:
        raise ApiError(400, "malformed_request", "expected \"max_rows\": a whole number >= 0")
    return json_response(await run_in_threadpool(state.run_sql, text, parameters, max_rows))


async def route(state: ServingState, request: Request) -> Response:
    name = request.path_params["name"].lower()
    body = parse_json(await read_body(request, state.config.max_body_bytes))
    version, percent = body.get("version"), body.get("percent", 0)
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise ApiError(400, "malformed_request", "expected \"version\": a version number, or null to end the canary")
    if isinstance(percent, bool) or not isinstance(percent, (int, float)) or not 0 <= percent <= 100:
        raise ApiError(400, "malformed_request", "expected \"percent\": a number in [0, 100]")
    if state.registry.get(name) is None:
        raise _unknown_model(state, name)
    try:
        canary = await run_in_threadpool(state.registry.set_canary, name, version, float(percent))
    except Error as e:
        raise ApiError(404, "unknown_version", str(e)) from None
    return json_response({"model": name, "canary": None if canary is None else
                          {"version": canary.version, "percent": canary.percent}})


def _unknown_model(state: ServingState, name: str) -> ApiError:
    known = ", ".join(sorted(state.registry.models)) or "none"
    return ApiError(404, "unknown_model", f"unknown model {name!r}; served models: {known}")


#: The share of a request's deadline kept for the server's own work before the queue and after
#: the network (reading the request, decoding, the JSON reply, loopback): the queue and the
#: worker plan with the rest, so that the caller's latency, not the queue's, meets the deadline.
SERVER_SHARE = 0.1


async def predict(state: ServingState, request: Request) -> Response:
    started, arrival = time.perf_counter(), time.monotonic()
    config = state.config
    name = request.path_params["name"].lower()
    raw = await read_body(request, config.max_body_bytes)
    served = state.registry.get(name)
    if served is None:
        raise _unknown_model(state, name)
    body = predict_request(parse_json(raw), config.max_inputs)
    predictor = served.route(body.version)
    if isinstance(predictor, int):
        predictor = await _pinned(state, name, predictor)
        arrival = time.monotonic()  # loading a version is the server's cost, not the request's deadline
    allowed = body.deadline_ms / 1000 if body.deadline_ms is not None else config.deadline_seconds
    deadline = arrival + allowed * (1 - SERVER_SHARE)  # the rest is the server's own: reading, replying
    _admit(state, served.queue, len(body.inputs), deadline)  # a refusal costs no decoding
    version = predictor.version.version
    inputs = [decode_input(value, i, predictor.input) for i, value in enumerate(body.inputs)]
    answers: list[dict[str, Any] | None] = [None] * len(inputs)
    futures: dict[int, asyncio.Future[Outcome]] = {}
    jobs = []
    for i, item in enumerate(inputs):
        cached = state.cache.get((name, version, item.digest))
        if cached is not None:
            answers[i], inputs[i] = cached[0], DecodedInput(None, item.digest, cached[1])
            continue
        if item.encoded is not None:
            inputs[i] = item = await _decoded(item, i, predictor, config.max_image_pixels)
        futures[i] = asyncio.get_running_loop().create_future()
        jobs.append(Job(predictor, item.array, arrival, deadline, futures[i]))  # type: ignore[arg-type]
    _count_cache(state, name, len(inputs) - len(jobs), len(jobs))
    if jobs:
        _admit(state, served.queue, jobs, deadline)
    own = time.perf_counter() - started
    outcomes = {i: await future for i, future in futures.items()}
    finished = time.perf_counter()
    request_id = uuid.uuid4().hex
    response = _answer(state, name, version, inputs, answers, outcomes, request_id)
    latency = time.perf_counter() - started
    own += time.perf_counter() - finished
    state.metrics.latency.labels(model=name).observe(latency)
    state.metrics.overhead.labels(model=name).observe(own)
    for outcome in outcomes.values():
        state.metrics.queue.labels(model=name).observe(outcome.queue_seconds)
    _log(state, request_id, name, version, inputs, answers, outcomes, latency)
    return response


def _admit(state: ServingState, queue: ModelQueue, jobs: list[Job] | int, deadline: float) -> None:
    """Queue ``jobs`` (or check that as many inputs would be admitted); ApiError 429/503 if refused."""
    try:
        if isinstance(jobs, int):
            queue.check(jobs, deadline)
        else:
            queue.submit(jobs)
    except Rejected as e:
        state.metrics.rejected.labels(model=queue.model, reason=e.reason).inc()
        raise ApiError(e.status, e.reason, str(e), _retry_headers(e.retry_after)) from None


async def _pinned(state: ServingState, name: str, version: int) -> Predictor:
    try:
        return await run_in_threadpool(state.registry.pinned, name, version)
    except Error as e:
        raise ApiError(404, "unknown_version", str(e)) from None


#: Encoded images larger than this are decoded in a worker thread, not on the event loop.
LARGE_IMAGE_BYTES = 256 * 1024


async def _decoded(item: DecodedInput, index: int, predictor: Predictor, max_pixels: int) -> DecodedInput:
    """An image input decoded: on the event loop when small (a thread hop costs more than a small
    JPEG), in a worker thread when large (so that the loop keeps answering)."""
    assert item.encoded is not None
    if len(item.encoded) <= LARGE_IMAGE_BYTES:
        return decode_image(item, index, predictor.input, max_pixels=max_pixels)
    return await run_in_threadpool(decode_image, item, index, predictor.input, max_pixels=max_pixels)


def _count_cache(state: ServingState, name: str, hits: int, misses: int) -> None:
    if hits:
        state.metrics.cache_hits.labels(model=name).inc(hits)
    if misses:
        state.metrics.cache_misses.labels(model=name).inc(misses)


def _answer(state: ServingState, name: str, version: int, inputs: list[DecodedInput],
            answers: list[dict[str, Any] | None], outcomes: dict[int, Outcome], request_id: str) -> Response:
    """The JSON answer (filling ``answers``), or the error of the first input that failed."""
    for i, outcome in sorted(outcomes.items()):
        if outcome.error is not None:
            state.metrics.rejected.labels(model=name, reason=outcome.error.reason).inc()
            raise ApiError(outcome.error.status, outcome.error.reason, str(outcome.error),
                           _retry_headers(outcome.error.retry_after))
        if outcome.failure is not None:
            raise ApiError(500, "internal_error", outcome.failure)
        answers[i] = outcome.prediction
        state.cache.put((name, version, inputs[i].digest), (outcome.prediction, inputs[i].logged))
    return json_response({"model": name, "model_version": version, "predictions": answers, "request_id": request_id})


def _log(state: ServingState, request_id: str, name: str, version: int, inputs: list[DecodedInput],
         answers: list[dict[str, Any] | None], outcomes: dict[int, Outcome], latency: float) -> None:
    if state.log is None:
        return
    now = datetime.datetime.now(datetime.UTC)
    for i, item in enumerate(inputs):
        answer = answers[i] or {}
        outcome = outcomes.get(i)
        state.log.append(name, {
            "request_id": request_id, "input_index": i, "served_at": now, "model_version": version,
            "latency_ms": latency * 1000, "queue_ms": outcome.queue_seconds * 1000 if outcome else 0.0,
            "compute_ms": outcome.compute_seconds * 1000 if outcome else 0.0,
            "batch_size": outcome.batch_size if outcome else 0, "cache_hit": outcome is None,
            **item.logged,
            "predicted_label": answer.get("label"), "predicted_class_id": answer.get("class_id"),
            "predicted_score": answer.get("score"),
        })


# The application ---------------------------------------------------------------------------

class Guard:
    """ASGI middleware: the bearer token (constant-time compare) on every endpoint but health,
    and requests counted by endpoint, model and status code."""

    def __init__(self, app: ASGIApp, state: ServingState) -> None:
        self.app, self.state = app, state
        self.token = state.config.token.encode() if state.config.token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        endpoint, model = self._labels(path)
        status = 500

        async def counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            if self.token is not None and path not in OPEN_PATHS and not self._authorized(scope):
                error = ApiError(401, "unauthorized", "expected the header Authorization: Bearer <token>",
                                 {"WWW-Authenticate": "Bearer"})
                await _error_response(error)(scope, receive, counted)
                return
            await self.app(scope, receive, counted)
        finally:
            self.state.metrics.requests.labels(endpoint=endpoint, model=model, code=str(status)).inc()

    def _authorized(self, scope: Scope) -> bool:
        assert self.token is not None
        for key, value in scope["headers"]:
            if key == b"authorization":
                scheme, _, given = value.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self.token)
        return False

    def _labels(self, path: str) -> tuple[str, str]:
        match = _PREDICT_PATH.match(path)
        if match:  # a model label only for served models: no unbounded label sets from made-up names
            name = match.group(1).lower()
            return match.group(2), name if name in self.state.registry.models else ""
        known = {"/healthz": "healthz", "/readyz": "readyz", "/v1/models": "models", "/v1/sql": "sql",
                 "/metrics": "metrics"}
        return known.get(path, "other"), ""


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return json_response({"error": {"code": code, "message": f"{exc.detail}: {request.method} {request.url.path}"}},
                         exc.status_code, dict(exc.headers or {}))


async def _internal_error(request: Request, exc: Exception) -> Response:
    return json_response({"error": {"code": "internal_error", "message": f"{type(exc).__name__}: {exc}"}}, 500)


def build_app(state: ServingState) -> Starlette:
    """The Starlette application over ``state``; models load in a thread once it starts."""
    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        state.loop = asyncio.get_running_loop()
        loader = threading.Thread(target=state.load_models, name="mallard-model-loader", daemon=True)
        loader.start()
        try:
            yield
        finally:  # uvicorn then re-raises the SIGTERM or SIGINT that stopped it: close everything here
            loader.join(timeout=60)
            state.registry.close()
            if state.log is not None:
                state.log.close()
                state.log.connection.close()
            state.connection.close()

    routes = [
        Route("/healthz", _endpoint(healthz), methods=["GET"]),
        Route("/readyz", _endpoint(readyz), methods=["GET"]),
        Route("/metrics", _endpoint(metrics), methods=["GET"]),
        Route("/v1/models", _endpoint(list_models), methods=["GET"]),
        Route("/v1/models/{name}:predict", _endpoint(predict), methods=["POST"]),
        Route("/v1/models/{name}:route", _endpoint(route), methods=["POST"]),
        Route("/v1/sql", _endpoint(sql), methods=["POST"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={HTTPException: _http_error, Exception: _internal_error})
    app.state.serving = state
    app.add_middleware(Guard, state=state)
    return app
