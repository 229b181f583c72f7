"""Request bodies checked field by field: a wrong type, a value out of range or a field this
server does not know is a 400 naming the field (`rnnkit.serve.errors.APIError`)."""
from __future__ import annotations

import json
import math
import secrets

from .errors import APIError, bad
from .limits import Limits
from .scheduler import Completion

COMPLETION_FIELDS = ("model", "prompt", "max_tokens", "temperature", "top_p", "top_k", "seed", "n", "stop",
                     "stream", "user")
TRANSLATE_FIELDS = ("model", "texts", "attention")
SCORE_FIELDS = ("model", "text")
DEFAULT_MAX_TOKENS = 16  # as OpenAI's completions


def parse_json(raw: bytes, limits: Limits) -> dict:
    """The body as a JSON object: 413 past ``limits.max_body_bytes``, 400 when it is not JSON
    or not an object."""
    if len(raw) > limits.max_body_bytes:
        raise APIError(413, f"request body of {len(raw):,} bytes is over the limit of {limits.max_body_bytes:,} "
                            f"(--max-body-bytes)", "invalid_request_error", None)
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise bad(None, f"the body is not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise bad(None, f"the body must be a JSON object, got {type(body).__name__}")
    return body


def known_fields(body: dict, fields: tuple[str, ...]) -> None:
    for key in body:
        if key not in fields:
            raise bad(key, f"unknown field {key!r}; this endpoint takes {', '.join(fields)}")


def _int(body: dict, name: str, default, low: int, high: int | None = None, limit_flag: str | None = None):
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad(name, f"{name} must be an integer, got {json.dumps(value)}")
    if value < low:
        raise bad(name, f"{name} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise bad(name, f"{name} must be <= {high}{f' ({limit_flag})' if limit_flag else ''}, got {value}")
    return value


def _number(body: dict, name: str, default):
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise bad(name, f"{name} must be a finite number, got {json.dumps(value)}")
    return float(value)


def text_field(body: dict, name: str, limits: Limits, default=None, required: bool = True) -> str:
    value = body.get(name, default)
    if value is None and required:
        raise bad(name, f"{name} is required (a string)")
    if not isinstance(value, str):
        raise bad(name, f"{name} must be a string, got {json.dumps(value)[:40]}")
    if len(value) > limits.max_prompt_chars:
        raise bad(name, f"{name} has {len(value):,} characters, over the limit of {limits.max_prompt_chars:,} "
                        f"(--max-prompt-chars)")
    return value


def model_name(body: dict) -> str:
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise bad("model", "model is required: the id of a served model (GET /v1/models)")
    return name


def completion(body: dict, limits: Limits) -> Completion:
    """The `Completion` a ``POST /v1/completions`` body asks for. Defaults: ``max_tokens`` 16,
    ``temperature`` 1, ``n`` 1, ``seed`` a fresh random one (reported in the response)."""
    known_fields(body, COMPLETION_FIELDS)
    prompt = text_field(body, "prompt", limits, default="")
    max_tokens = _int(body, "max_tokens", DEFAULT_MAX_TOKENS, 0, limits.max_tokens, "--max-tokens")
    temperature = _number(body, "temperature", 1.0)
    if temperature < 0:
        raise bad("temperature", f"temperature must be >= 0 (0 = greedy), got {temperature:g}")
    top_p = _number(body, "top_p", None)
    if top_p is not None and not 0 < top_p <= 1:
        raise bad("top_p", f"top_p must be in (0, 1], got {top_p:g}")
    if top_p == 1.0:
        top_p = None  # keeps every token: the same draws as no top_p (OpenAI's default is 1)
    top_k = _int(body, "top_k", None, 1)
    seed = _int(body, "seed", None, 0, 2**63 - 1)
    n = _int(body, "n", 1, 1, limits.max_n, "--max-n")
    stop = body.get("stop")
    if stop is None:
        stop = []
    elif isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or len(stop) > 4 or not all(isinstance(s, str) and s for s in stop):
        raise bad("stop", f"stop must be a non-empty string or a list of up to 4 of them, got {json.dumps(stop)[:60]}")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise bad("stream", f"stream must be true or false, got {json.dumps(stream)}")
    if "user" in body and not isinstance(body["user"], str):
        raise bad("user", "user must be a string")
    return Completion(prompt, max_tokens, temperature, top_k, top_p, secrets.randbits(31) if seed is None else seed,
                      n, tuple(stop), stream)


def translate(body: dict, limits: Limits) -> tuple[list[str], bool]:
    """``(texts, attention)`` of a ``POST /v1/translate`` body."""
    known_fields(body, TRANSLATE_FIELDS)
    texts = body.get("texts")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise bad("texts", "texts must be a string or a non-empty list of strings")
    if len(texts) > limits.max_texts:
        raise bad("texts", f"{len(texts)} texts, over the limit of {limits.max_texts} (--max-texts)")
    for t in texts:
        text_field({"texts": t}, "texts", limits)
    attention = body.get("attention", False)
    if not isinstance(attention, bool):
        raise bad("attention", f"attention must be true or false, got {json.dumps(attention)}")
    return texts, attention


def score(body: dict, limits: Limits) -> str:
    """The text of a ``POST /v1/score`` body."""
    known_fields(body, SCORE_FIELDS)
    return text_field(body, "text", limits)
