"""The routes of ``rnnkit serve`` (a Starlette app) over a list of `ServedModel`.

API routes (``/v1/...`` and ``/metrics``) need ``Authorization: Bearer KEY`` when the app has an
``api_key``; ``/healthz`` and the playground's static files (``/``) do not. Every refusal is a
4xx with ``{"error": {"message", "type", "param"}}``; an unexpected failure is a 500 of the
same shape, never a traceback.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import json
import secrets
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from . import schema
from .errors import APIError, bad
from .limits import Limits, StreamSlots
from .metrics import Metrics
from .scheduler import Job

STATIC = Path(__file__).with_name("static")


def error_response(exc: APIError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


class Server:
    """State shared by the routes: the models by id, limits, open stream slots, counters."""

    def __init__(self, models: list, limits: Limits | None = None, api_key: str | None = None):
        ids = [m.id for m in models]
        if len(set(ids)) != len(ids):
            raise ValueError(f"two served models share a name: {', '.join(ids)} (give --name)")
        self.models = {m.id: m for m in models}
        self.limits = limits or Limits()
        self.api_key = api_key
        self.slots = StreamSlots(self.limits.max_streams)
        self.metrics = Metrics()
        for m in models:
            if m.generator is not None:
                m.generator.on_step = functools.partial(self._stepped, m.id)

    def _stepped(self, model: str, rows: int, tokens: int) -> None:
        self.metrics.step(model, rows, tokens)

    def model(self, name: str, lm: bool | None = None, route: str = ""):
        if name not in self.models:
            raise APIError(404, f"no model {name!r}; this server serves: {', '.join(self.models)}",
                           "not_found_error", "model")
        m = self.models[name]
        if lm is True and not m.is_lm:
            raise bad("model", f"{name} is a seq2seq run: {route} takes language models (POST /v1/translate for it)")
        if lm is False and m.is_lm:
            raise bad("model", f"{name} is a {m.kind} language model: {route} takes seq2seq runs")
        return m

    def check_key(self, request: Request) -> None:
        if self.api_key is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.api_key}".encode()):
            raise APIError(401, "missing or wrong API key: send the header Authorization: Bearer KEY",
                           "authentication_error", None, {"WWW-Authenticate": "Bearer"})

    async def body(self, request: Request) -> dict:
        """The JSON body, read no further than the size limit."""
        size = request.headers.get("content-length")
        limit = self.limits.max_body_bytes
        if size is not None and size.isdigit() and int(size) > limit:
            raise APIError(413, f"request body of {int(size):,} bytes is over the limit of {limit:,} (--max-body-bytes)")
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > limit:
                break
        return schema.parse_json(bytes(raw), self.limits)


def api(route: str, key: bool = True):
    """A route handler that checks the key, answers `APIError` as JSON and counts the request."""
    def wrap(handler):
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            server: Server = request.app.state.server
            t0 = time.perf_counter()
            try:
                if key:
                    server.check_key(request)
                response = await handler(server, request)
            except APIError as exc:
                response = error_response(exc)
            server.metrics.request(route, response.status_code, time.perf_counter() - t0)
            return response
        return endpoint
    return wrap


# ------------------------------------------------------------------- routes
@api("/healthz", key=False)
async def healthz(server: Server, request: Request) -> Response:
    return JSONResponse({"status": "ok", "models": list(server.models)})


@api("/metrics")
async def metrics(server: Server, request: Request) -> Response:
    batch = {name: m.generator.rows for name, m in server.models.items() if m.generator is not None}
    return PlainTextResponse(server.metrics.render(batch), media_type="text/plain; version=0.0.4; charset=utf-8")


@api("/v1/models")
async def list_models(server: Server, request: Request) -> Response:
    return JSONResponse({"object": "list", "data": [m.describe() for m in server.models.values()]})


@api("/v1/models/{model}/metrics")
async def model_metrics(server: Server, request: Request) -> Response:
    m = server.model(request.path_params["model"])
    return JSONResponse({"model": m.id, "kind": m.kind, **m.curves()})


@api("/v1/score")
async def score(server: Server, request: Request) -> Response:
    body = await server.body(request)
    text = schema.score(body, server.limits)
    m = server.model(schema.model_name(body), lm=True, route="/v1/score")
    if m.kind == "ngram-word":
        raise bad("model", f"{m.id} is an n-gram word run: /v1/score takes streaming LM runs (rnnkit lm train)")
    try:
        report = await asyncio.get_running_loop().run_in_executor(None, m.engine.evaluate, text)
    except ValueError as exc:
        raise bad("text", f"cannot score this text: {exc}") from None
    return JSONResponse({"model": m.id, "level": m.engine.level, **report})


@api("/v1/translate")
async def translate(server: Server, request: Request) -> Response:
    body = await server.body(request)
    texts, attention = schema.translate(body, server.limits)
    m = server.model(schema.model_name(body), lm=False, route="/v1/translate")
    tr = m.engine

    def run():
        if not attention:
            return [{"input": t, "output": o} for t, o in zip(texts, tr.translate_texts(texts))]
        return [{"input": r.source, "output": r.output, "input_tokens": r.input_tokens,
                 "output_tokens": r.output_tokens, "attention": r.weights.tolist()} for r in tr.translate(texts)]

    try:
        outputs = await asyncio.get_running_loop().run_in_executor(None, run)
    except ValueError as exc:
        raise bad("texts", str(exc)) from None
    unknown = tr.unknown(texts)
    extra = {"warnings": [f"characters not in the input vocabulary, read as <unk>: {''.join(unknown)}"]} if unknown else {}
    return JSONResponse({"model": m.id, "outputs": outputs, **extra})


@api("/v1/completions")
async def completions(server: Server, request: Request) -> Response:
    body = await server.body(request)
    req = schema.completion(body, server.limits)
    m = server.model(schema.model_name(body), lm=True, route="/v1/completions")
    notes: list[str] = []
    if m.kind == "ngram-word":
        ids, prev, prompt_tokens = None, None, len(req.prompt.split())
    else:
        ids, notes = m.engine.encode_prime(req.prompt)
        prev, prompt_tokens = (ids[-1] if req.prompt else None), len(ids)
    server.slots.take(req.n)
    job = Job(req, asyncio.get_running_loop(), ids, prev)
    try:
        await m.generator.start(job)
    except RuntimeError as exc:
        server.slots.give(req.n)
        raise APIError(503, str(exc), "server_error") from None
    server.metrics.streams(1)
    head = {"id": f"cmpl-{secrets.token_hex(12)}", "object": "text_completion", "created": int(time.time()),
            "model": m.id}
    tail = {"seed": req.seed, **({"warnings": [f"prompt tokens not in the vocabulary: {', '.join(notes)}"]}
                                  if notes else {})}
    deadline = asyncio.get_running_loop().time() + server.limits.request_timeout_s
    if req.stream:
        return StreamingResponse(_sse(server, request, job, head, tail, prompt_tokens, deadline),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    texts, reasons = [""] * req.n, [None] * req.n
    try:
        async for deltas, finishes in _events(server, request, job, deadline):
            for k, text in deltas:
                texts[k] += text
            for k, reason in finishes:
                reasons[k] = reason
    finally:
        _release(server, job)
    if job.cancelled and not job.done:  # the client left: nobody reads this answer
        return Response(status_code=499)
    choices = [{"text": t, "index": k, "logprobs": None, "finish_reason": r} for k, (t, r) in enumerate(zip(texts, reasons))]
    return JSONResponse({**head, "choices": choices, "usage": _usage(prompt_tokens, job), **tail})


def _usage(prompt_tokens: int, job: Job) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": job.generated,
            "total_tokens": prompt_tokens + job.generated}


def _release(server: Server, job: Job) -> None:
    if not job.done:
        job.cancel()  # its rows leave the batch at the worker's next step
    server.slots.give(job.request.n)
    server.metrics.streams(-1)


async def _watch_disconnect(request: Request, job: Job) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            job.cancel()
            return


async def _events(server: Server, request: Request, job: Job, deadline: float):
    """The job's ``(deltas, finishes)`` until every choice is done; stops early (with
    ``job.cancelled`` set) when the client disconnects; `APIError` on timeout or failure."""
    loop = asyncio.get_running_loop()
    watch = asyncio.create_task(_watch_disconnect(request, job))
    ended = 0  # choices whose end this handler has read (the worker's job.done runs ahead of the queue)
    try:
        while ended < job.request.n:
            get = asyncio.ensure_future(job.queue.get())
            finished, _ = await asyncio.wait({get, watch}, timeout=max(0.0, deadline - loop.time()),
                                             return_when=asyncio.FIRST_COMPLETED)
            if get not in finished:
                get.cancel()
                if watch in finished:
                    return
                job.cancel()
                raise APIError(504, f"the completion ran past the request timeout of "
                                    f"{server.limits.request_timeout_s:g} s (--request-timeout)", "timeout_error")
            items = [get.result()]
            while not job.queue.empty():  # fallen behind the worker: send what is there at once
                items.append(job.queue.get_nowait())
            deltas, finishes = _merged(items)
            error = next((e for _, _, e in items if e), None)
            if error:
                job.cancel()
                raise APIError(503, error, "server_error")
            ended += len(finishes)
            yield deltas, finishes
    finally:
        watch.cancel()


def _merged(items: list) -> tuple[list, list]:
    """Several queue items of one job as one: each choice's texts joined, in order."""
    if len(items) == 1:
        return items[0][0], items[0][1]
    texts: dict[int, list[str]] = {}
    for deltas, _, _ in items:
        for k, text in deltas:
            texts.setdefault(k, []).append(text)
    return [(k, "".join(parts)) for k, parts in texts.items()], [f for _, finishes, _ in items for f in finishes]


def _sse_data(payload) -> bytes:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n".encode()


async def _sse(server: Server, request: Request, job: Job, head: dict, tail: dict, prompt_tokens: int,
               deadline: float):
    """Server-sent events: a chunk per choice per step (its new text, and its finish reason
    when it ends), then a chunk with ``usage`` and no choices, then ``data: [DONE]``."""
    t0 = time.perf_counter()
    status = 200
    try:
        try:
            prefix = json.dumps(head)[:-1] + ', "choices": [{"text": '  # the chunks' common start, made once
            async for deltas, finishes in _events(server, request, job, deadline):
                ended = dict(finishes)
                chunks = [(k, text, ended.pop(k, None)) for k, text in deltas] + [(k, "", r) for k, r in ended.items()]
                yield b"".join(f'data: {prefix}{json.dumps(text)}, "index": {k}, "logprobs": null, "finish_reason": '
                               f'{json.dumps(reason)}}}]}}\n\n'.encode() for k, text, reason in chunks)
        except APIError as exc:
            status = exc.status
            yield _sse_data(exc.body())
            yield _sse_data("[DONE]")
            return
        if job.cancelled and not job.done:
            status = 499
            return
        yield _sse_data({**head, "choices": [], "usage": _usage(prompt_tokens, job), **tail})
        yield _sse_data("[DONE]")
    finally:
        _release(server, job)
        server.metrics.request("/v1/completions (stream)", status, time.perf_counter() - t0)


# ---------------------------------------------------------------- the app
async def _http_error(request: Request, exc: HTTPException) -> Response:
    kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
    return error_response(APIError(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}", kind))


async def _unexpected(request: Request, exc: Exception) -> Response:
    return error_response(APIError(500, f"internal error: {type(exc).__name__}: {str(exc)[:200]}", "server_error"))


def create_app(models: list, limits: Limits | None = None, api_key: str | None = None,
               static: Path | None = STATIC, close_models: bool = True) -> Starlette:
    """The ASGI app serving ``models`` (`rnnkit.serve.registry.ServedModel`). With
    ``close_models`` the app's shutdown stops every model's generator thread."""
    server = Server(models, limits, api_key)
    routes = [Route("/healthz", healthz), Route("/metrics", metrics), Route("/v1/models", list_models),
              Route("/v1/models/{model:path}/metrics", model_metrics),
              Route("/v1/completions", completions, methods=["POST"]),
              Route("/v1/translate", translate, methods=["POST"]),
              Route("/v1/score", score, methods=["POST"])]
    if static is not None:
        routes.append(Mount("/", StaticFiles(directory=static, html=True), name="static"))

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        for m in models if close_models else ():
            m.close()

    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={HTTPException: _http_error, Exception: _unexpected})
    app.state.server = server
    return app
