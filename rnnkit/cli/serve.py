"""``rnnkit serve RUN [RUN ...]``: trained runs behind an HTTP API, with a playground at ``/``.

    rnnkit serve runs/shakes runs/dates --port 8000
    curl -s localhost:8000/v1/completions -d '{"model": "shakes", "prompt": "ROMEO:", "max_tokens": 200}'

Routes and what they answer: `rnnkit.serve.app`; the batched generation: `rnnkit.serve.scheduler`.
"""
from __future__ import annotations

from .checks import positive_float, positive_int


def register(sub) -> None:
    from ..serve.limits import Limits

    d = Limits()
    p = sub.add_parser("serve", help="serve runs over HTTP: completions (batched, streaming), translate, score",
                       description="Serve trained runs of any kind (rnnkit lm train, rnnkit train, rnnkit seq2seq "
                                   "train) over HTTP: GET /v1/models, POST /v1/completions (OpenAI's shape, JSON or "
                                   "server-sent events), POST /v1/translate, POST /v1/score, GET /healthz, GET "
                                   "/metrics (Prometheus), GET /v1/models/MODEL/metrics (training curves), and a "
                                   "playground at /. Concurrent completions of an LSTM run are stepped as one batch.")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders to serve")
    p.add_argument("--name", action="append", metavar="NAME",
                   help="model id of each RUN, in order (give it once per RUN; default: the folder's name)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 = any free port, printed)")
    p.add_argument("--api-key", metavar="KEY", help="require 'Authorization: Bearer KEY' on /v1/* and /metrics")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best",
                   help="streaming runs: which checkpoint (default best; last when there is no best yet)")
    p.add_argument("--threads", type=positive_int, metavar="N",
                   help="CPU threads of the generation step (default: the cores other processes leave idle)")
    p.add_argument("--max-streams", type=positive_int, default=d.max_streams, metavar="N",
                   help=f"choices generated at once over all models; beyond, 429 with Retry-After (default {d.max_streams})")
    p.add_argument("--max-tokens", type=positive_int, default=d.max_tokens, metavar="N",
                   help=f"largest max_tokens a request may ask (default {d.max_tokens})")
    p.add_argument("--max-n", type=positive_int, default=d.max_n, metavar="N",
                   help=f"largest n (choices per request) (default {d.max_n})")
    p.add_argument("--max-prompt-chars", type=positive_int, default=d.max_prompt_chars, metavar="N",
                   help=f"longest prompt / text to score / text to translate, in characters (default {d.max_prompt_chars:,})")
    p.add_argument("--max-texts", type=positive_int, default=d.max_texts, metavar="N",
                   help=f"most texts in one translate request (default {d.max_texts})")
    p.add_argument("--max-body-bytes", type=positive_int, default=d.max_body_bytes, metavar="N",
                   help=f"largest request body (default {d.max_body_bytes:,}); beyond, 413")
    p.add_argument("--request-timeout", type=positive_float, default=d.request_timeout_s, metavar="S",
                   help=f"seconds one request may take; beyond, it is cut (504) (default {d.request_timeout_s:g})")
    p.add_argument("--shutdown-timeout", type=positive_float, default=10.0, metavar="S",
                   help="on SIGTERM, seconds open streams may run on before they are cut (default 10)")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys

    from .checks import CLIError

    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise CLIError("rnnkit serve needs starlette and uvicorn: pip install 'rnnkit[serve]'") from None
    import torch

    from ..lm.fastgen import idle_cores, set_blas_threads
    from ..serve.app import create_app
    from ..serve.limits import Limits
    from ..serve.registry import load_run
    from ..serve.server import is_loopback, serve

    if args.name is not None and len(args.name) != len(args.runs):
        raise CLIError(f"--name was given {len(args.name)} time(s) for {len(args.runs)} run(s): give one per RUN")
    if not 0 <= args.port <= 65535:
        raise CLIError(f"--port must be 0..65535, got {args.port}")
    threads = args.threads or idle_cores()
    torch.set_num_threads(threads)
    set_blas_threads(threads)
    limits = Limits(args.max_body_bytes, args.max_tokens, args.max_n, args.max_prompt_chars, args.max_texts,
                    args.max_streams, args.request_timeout)
    names = args.name or [None] * len(args.runs)
    models = [load_run(path, name, args.checkpoint, args.max_streams) for path, name in zip(args.runs, names)]
    app = create_app(models, limits, args.api_key)
    if not is_loopback(args.host):
        print(f"rnnkit: warning: listening on {args.host}: other machines can reach this server"
              f"{'' if args.api_key else ' and use it without a key (--api-key KEY)'}", file=sys.stderr)
    for m in models:
        how = type(m.generator).__name__ if m.generator is not None else "translate"
        print(f"rnnkit serve: {m.id}: {m.kind} run {m.path} ({m.parameters:,} parameters; {how})", file=sys.stderr)
    return serve(app, args.host, args.port, args.shutdown_timeout)
