"""`opsledger serve query`: the read side under uvicorn (uvloop, httptools)."""

from __future__ import annotations

from services.common.gc_tuning import tune_gc
from services.common.logging import configure
from services.common.serve import run_asgi
from services.query.settings import QuerySettings


def run(host: str | None = None, port: int | None = None) -> None:
    """Serve the query app on ``host:port`` (defaults from QuerySettings) until interrupted."""
    settings = QuerySettings()
    configure(settings.log_level, settings.log_json)
    # Without it, a full collection walked the whole start-up heap every few thousand reads:
    # 124-135 ms with every request of the process waiting (docs/performance.md, third round).
    tune_gc("services.query.app")  # before uvicorn (and its workers' fork) imports the app
    run_asgi(
        "services.query.app:create_app",
        host=host or settings.host,
        port=port or settings.port,
        workers=settings.workers,
    )
