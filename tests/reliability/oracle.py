"""The oracle: simulated field devices that send events to ingest and remember every answer.

Each device posts singles and batches for its operation, retries with the *same* event ids on
any non-2xx that is not a refusal (503, 5xx, timeouts, refused connections), and files every
event under exactly one fate: acknowledged (2xx for that event), refused (a 4xx for that event),
or unresolved (still retrying when the drain bound ran out). The checker compares the ledger with
those fates.
"""

from __future__ import annotations

import asyncio
import copy
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from schemas.examples import example_events

JsonEvent = dict[str, Any]

# Kinds a device records, with the payload variations that exercise every metric.
_PAYLOADS: list[tuple[str, Callable[[random.Random], dict[str, Any]]]] = [
    ("warrant_executed", lambda r: {"warrant_ref": f"W-{r.randrange(10**6)}"}),
    (
        "arrest_made",
        lambda r: {
            "person_ref": f"P-{r.randrange(16**6):06x}",
            "age_band": r.choice(["adult", "adult", "youth"]),
            "offences": ["PWITS class A"],
        },
    ),
    (
        "item_seized",
        lambda r: {
            "item": "drug_wrap",
            "substance": r.choice(["crack", "heroin", "cocaine"]),
            "quantity": r.randint(1, 60),
        },
    ),
    ("item_seized", lambda r: {"item": "mobile_phone", "quantity": r.randint(1, 4)}),
    ("item_seized", lambda r: {"item": "weapon", "quantity": 1}),
    (
        "item_seized",
        lambda r: {"item": "cash", "amount_pence": r.randint(1, 500_000), "currency": "GBP"},
    ),
    ("school_visited", lambda r: {"school_ref": f"URN-{r.randrange(10**6)}"}),
    (
        "vulnerable_person_engaged",
        lambda r: {"person_ref": f"V-{r.randrange(16**4):04x}", "safeguarding_referral": True},
    ),
]
_AREAS = ["Buckinghamshire", "Berkshire", "Oxfordshire"]


@dataclass
class Fates:
    """Every event the devices sent, and what became of it."""

    sent: dict[str, JsonEvent] = field(default_factory=dict)
    acked: dict[str, JsonEvent] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)  # event_id -> status of the refusal
    # Acknowledged resends of an acked event_id with *other* content (a buggy tablet): each must
    # be recorded as a conflict and never counted.
    conflicts: dict[str, JsonEvent] = field(default_factory=dict)
    answers: Counter[str] = field(default_factory=Counter)  # HTTP status (or error) per attempt
    timeline: list[tuple[float, str]] = field(default_factory=list)  # (monotonic, answer)
    positions: set[tuple[int, int]] = field(default_factory=set)  # (partition, offset) acked
    requests: int = 0
    attempts: int = 0  # requests including retries
    anomalies: list[str] = field(default_factory=list)  # answers the promise forbids

    @property
    def unresolved(self) -> set[str]:
        return set(self.sent) - set(self.acked) - set(self.refused)

    def ack(self, event: JsonEvent) -> None:
        eid = event["event_id"]
        if eid in self.refused:
            self.anomalies.append(f"{eid} acknowledged after being refused")
        self.acked[eid] = event

    def refuse(self, event: JsonEvent, status: int) -> None:
        eid = event["event_id"]
        if eid in self.acked:
            self.anomalies.append(f"{eid} refused ({status}) after being acknowledged")
        self.refused[eid] = status

    def answers_between(self, start: float, end: float) -> dict[str, int]:
        """Answers (HTTP status or error name) received between two monotonic instants."""
        return dict(sorted(Counter(a for t, a in self.timeline if start <= t <= end).items()))

    def summary(self) -> dict[str, Any]:
        return {
            "sent": len(self.sent),
            "acked": len(self.acked),
            "refused": len(self.refused),
            "conflicts": len(self.conflicts),
            "unresolved": len(self.unresolved),
            "requests": self.requests,
            "attempts": self.attempts,
            "answers": dict(sorted(self.answers.items())),
        }


@dataclass
class Device:
    """One field tablet: an operation, a token, a clock (maybe skewed) and a random stream."""

    device_id: str
    operation_id: str
    token: str
    clock_skew: timedelta = timedelta(0)
    batch_ratio: float = 0.4
    invalid_ratio: float = 0.05
    void_ratio: float = 0.05
    conflict_ratio: float = 0.02
    seed: int = 0
    rng: random.Random = field(init=False)
    own_acked: list[str] = field(default_factory=list)
    own_events: dict[str, JsonEvent] = field(default_factory=dict)
    altered: dict[str, JsonEvent] = field(default_factory=dict)  # conflicting copies by id

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)  # noqa: S311 - test data, not crypto

    def now(self) -> datetime:
        return datetime.now(UTC) + self.clock_skew

    def event(self) -> JsonEvent:
        """A valid event of a random kind, stamped by this device's clock."""
        kind, payload = self.rng.choice(_PAYLOADS)
        return self._envelope(kind, payload(self.rng))

    def void(self, target: str) -> JsonEvent:
        return self._envelope(
            "event_voided", {"voided_event_id": target, "reason": "entered twice"}
        )

    def conflicting(self, target: str) -> JsonEvent:
        """An acked event sent again under its id with other content (a different officer)."""
        event = copy.deepcopy(self.own_events[target])
        event["actor"]["officer_id"] = "PC-CONFLICT"
        self.altered[target] = event
        return event

    def invalid(self) -> JsonEvent:
        """An event the contract refuses: a server field, a bad quantity, or a far future time."""
        event = self.event()
        choice = self.rng.randrange(3)
        if choice == 0:
            event["recorded_at"] = self.now().isoformat()  # mass assignment of a server field
        elif choice == 1:
            event["type"], event["payload"] = "item_seized", {"item": "weapon", "quantity": 0}
        else:
            event["occurred_at"] = (self.now() + timedelta(days=1)).isoformat()
        return event

    def next_events(self) -> list[JsonEvent]:
        """What the device sends next: one event, or a batch of 2-20."""
        n = self.rng.randint(2, 20) if self.rng.random() < self.batch_ratio else 1
        out = []
        for _ in range(n):
            roll = self.rng.random()
            if roll < self.invalid_ratio:
                out.append(self.invalid())
            elif roll < self.invalid_ratio + self.void_ratio and self.own_acked:
                out.append(self.void(self.rng.choice(self.own_acked)))
            elif roll < self.invalid_ratio + self.void_ratio + self.conflict_ratio and (
                fresh := [t for t in self.own_acked if t not in self.altered]
            ):
                out.append(self.conflicting(self.rng.choice(fresh)))
            else:
                out.append(self.event())
        return out

    def _envelope(self, kind: str, payload: dict[str, Any]) -> JsonEvent:
        base = example_events(kind)[0]
        base.update(
            event_id=str(uuid.uuid4()),
            operation_id=self.operation_id,
            occurred_at=self.now().isoformat(timespec="milliseconds"),
            actor={"officer_id": f"PC{self.rng.randint(4000, 4099)}", "unit": "Stronghold"},
            location={"area": self.rng.choice(_AREAS)},
            source={"device_id": self.device_id, "app_version": "3.2.1"},
            payload=payload,
        )
        return base


class Oracle:
    """Drives devices against one ingest URL (or several, round robin) and records fates."""

    def __init__(
        self,
        urls: list[str],
        *,
        timeout_s: float = 8.0,
        backoff_max_s: float = 1.0,
    ) -> None:
        self.urls = urls
        self.fates = Fates()
        self.timeout_s = timeout_s
        self.backoff_max_s = backoff_max_s
        self._stop = asyncio.Event()
        self._drain_deadline = float("inf")

    def stop(self, drain_s: float = 60.0) -> None:
        """Devices send nothing new; what is in flight keeps retrying for up to ``drain_s``."""
        self._drain_deadline = time.monotonic() + drain_s
        self._stop.set()

    async def run(
        self, devices: list[Device], *, events: int | None = None, pause_s: float = 0.02
    ) -> Fates:
        """Run every device until stop() (or until each has sent ``events``), then drain."""
        limits = httpx.Limits(max_connections=len(devices) * 2, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=self.timeout_s, limits=limits) as client:
            await asyncio.gather(*(self._device(client, d, events, pause_s) for d in devices))
        return self.fates

    async def _device(
        self, client: httpx.AsyncClient, device: Device, events: int | None, pause_s: float
    ) -> None:
        sent = 0
        while not self._stop.is_set() and (events is None or sent < events):
            batch = device.next_events()
            sent += len(batch)
            for e in batch:
                if device.altered.get(e["event_id"]) is not e:
                    self.fates.sent[e["event_id"]] = e
            await self._submit(client, device, batch)
            await asyncio.sleep(pause_s)

    async def _submit(
        self, client: httpx.AsyncClient, device: Device, events: list[JsonEvent]
    ) -> None:
        """Send until every event is acknowledged or refused (or the drain bound passes)."""
        self.fates.requests += 1
        single = len(events) == 1
        pending = events
        delay = 0.1
        attempt = 0
        while pending and time.monotonic() < self._drain_deadline:
            url = self.urls[(attempt + hash(device.device_id)) % len(self.urls)]
            attempt += 1
            self.fates.attempts += 1
            headers = {"Authorization": f"Bearer {device.token}"}
            try:
                if single:
                    resp = await client.post(f"{url}/v1/events", json=pending[0], headers=headers)
                else:
                    resp = await client.post(
                        f"{url}/v1/events/batch", json={"events": pending}, headers=headers
                    )
            except httpx.TransportError as exc:
                self.fates.answers[type(exc).__name__] += 1
                self.fates.timeline.append((time.monotonic(), type(exc).__name__))
            else:
                self.fates.answers[str(resp.status_code)] += 1
                self.fates.timeline.append((time.monotonic(), str(resp.status_code)))
                pending = self._settle(device, pending, resp)
                if not pending:
                    return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff_max_s)

    def _settle(
        self, device: Device, events: list[JsonEvent], resp: httpx.Response
    ) -> list[JsonEvent]:
        """File each event by the answer; return those to send again."""
        status = resp.status_code
        if status >= 500 and status != 503:
            self.fates.anomalies.append(f"{status} from ingest: {resp.text[:300]}")
        if len(events) == 1 and not resp.request.url.path.endswith("/batch"):
            if status == 202:
                body = resp.json()
                if body.get("event_id") != events[0]["event_id"] or body.get("offset") is None:
                    self.fates.anomalies.append(f"202 without the event's position: {body}")
                else:
                    self.fates.positions.add((body["partition"], body["offset"]))
                self._acked(device, events[0])
                return []
            if 400 <= status < 500:
                self._refused(device, events[0], status)
                return []
            return events
        results = _results(resp)
        if status in (202, 207) or (results and status in (403, 422, 503)):
            retry = []
            by_index = {r["index"]: r for r in results}
            for i, event in enumerate(events):
                item = by_index.get(i)
                if item is None or item.get("event_id") != event["event_id"]:
                    self.fates.anomalies.append(f"batch answer {status} lacks item {i}")
                    retry.append(event)
                elif item["status"] == "accepted":
                    if item.get("offset") is None:
                        self.fates.anomalies.append(f"accepted item without offset: {item}")
                    else:
                        self.fates.positions.add((item["partition"], item["offset"]))
                    self._acked(device, event)
                elif item["status"] == "rejected":
                    self._refused(device, event, status)
                else:
                    retry.append(event)
            return retry
        if 400 <= status < 500:
            for event in events:
                self._refused(device, event, status)
            return []
        return events

    def _acked(self, device: Device, event: JsonEvent) -> None:
        eid = event["event_id"]
        if device.altered.get(eid) is event:
            self.fates.conflicts[eid] = event
            return
        self.fates.ack(event)
        if event["type"] != "event_voided":
            device.own_acked.append(eid)
            device.own_events[eid] = event

    def _refused(self, device: Device, event: JsonEvent, status: int) -> None:
        if device.altered.get(event["event_id"]) is event:
            self.fates.anomalies.append(f"a valid conflicting resend was refused ({status})")
            return
        self.fates.refuse(event, status)


def _results(resp: httpx.Response) -> list[dict[str, Any]]:
    try:
        body = resp.json()
    except ValueError:
        return []
    results = body.get("results") if isinstance(body, dict) else None
    return results if isinstance(results, list) else []


def devices_for(
    operations: dict[str, str], per_operation: int, *, seed: int = 1, **kwargs: Any
) -> list[Device]:
    """``per_operation`` devices for each (operation -> field token)."""
    out = []
    for n, (op, token) in enumerate(sorted(operations.items())):
        for k in range(per_operation):
            device_id = f"tablet-{n:02d}-{k:02d}"
            out.append(Device(device_id, op, token, seed=seed * 1000 + n * 100 + k, **kwargs))
    return out
