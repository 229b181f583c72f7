"""The server's counters, written in the Prometheus text exposition format (version 0.0.4)."""
from __future__ import annotations

import bisect
import threading
from collections import defaultdict

#: Upper bounds (seconds) of the request latency histogram's buckets.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _labels(**labels) -> str:
    def esc(v) -> str:
        return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return "{" + ",".join(f'{k}="{esc(v)}"' for k, v in labels.items()) + "}"


class Metrics:
    """Requests by route and status, tokens generated and batch size by model, open streams,
    and a latency histogram by route. Safe to update from any thread."""

    def __init__(self):
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.tokens: dict[str, int] = defaultdict(int)
        self.batch: dict[str, int] = {}
        self.steps: dict[str, int] = defaultdict(int)
        self.latency: dict[str, list[int]] = {}
        self.latency_sum: dict[str, float] = defaultdict(float)
        self.active_streams = 0

    def request(self, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(route, status)] += 1
            counts = self.latency.setdefault(route, [0] * (len(BUCKETS) + 1))
            counts[bisect.bisect_left(BUCKETS, seconds)] += 1
            self.latency_sum[route] += seconds

    def step(self, model: str, rows: int, tokens: int) -> None:
        with self._lock:
            self.tokens[model] += tokens
            self.batch[model] = rows
            self.steps[model] += 1

    def streams(self, delta: int) -> None:
        with self._lock:
            self.active_streams += delta

    def render(self, batch_now: dict[str, int]) -> str:
        """The exposition text; ``batch_now`` is each model's rows being generated now."""
        with self._lock:
            out = ["# HELP rnnkit_requests_total HTTP requests answered, by route and status.",
                   "# TYPE rnnkit_requests_total counter"]
            out += [f"rnnkit_requests_total{_labels(route=r, status=s)} {c}" for (r, s), c in sorted(self.requests.items())]
            out += ["# HELP rnnkit_tokens_generated_total Tokens generated, by model.",
                    "# TYPE rnnkit_tokens_generated_total counter"]
            out += [f"rnnkit_tokens_generated_total{_labels(model=m)} {c}" for m, c in sorted(self.tokens.items())]
            out += ["# HELP rnnkit_batch_steps_total Generation steps taken, by model.",
                    "# TYPE rnnkit_batch_steps_total counter"]
            out += [f"rnnkit_batch_steps_total{_labels(model=m)} {c}" for m, c in sorted(self.steps.items())]
            out += ["# HELP rnnkit_active_streams Completion requests streaming or waiting for their text now.",
                    "# TYPE rnnkit_active_streams gauge", f"rnnkit_active_streams {self.active_streams}"]
            out += ["# HELP rnnkit_batch_size Streams (choices) each model is generating now.",
                    "# TYPE rnnkit_batch_size gauge"]
            out += [f"rnnkit_batch_size{_labels(model=m)} {c}" for m, c in sorted(batch_now.items())]
            out += ["# HELP rnnkit_request_duration_seconds Time from a request to its last byte, by route.",
                    "# TYPE rnnkit_request_duration_seconds histogram"]
            for route, counts in sorted(self.latency.items()):
                total = 0
                for bound, c in zip(BUCKETS + (float("inf"),), counts):
                    total += c
                    le = "+Inf" if bound == float("inf") else repr(bound)
                    out.append(f"rnnkit_request_duration_seconds_bucket{_labels(route=route, le=le)} {total}")
                out.append(f"rnnkit_request_duration_seconds_sum{_labels(route=route)} {self.latency_sum[route]:.6f}")
                out.append(f"rnnkit_request_duration_seconds_count{_labels(route=route)} {total}")
            return "\n".join(out) + "\n"
