"""`opsledger serve query`: the read side in the foreground."""

from __future__ import annotations

import uvicorn

from services.common.logging import configure
from services.query.app import create_app
from services.query.settings import QuerySettings


def run(host: str | None = None, port: int | None = None) -> None:
    """Serve the query app on ``host:port`` (defaults from QuerySettings) until interrupted."""
    settings = QuerySettings()
    configure(settings.log_level, settings.log_json)
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.port,
        log_config=None,
        access_log=False,
        lifespan="on",
    )
