"""`opsledger serve aggregator`: the faust worker plus its health server, in the foreground."""

from __future__ import annotations

import asyncio
import gc
import logging

import faust

from services.aggregator.agent import Aggregator, HealthService
from services.aggregator.app import create_app
from services.aggregator.settings import AggregatorSettings, aggregator_settings
from services.aggregator.stopping import LedgerWorker
from services.common.logging import configure

log = logging.getLogger("opsledger.aggregator")
GC_GEN0_THRESHOLD = 50_000


async def _ensure_topics(settings: AggregatorSettings) -> None:
    # The aggregator may start before ingest: create the log if it is missing (bounded wait).
    from services.common.topics import TopicError, ensure_topics

    try:
        await ensure_topics(settings)
    except TopicError as exc:
        log.warning("topics not ensured (%s); the consumer will wait for them", exc)


def build(settings: AggregatorSettings) -> tuple[faust.App, Aggregator]:
    """The faust app with the aggregator wired onto it."""
    app = create_app(settings)
    return app, Aggregator(app, settings)


def run(host: str | None = None, port: int | None = None) -> None:
    """Run the aggregator until SIGINT/SIGTERM."""
    settings = aggregator_settings()
    update = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    if update:
        settings = settings.model_copy(update=update)
    configure(settings.log_level, settings.log_json)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(_ensure_topics(settings))
    app, aggregator = build(settings)
    # Each batch allocates many short-lived objects; with the default gen-0 threshold (700) the
    # collector ran every few events and cost a quarter of the decoding time. Freezing what
    # start-up loaded keeps the rarer full collections short.
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 20, 20)
    worker = LedgerWorker(
        app,
        HealthService(aggregator, loop=loop),
        loop=loop,
        loglevel=settings.log_level,
        redirect_stdouts=False,
        override_logging=False,
    )
    worker.execute_from_commandline()
