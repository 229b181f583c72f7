"""Every route of ``rnnkit serve`` (Starlette TestClient): JSON and server-sent events, and every
refusal a 4xx JSON error naming the field, never a 500."""
import json

import numpy as np
import pytest

from rnnkit.lm.stream import StreamLM


def sse(response) -> list:
    """The ``data:`` payloads of an event stream, JSON-decoded (``[DONE]`` kept as the string)."""
    assert response.headers["content-type"].startswith("text/event-stream")
    out = []
    for line in response.text.split("\n"):
        if line.startswith("data: "):
            data = line[6:]
            out.append(data if data == "[DONE]" else json.loads(data))
        else:
            assert line == "", line
    return out


def test_models_list_each_run_with_kind_size_and_training_figures(client, runs):
    data = client.get("/v1/models").json()
    assert data["object"] == "list"
    by_id = {m["id"]: m for m in data["data"]}
    assert {k: m["kind"] for k, m in by_id.items()} == {"char": "char-stream", "wordlm": "word-stream",
                                                          "gru": "char-stream", "word": "ngram-word", "dates": "seq2seq"}
    lm = StreamLM.load(runs / "char")
    assert by_id["char"]["parameters"] == sum(p.numel() for p in lm.model.parameters())
    assert by_id["char"]["vocab_size"] == len(lm.vocab.tokens)
    assert by_id["char"]["training"]["steps"] == 5 and by_id["char"]["training"]["val_bpc"] > 0
    assert by_id["word"]["training"]["epochs"] == 1 and "loss" in by_id["word"]["training"]
    assert by_id["dates"]["vocab_size"]["output"] == 11 and by_id["dates"]["training"]["epochs"] == 1


def test_model_metrics_are_the_runs_training_curves(client, runs):
    curves = client.get("/v1/models/char/metrics").json()
    lines = [json.loads(x) for x in (runs / "char" / "metrics.jsonl").read_text().splitlines()]
    assert curves["source"] == "metrics.jsonl" and curves["points"] == lines
    word = client.get("/v1/models/word/metrics").json()
    assert word["source"] == "metrics.json" and word["points"][0]["epoch"] == 1
    assert client.get("/v1/models/dates/metrics").json()["points"][0]["epoch"] == 1
    assert client.get("/v1/models/nope/metrics").status_code == 404


def test_completion_json_matches_the_streaming_lms_own_sampling(client, models):
    r = client.post("/v1/completions", json={"model": "char", "prompt": "ROMEO:", "max_tokens": 40, "seed": 7,
                                             "temperature": 0.8})
    assert r.status_code == 200
    body = r.json()
    lm = models["char"].engine
    assert body["object"] == "text_completion" and body["model"] == "char" and body["seed"] == 7
    assert body["choices"] == [{"text": lm.sample("ROMEO:", 40, temperature=0.8, seed=7), "index": 0,
                                "logprobs": None, "finish_reason": "length"}]
    assert body["usage"] == {"prompt_tokens": 6, "completion_tokens": 40, "total_tokens": 46}


def test_completion_stream_sends_chunks_then_usage_then_done(client, models):
    request = {"model": "char", "prompt": "ROMEO:", "max_tokens": 30, "seed": 3, "n": 2, "top_k": 5, "stream": True}
    with client.stream("POST", "/v1/completions", json=request) as r:
        r.read()
    events = sse(r)
    assert events[-1] == "[DONE]" and events[-2]["choices"] == []
    assert events[-2]["usage"]["completion_tokens"] == 60
    texts, reasons = ["", ""], [None, None]
    for e in events[:-2]:
        (choice,) = e["choices"]
        texts[choice["index"]] += choice["text"]
        reasons[choice["index"]] = choice["finish_reason"] or reasons[choice["index"]]
    assert len(events) > 10 and reasons == ["length", "length"]
    plain = client.post("/v1/completions", json={**request, "stream": False}).json()
    assert texts == [c["text"] for c in plain["choices"]]


def test_stop_sequences_end_a_choice_without_the_stop_text(client, models):
    lm = models["char"].engine
    full = lm.sample("ROMEO:", 200, seed=11)
    stop = next(full[i:i + 2] for i in range(5, len(full) - 2) if full[i:i + 2].strip() == full[i:i + 2])
    for stream in (False, True):
        r = client.post("/v1/completions", json={"model": "char", "prompt": "ROMEO:", "max_tokens": 200, "seed": 11,
                                                 "stop": [stop, "\x00never"], "stream": stream})
        if stream:
            events = sse(r)
            text = "".join(c["text"] for e in events[:-1] if e != "[DONE]" for c in e["choices"])
            reason = [c["finish_reason"] for e in events[:-2] for c in e["choices"] if c["finish_reason"]]
        else:
            text, reason = r.json()["choices"][0]["text"], [r.json()["choices"][0]["finish_reason"]]
        assert text == full[:full.index(stop)] and reason == ["stop"]


def test_word_level_and_ngram_runs_complete(client, models):
    wordlm = models["wordlm"].engine
    r = client.post("/v1/completions", json={"model": "wordlm", "prompt": "the king", "max_tokens": 6, "seed": 1})
    assert r.json()["choices"][0]["text"] == wordlm.sample("the king", 6, seed=1)
    word = models["word"].engine
    r = client.post("/v1/completions", json={"model": "word", "prompt": "the king", "max_tokens": 5, "seed": 4})
    gen = word.generate("the king", words=5, seed=4)
    assert r.json()["choices"][0]["text"] == " " + " ".join(gen.words)
    assert gen.text == "the king" + r.json()["choices"][0]["text"]


def test_translate_with_and_without_attention(client, models):
    tr = models["dates"].engine
    r = client.post("/v1/translate", json={"model": "dates", "texts": ["3 May 1999", "tuesday 9 july 2001"]})
    assert r.status_code == 200
    assert [o["output"] for o in r.json()["outputs"]] == tr.translate_texts(["3 May 1999", "tuesday 9 july 2001"])
    r = client.post("/v1/translate", json={"model": "dates", "texts": ["3 May 1999"], "attention": True})
    (out,) = r.json()["outputs"]
    (t,) = tr.translate(["3 May 1999"])
    assert out["input_tokens"] == t.input_tokens and out["output_tokens"] == t.output_tokens
    np.testing.assert_allclose(np.array(out["attention"]), t.weights, rtol=1e-6)
    assert len(out["attention"]) == len(out["output_tokens"]) and len(out["attention"][0]) == len(out["input_tokens"])


def test_score_is_the_runs_evaluation(client, models):
    r = client.post("/v1/score", json={"model": "char", "text": "ROMEO: the king and queen"})
    report = models["char"].engine.evaluate("ROMEO: the king and queen")
    assert r.json()["loss"] == pytest.approx(report["loss"]) and r.json()["bpc"] == pytest.approx(report["bpc"])
    assert r.json()["perplexity"] == pytest.approx(report["perplexity"]) and r.json()["tokens"] == 24


def test_healthz_metrics_and_playground(client):
    assert client.get("/healthz").json()["status"] == "ok"
    client.post("/v1/completions", json={"model": "char", "max_tokens": 5, "seed": 0})
    text = client.get("/metrics").text
    assert "# TYPE rnnkit_requests_total counter" in text
    assert 'rnnkit_requests_total{route="/v1/completions",status="200"}' in text
    assert "rnnkit_tokens_generated_total{model=\"char\"}" in text and "rnnkit_active_streams 0" in text
    assert 'rnnkit_request_duration_seconds_bucket{route="/v1/completions",le="+Inf"}' in text
    for line in text.splitlines():  # every sample line: name{labels} number
        if not line.startswith("#"):
            float(line.rsplit(" ", 1)[1])
    page = client.get("/")
    assert page.status_code == 200 and "<html" in page.text.lower()


@pytest.mark.parametrize("body, status, param", [
    (b"{not json", 400, None),
    (b"[1, 2]", 400, None),
    (json.dumps({"model": "nope", "prompt": "x"}).encode(), 404, "model"),
    (json.dumps({"prompt": "x"}).encode(), 400, "model"),
    (json.dumps({"model": "char", "max_tokens": "ten"}).encode(), 400, "max_tokens"),
    (json.dumps({"model": "char", "max_tokens": 10**6}).encode(), 400, "max_tokens"),
    (json.dumps({"model": "char", "temperature": -1}).encode(), 400, "temperature"),
    (json.dumps({"model": "char", "top_p": 1.5}).encode(), 400, "top_p"),
    (json.dumps({"model": "char", "top_k": 0}).encode(), 400, "top_k"),
    (json.dumps({"model": "char", "n": 0}).encode(), 400, "n"),
    (json.dumps({"model": "char", "n": 1000}).encode(), 400, "n"),
    (json.dumps({"model": "char", "seed": 1.5}).encode(), 400, "seed"),
    (json.dumps({"model": "char", "stop": [1]}).encode(), 400, "stop"),
    (json.dumps({"model": "char", "stream": "yes"}).encode(), 400, "stream"),
    (json.dumps({"model": "char", "prompt": ["a", "b"]}).encode(), 400, "prompt"),
    (json.dumps({"model": "char", "prompt": "x" * 30_000}).encode(), 400, "prompt"),
    (json.dumps({"model": "char", "echo": True}).encode(), 400, "echo"),
    (json.dumps({"model": "dates", "prompt": "x"}).encode(), 400, "model"),
])
def test_bad_completion_requests_are_4xx_json_naming_the_field(client, body, status, param):
    r = client.post("/v1/completions", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["param"] == param and error["message"] and "Traceback" not in r.text


@pytest.mark.parametrize("route, body, status, param", [
    ("/v1/translate", {"model": "dates", "texts": []}, 400, "texts"),
    ("/v1/translate", {"model": "dates", "texts": ["x" * 100]}, 400, "texts"),  # longer than Tx: refused
    ("/v1/translate", {"model": "dates", "texts": ["3 may"], "attention": 1}, 400, "attention"),
    ("/v1/translate", {"model": "char", "texts": ["3 may"]}, 400, "model"),
    ("/v1/score", {"model": "char"}, 400, "text"),
    ("/v1/score", {"model": "word", "text": "the king"}, 400, "model"),
    ("/v1/score", {"model": "char", "text": "R"}, 400, "text"),  # one token: nothing to predict
])
def test_bad_translate_and_score_requests(client, route, body, status, param):
    r = client.post(route, json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["param"] == param


def test_unknown_routes_and_methods_answer_json(client):
    assert client.get("/v1/nothing").json()["error"]["type"] == "not_found_error"
    r = client.get("/v1/completions")  # a POST route: GET falls through to the static files
    assert r.status_code == 404 and r.json()["error"]["message"] == "GET /v1/completions: Not Found"


def test_body_over_the_limit_is_413(models):
    from starlette.testclient import TestClient

    from rnnkit.serve.app import create_app
    from rnnkit.serve.limits import Limits

    app = create_app([models["char"]], Limits(max_body_bytes=100), close_models=False)
    r = TestClient(app).post("/v1/completions", json={"model": "char", "prompt": "x" * 200})
    assert r.status_code == 413 and "--max-body-bytes" in r.json()["error"]["message"]


def test_api_key_guards_the_api_routes_only(models):
    from starlette.testclient import TestClient

    from rnnkit.serve.app import create_app

    c = TestClient(create_app([models["char"]], api_key="s3cret", close_models=False))
    for route in ("/v1/models", "/metrics", "/v1/models/char/metrics"):
        assert c.get(route).status_code == 401
        assert c.get(route, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get(route, headers={"Authorization": "Bearer s3cret"}).status_code == 200
    r = c.post("/v1/completions", json={"model": "char"})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    assert c.get("/healthz").status_code == 200 and c.get("/").status_code == 200
