"""With a metrics port, /metrics is served there and nowhere on the public port."""

from __future__ import annotations

import socket

import httpx

from services.ingest.app import create_app
from services.ingest.settings import IngestSettings
from services.stack.devissuer.tokens import dev_verifier

from .conftest import FakeProducer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_metrics_leave_the_public_port_for_their_own() -> None:
    port = _free_port()
    app = create_app(IngestSettings(env="test", metrics_port=port), FakeProducer())
    app.state.ingest.verifier = dev_verifier()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as public:
            assert (await public.get("/metrics")).status_code == 404
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as private:
            scraped = await private.get("/metrics")
            assert scraped.status_code == 200
            assert "text/plain" in scraped.headers["content-type"]
            assert "ingest_events_accepted" in scraped.text
            assert (await private.get("/v1/events")).status_code == 404


async def test_without_a_metrics_port_metrics_stay_on_the_public_port() -> None:
    app = create_app(IngestSettings(env="test"), FakeProducer())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as public:
            assert (await public.get("/metrics")).status_code == 200
