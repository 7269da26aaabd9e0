"""Running an HTTP service (ingest, query) under uvicorn, the same way for both."""

from __future__ import annotations

from typing import Any

import uvicorn


def run_asgi(factory: str, *, host: str, port: int, workers: int, **options: Any) -> None:
    """Serve the app built by ``factory`` ("module:function") until interrupted.

    A factory by import path, so that ``workers > 1`` builds one app per process; uvloop and
    httptools; no access log (a line per event would cost more than the event) and no uvicorn
    logging config (ours is set up by the caller).
    """
    uvicorn.run(
        factory,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        lifespan="on",
        **options,
    )
