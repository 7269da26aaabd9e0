"""`opsledger serve query`: the read side under uvicorn (uvloop, httptools)."""

from __future__ import annotations

import uvicorn

from services.common.logging import configure
from services.query.settings import QuerySettings


def run(host: str | None = None, port: int | None = None) -> None:
    """Serve the query app on ``host:port`` (defaults from QuerySettings) until interrupted."""
    settings = QuerySettings()
    configure(settings.log_level, settings.log_json)
    uvicorn.run(
        # A factory by import path, so that `workers > 1` can build one app per process.
        "services.query.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=settings.workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        lifespan="on",
    )
