"""/healthz, /readyz and /metrics on their own small aiohttp server (faust's web is off).

Ready means: the consumer is running, the last batch did not fail (no retry in progress), no
partition is held (`services.aggregator.holds`: a transient failure, retried while the others
apply), if there is lag, a batch committed within ``stall_after_s``, and the Kafka broker
answers a metadata request now (the consumer alone does not say when its broker is gone: it
retries silently). A stalled, retrying or held partition, or a lost broker, therefore shows up
as "not ready" while the process itself stays alive (/healthz); the readiness body names each
held partition with its retries.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.aggregator import metrics


@dataclass
class HealthState:
    """What the agent reports about itself; read by /readyz."""

    stall_after_s: float
    started: bool = False
    fatal: str = ""  # set when the agent hit a bug and the worker is stopping
    retrying_since: float | None = None
    last_error: str = ""
    last_progress: float = field(default_factory=time.monotonic)
    lag: dict[int, int] = field(default_factory=dict)
    dlq_depth: int | None = None  # open dead letters; None until first read
    held: dict[int, dict[str, Any]] = field(default_factory=dict)  # partition -> hold detail

    def set_dlq_depth(self, depth: int) -> None:
        self.dlq_depth = depth
        metrics.DLQ_DEPTH.set(depth)

    def failed(self, error: BaseException) -> None:
        if self.retrying_since is None:
            self.retrying_since = time.monotonic()
        self.last_error = f"{type(error).__name__}: {error}"[:500]
        metrics.RETRYING.set(1)

    def committed(self) -> None:
        self.retrying_since = None
        self.last_error = ""
        self.last_progress = time.monotonic()
        metrics.RETRYING.set(1 if self.held else 0)

    def set_held(self, held: dict[int, dict[str, Any]]) -> None:
        """The partitions held now (`holds.Holds.detail`), for readiness and /metrics."""
        for partition in set(self.held) - set(held):
            metrics.PARTITION_HELD.labels(partition=str(partition)).set(0)
            metrics.PARTITION_HOLD_RETRIES.labels(partition=str(partition)).set(0)
        for partition, detail in held.items():
            metrics.PARTITION_HELD.labels(partition=str(partition)).set(1)
            metrics.PARTITION_HOLD_RETRIES.labels(partition=str(partition)).set(detail["retries"])
        self.held = dict(held)
        metrics.RETRYING.set(1 if held or self.retrying_since is not None else 0)

    def set_lag(self, partition: int, lag: int) -> None:
        if lag > 0 and self.lag.get(partition, 0) <= 0:
            # Lag that just appeared is not a stall: give the agent stall_after_s from now.
            self.last_progress = max(self.last_progress, time.monotonic())
        self.lag[partition] = lag
        metrics.LAG.labels(partition=str(partition)).set(lag)

    def keep_lag(self, partitions: set[int]) -> None:
        """Forget the lag of partitions this instance no longer owns (a rebalance moved them):
        their last value would otherwise count as a stall here forever."""
        for partition in set(self.lag) - partitions:
            del self.lag[partition]
            metrics.LAG.labels(partition=str(partition)).set(0)

    def held_view(self) -> dict[str, dict[str, Any]]:
        """Each held partition: retries, seconds held, records waiting, the last error."""
        now = time.monotonic()
        return {
            str(p): {
                "retries": d["retries"],
                "held_s": round(now - d["since"], 1),
                "records": d["records"],
                "error": d["error"],
            }
            for p, d in sorted(self.held.items())
        }

    def problems(self) -> list[str]:
        """Why the aggregator is not ready; empty when it is."""
        out = []
        now = time.monotonic()
        if self.fatal:
            out.append(self.fatal)
        if not self.started:
            out.append("consumer not started")
        if self.retrying_since is not None:
            out.append(
                f"batch failing for {now - self.retrying_since:.1f} s, retrying: {self.last_error}"
            )
        for partition, d in self.held_view().items():
            out.append(
                f"partition {partition} held, retrying for {d['held_s']:.1f} s ({d['retries']}"
                f" retries; the other partitions keep applying): {d['error']}"
            )
        lag = sum(v for v in self.lag.values() if v > 0)
        if lag and now - self.last_progress > self.stall_after_s:
            out.append(f"no progress for {now - self.last_progress:.0f} s with lag {lag}")
        return out


class BrokerCheck(Protocol):
    """What readiness needs of the broker (services.common.broker_probe.BrokerProbe)."""

    async def problem(self) -> str | None: ...


async def readiness(state: HealthState, broker: BrokerCheck | None) -> list[str]:
    """Why the aggregator is not ready (its own state, then the broker); empty when it is."""
    problems = state.problems()
    reason = None if broker is None else await broker.problem()
    if reason:
        problems.append(reason)
    return problems


def health_app(state: HealthState, broker: BrokerCheck | None = None) -> web.Application:
    """The aiohttp application serving the three endpoints."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        problems = await readiness(state, broker)
        body: dict[str, Any] = {"status": "ready" if not problems else "not ready",
                "problems": problems,
                "lag": {str(p): v for p, v in sorted(state.lag.items())},
                "dlq_depth": state.dlq_depth}  # fmt: skip
        if state.held:  # only while a partition is held
            body["held"] = state.held_view()
        return web.json_response(body, status=200 if not problems else 503)

    async def metrics_view(_: web.Request) -> web.Response:
        resp = web.Response(body=generate_latest())
        resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return resp

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    return app


async def start_health_server(
    state: HealthState, host: str, port: int, broker: BrokerCheck | None = None
) -> web.AppRunner:
    """Start serving; the caller keeps the runner and calls ``cleanup()`` to stop."""
    runner = web.AppRunner(health_app(state, broker), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
