"""Running the app under uvicorn: the socket, the startup line, a clean stop on SIGTERM.

On SIGTERM (or Ctrl-C) uvicorn stops accepting connections, lets open streams run to their
end for up to ``shutdown_timeout`` seconds and then cuts them; the generator threads stop
with the app, and `serve` returns 0 after a SIGTERM.
"""
from __future__ import annotations

import ipaddress
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

LOOPBACK = ("localhost",)
#: The line `serve` prints once it listens; `spawn` reads the URL back from it.
LISTENING = "rnnkit serve: listening on {url} (SIGTERM or Ctrl-C stops)"


def is_loopback(host: str) -> bool:
    if host in LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(app, host: str = "127.0.0.1", port: int = 8000, shutdown_timeout: float = 10.0,
          log_level: str = "warning", announce=None) -> int:
    """Serve ``app`` on ``host:port`` (port 0: any free one) until SIGTERM or Ctrl-C; returns 0.
    ``announce(url)`` is called once the socket listens (default: a line on stderr)."""
    import uvicorn

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    bound = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level=log_level, timeout_graceful_shutdown=shutdown_timeout, lifespan="on",
                            access_log=False)
    server = uvicorn.Server(config)
    # uvicorn re-raises the signal it stopped on once it is done; with this handler in place a
    # SIGTERM then ends `serve` normally (exit status 0) instead of killing the process.
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    # The batch worker gives the GIL up inside every C step and must win it back from the event
    # loop: at Python's default 5 ms switch interval it waits behind the loop's callbacks (64
    # SSE streams ran 25% slower than the same requests without streaming); at 0.2 ms it does not.
    sys.setswitchinterval(0.0002)
    shown = f"[{host}]" if ":" in host else host
    (announce or (lambda url: print(LISTENING.format(url=url), file=sys.stderr, flush=True)))(f"http://{shown}:{bound}")
    try:
        server.run(sockets=[sock])
    finally:
        signal.signal(signal.SIGTERM, previous)
        sock.close()
    return 0


def spawn(arguments: Sequence[str], timeout: float = 60.0, **popen) -> tuple[subprocess.Popen, str]:
    """Start ``rnnkit serve ARGUMENTS`` as a child process (``--port 0`` picks a free port without
    a race) and return it with its URL once it listens; its stderr is drained from then on.
    Raises RuntimeError when it exits first or prints nothing for ``timeout`` seconds."""
    proc = subprocess.Popen([sys.executable, "-m", "rnnkit", "serve", *map(str, arguments)],
                            stderr=subprocess.PIPE, text=True, **popen)
    pattern = re.compile(re.escape(LISTENING).replace(re.escape("{url}"), r"(http://\S+)"))
    end = time.monotonic() + timeout
    for line in proc.stderr:
        found = pattern.search(line)
        if found:
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep the pipe drained
            return proc, found.group(1)
        if time.monotonic() > end:
            proc.kill()
            raise RuntimeError(f"rnnkit serve did not start within {timeout:g} s")
    raise RuntimeError(f"rnnkit serve exited with status {proc.wait()} before listening")
