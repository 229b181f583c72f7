"""A real ``rnnkit serve`` process: a bounded load test on loopback (every stream complete, zero
errors, no growth in threads or memory), and SIGTERM (stops accepting, cuts the open stream,
exits 0). Also the command's one-line refusals."""
import json
import signal
import socket
import subprocess
import threading
import time

import httpx
import pytest

from rnnkit.cli.main import main
from rnnkit.serve.server import spawn


def start(runs, *options) -> tuple[subprocess.Popen, str]:
    return spawn([runs / "char", runs / "dates", "--port", "0", "--threads", "1", *options])


def proc_status(pid: int) -> dict:
    fields = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status"))
    return {"threads": int(fields["Threads"]), "rss_kb": int(fields["VmRSS"].split()[0])}


def sse_choices(text: str) -> tuple[dict, bool]:
    reasons, done = {}, False
    for line in text.split("\n"):
        if line == "data: [DONE]":
            done = True
        elif line.startswith("data: "):
            for c in json.loads(line[6:]).get("choices", []):
                if c["finish_reason"]:
                    reasons[c["index"]] = c["finish_reason"]
    return reasons, done


def load(url: str, clients: int, seconds: float) -> tuple[int, list]:
    done, errors = [0], []

    def client(i):
        with httpx.Client(base_url=url, timeout=30) as c:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                body = {"model": "char", "prompt": "ROMEO:", "max_tokens": 50 + i, "n": 1 + i % 2, "seed": i,
                        "stream": i % 2 == 0, **({"top_k": 5} if i % 3 == 0 else {})}
                r = c.post("/v1/completions", json=body)
                if r.status_code != 200:
                    errors.append((r.status_code, r.text[:200]))
                    continue
                if body["stream"]:
                    reasons, finished = sse_choices(r.text)
                    ok = finished and reasons == {k: "length" for k in range(body["n"])}
                else:
                    ok = [ch["finish_reason"] for ch in r.json()["choices"]] == ["length"] * body["n"]
                if not ok:
                    errors.append(("incomplete", r.text[-200:]))
                done[0] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done[0], errors


def test_load_then_sigterm(runs):
    proc, url = start(runs, "--max-tokens", "1000000", "--shutdown-timeout", "1")
    try:
        load(url, 8, 1.0)  # warm up: pools and buffers reach their size
        before = proc_status(proc.pid)
        completed, errors = load(url, 8, 3.0)
        after = proc_status(proc.pid)
        assert errors == [] and completed > 16
        assert after["threads"] <= before["threads"]
        assert after["rss_kb"] - before["rss_kb"] < 20_000, (before, after)
        metrics = httpx.get(f"{url}/metrics").text
        assert "rnnkit_active_streams 0" in metrics

        # SIGTERM with a stream open: the listener closes, the stream is cut, exit status 0
        port = int(url.rsplit(":", 1)[1])
        got_first, ended = threading.Event(), threading.Event()

        def endless():
            with httpx.stream("POST", f"{url}/v1/completions", timeout=30,
                              json={"model": "char", "max_tokens": 1000000, "stream": True}) as r:
                try:
                    for _ in r.iter_bytes():
                        got_first.set()
                except httpx.HTTPError:
                    pass
            ended.set()

        threading.Thread(target=endless, daemon=True).start()
        assert got_first.wait(10)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        assert proc.wait(15) == 0
        assert ended.wait(5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_refusals(runs, capsys):
    assert main(["serve", str(runs / "char"), "--name", "a", "--name", "b"]) == 2
    assert "--name was given 2 time(s) for 1 run(s)" in capsys.readouterr().err
    assert main(["serve", str(runs / "corpus.txt")]) == 2
    assert "not an rnnkit run folder" in capsys.readouterr().err
    # another host: a warning first (here the address is not this machine's, so listening fails)
    assert main(["serve", str(runs / "dates"), "--host", "192.0.2.1", "--port", "8123"]) == 2
    err = capsys.readouterr().err
    assert "warning: listening on 192.0.2.1: other machines can reach this server" in err
    assert "cannot listen on 192.0.2.1:8123" in err
