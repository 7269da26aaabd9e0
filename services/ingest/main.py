"""`opsledger serve ingest`: the ingest app under uvicorn (uvloop, httptools)."""

from __future__ import annotations

from services.common.gc_tuning import tune_gc
from services.common.logging import configure
from services.common.serve import run_asgi
from services.ingest.settings import ingest_settings


def run(host: str | None = None, port: int | None = None) -> None:
    """Serve ingest in the foreground until interrupted."""
    settings = ingest_settings()
    configure(settings.log_level, json=settings.log_json)
    tune_gc("services.ingest.app")  # before uvicorn (and its workers' fork) imports the app
    run_asgi(
        "services.ingest.app:create_app",
        host=host or settings.host,
        port=port or settings.port,
        workers=settings.workers,
        proxy_headers=False,  # ingest never uses the client's address; skip the rewrite
        server_header=False,
    )
