"""`opsledger serve query`: the read side under uvicorn (uvloop, httptools)."""

from __future__ import annotations

from services.common.logging import configure
from services.common.serve import run_asgi
from services.query.settings import QuerySettings


def run(host: str | None = None, port: int | None = None) -> None:
    """Serve the query app on ``host:port`` (defaults from QuerySettings) until interrupted."""
    settings = QuerySettings()
    configure(settings.log_level, settings.log_json)
    run_asgi(
        "services.query.app:create_app",
        host=host or settings.host,
        port=port or settings.port,
        workers=settings.workers,
    )
