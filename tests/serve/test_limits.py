"""Stream slots: past --max-streams a 429 with Retry-After; a client that disconnects frees its
slot and its batch rows at the worker's next step. Requests run through the ASGI app itself, so
a client can stay connected (or leave) exactly when the test says."""
import asyncio
import json
import time

import pytest

from rnnkit.serve.app import create_app
from rnnkit.serve.limits import Limits, StreamSlots


class Call:
    """One HTTP request to the app; ``leave`` makes its client disconnect."""

    def __init__(self, app, body: dict):
        self.app, self.raw = app, json.dumps(body).encode()
        self.first_chunk, self.leave_now = asyncio.Event(), asyncio.Event()
        self.status, self.headers, self.body = None, {}, b""
        self._sent_body = False

    async def receive(self):
        if not self._sent_body:
            self._sent_body = True
            return {"type": "http.request", "body": self.raw, "more_body": False}
        await self.leave_now.wait()
        return {"type": "http.disconnect"}

    async def send(self, message):
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = {k.decode(): v.decode() for k, v in message["headers"]}
        elif message.get("body"):
            self.body += message["body"]
            self.first_chunk.set()

    async def __call__(self):
        scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
                 "method": "POST", "scheme": "http", "path": "/v1/completions", "raw_path": b"/v1/completions",
                 "query_string": b"", "root_path": "", "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000),
                 "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(self.raw)).encode())]}
        await self.app(scope, self.receive, self.send)
        self.leave_now.set()


def wait_for(condition, timeout=5.0):
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


def test_past_max_streams_is_429_with_retry_after_and_a_disconnect_frees_the_slots(models):
    model = models["char"]
    app = create_app([model], Limits(max_streams=3, max_tokens=10**6), close_models=False)
    server = app.state.server
    endless = {"model": "char", "prompt": "ROMEO:", "max_tokens": 10**6, "n": 3, "stream": True, "seed": 0}

    async def run():
        first = Call(app, endless)
        task = asyncio.create_task(first())
        await first.first_chunk.wait()
        assert server.slots.active == 3 and model.generator.rows == 3
        second = Call(app, {"model": "char", "prompt": "x", "max_tokens": 4})
        await second()
        first.leave_now.set()  # the streaming client goes away
        await asyncio.wait_for(task, 5)
        return first, second

    first, second = asyncio.run(run())
    assert second.status == 429 and second.headers["retry-after"] == "1"
    assert json.loads(second.body)["error"]["type"] == "rate_limit_error"
    assert first.status == 200 and first.body.startswith(b"data: {") and b"[DONE]" not in first.body
    assert server.slots.active == 0
    wait_for(lambda: model.generator.rows == 0)  # its rows left the batch at the next step
    later = Call(app, {"model": "char", "prompt": "x", "max_tokens": 4})
    asyncio.run(later())
    assert later.status == 200 and len(json.loads(later.body)["choices"]) == 1


def test_a_request_past_its_timeout_is_cut_with_504(models):
    app = create_app([models["char"]], Limits(max_tokens=10**6, request_timeout_s=0.3), close_models=False)
    call = Call(app, {"model": "char", "prompt": "ROMEO:", "max_tokens": 10**6})
    t0 = time.monotonic()
    asyncio.run(call())
    assert call.status == 504 and "--request-timeout" in json.loads(call.body)["error"]["message"]
    assert time.monotonic() - t0 < 3
    wait_for(lambda: models["char"].generator.rows == 0 and app.state.server.slots.active == 0)


def test_limits_refuse_nonsense_and_slots_count():
    with pytest.raises(ValueError, match="max_streams"):
        Limits(max_streams=0)
    slots = StreamSlots(2)
    slots.take(2)
    with pytest.raises(Exception, match="limit is 2"):
        slots.take(1)
    slots.give(2)
    slots.take(1)
