"""``rnnkit serve``: trained runs behind an HTTP API (Starlette + uvicorn).

`registry` opens runs of every kind, `scheduler` steps concurrent completions of one LSTM
model together as one batch, `schema` checks request bodies, `limits` and `metrics` hold the
server's bounds and counters, `app` maps the routes, `server` runs uvicorn with clean shutdown.

    >>> from rnnkit.serve.app import create_app                       # doctest: +SKIP
    >>> from rnnkit.serve.registry import load_run                      # doctest: +SKIP
    >>> app = create_app([load_run("runs/shakes")])                     # doctest: +SKIP
"""
