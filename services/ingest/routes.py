"""The ingest HTTP handlers: one event, a batch, health, readiness and metrics."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import orjson
from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from schemas.errors import ContractError
from schemas.parsing import event_to_dict, parse_event
from services.common.access import FORBIDDEN, covers, forbidden, out_of_scope
from services.common.auth import Principal
from services.common.http import authorize
from services.common.problems import ProblemError, problem_response
from services.common.wire import Submission, encode_submission
from services.ingest import docs
from services.ingest.intake import (
    CLOSED,
    CONTRACT,
    UNAVAILABLE,
    WRITERS,
    ItemOutcome,
    PendingSubmission,
    check_content_type,
    closed_problem,
    encode_records,
    load_json,
    read_batch,
    refusal,
    server_now,
    stamp,
    validate_and_group,
)
from services.ingest.metrics import IngestMetrics
from services.ingest.producer import Acked, BrokerUnavailable, EventProducer
from services.ingest.settings import IngestSettings
from services.ingest.statuses import OperationStatuses

JSON = "application/json"


router = APIRouter()


class Ingest:
    """What the handlers share, hung on ``app.state.ingest`` by the app factory."""

    def __init__(
        self,
        settings: IngestSettings,
        producer: EventProducer,
        metrics: IngestMetrics,
        statuses: OperationStatuses,
    ) -> None:
        self.settings = settings
        self.producer = producer
        self.metrics = metrics
        self.statuses = statuses
        self.max_future = timedelta(seconds=settings.max_future_s)
        self.verifier = settings.verifier()

    async def authenticate(self, request: Request) -> Principal:
        """The caller, who must hold a writing role: field (events), admin (corrections only:
        `services.ingest.intake.refusal`)."""
        return await authorize(request, self.verifier, WRITERS)

    async def produce(self, key: bytes, value: bytes) -> Acked:
        """Write one record and time the acknowledgement; BrokerUnavailable passes through."""
        started = time.perf_counter()
        acked = await self.producer.send(key, value)
        self.metrics.produce_seconds.observe(time.perf_counter() - started)
        return acked

    def unavailable(self, detail: str, **extra: Any) -> Response:
        """503 with Retry-After: the broker did not take the events."""
        return problem_response(
            503,
            "Event log unavailable",
            detail=f"{detail}; retry with the same event_id",
            kind="log-unavailable",
            headers={"Retry-After": str(self.settings.retry_after_s)},
            **extra,
        )

    async def write_group(self, group: PendingSubmission, recorded_at: str, who: Principal) -> None:
        """Produce one operation's accepted events and fill in each item's position."""
        records = encode_records(
            group.operation_id, group.events, recorded_at, who.subject,
            self.settings.max_record_bytes, who.role,
        )  # fmt: skip
        key = group.operation_id.encode()
        bounds = [start for start, _ in records[1:]] + [len(group.items)]
        for (start, value), end in zip(records, bounds, strict=True):
            items = group.items[start:end]
            try:
                acked = await self.produce(key, value)
            except BrokerUnavailable as exc:
                for item in group.items[start:]:
                    item.reason = UNAVAILABLE
                    item.errors = [{"path": "", "message": f"not written: {exc}"}]
                return
            for position, item in enumerate(items):
                item.partition, item.offset, item.record_index = (
                    acked.partition,
                    acked.offset,
                    position,
                )


def _ingest(request: Request) -> Ingest:
    ingest: Ingest = request.app.state.ingest
    return ingest


def _json(status: int, body: Any) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON)


@router.post(
    "/v1/events",
    status_code=202,
    summary="Record one field event",
    response_model=None,
    responses={
        202: docs.json_body("Accepted", "In Kafka: partition and offset of the record."),
        **docs.COMMON_ERRORS,
    },
    openapi_extra={"requestBody": docs.event_request_body(), "security": [{"bearer": []}]},
)
async def post_event(request: Request) -> Response:
    """Validate one event, stamp it, and answer 202 once the broker acknowledged it."""
    ingest = _ingest(request)
    principal = await ingest.authenticate(request)
    check_content_type(request.headers.get("content-type"))
    body = await request.body()
    now = server_now()
    try:
        event = parse_event(body, now=now, max_future=ingest.max_future)
    except ContractError as exc:
        load_json(body)  # not JSON at all is a 400, not a contract error
        ingest.metrics.rejected.labels(CONTRACT).inc()
        raise ProblemError(422, "Invalid event", errors=exc.errors, kind="invalid-event") from None
    if not covers(principal, event.operation_id):
        ingest.metrics.rejected.labels(FORBIDDEN).inc()
        raise out_of_scope(event.operation_id)
    refused = refusal(principal, event, ingest.statuses.closed)
    if refused is not None:
        reason, error = refused
        ingest.metrics.rejected.labels(reason).inc()
        record = ingest.statuses.closed(event.operation_id)
        if reason == CLOSED and record is not None:
            raise closed_problem(record)
        raise forbidden(error["message"], [error])
    submission = Submission(
        event.operation_id, stamp(now), principal.subject, [event_to_dict(event)], principal.role
    )
    try:
        acked = await ingest.produce(event.operation_id.encode(), encode_submission(submission))
    except BrokerUnavailable as exc:
        ingest.metrics.rejected.labels(UNAVAILABLE).inc()
        return ingest.unavailable(str(exc))
    ingest.metrics.accepted.inc()
    return _json(
        202, {"event_id": str(event.event_id), "partition": acked.partition, "offset": acked.offset}
    )


@router.post(
    "/v1/events/batch",
    status_code=202,
    summary="Record a batch of field events",
    response_model=None,
    responses={
        202: docs.json_body("BatchResult", "Every item accepted."),
        207: docs.json_body("BatchResult", "Some items accepted; see each item's status."),
        **docs.COMMON_ERRORS,
        403: docs.problem("Wrong role, or every item's operation is outside the token."),
        422: docs.problem("Bad batch shape, or no item accepted: `results` has each item."),
    },
    openapi_extra={"requestBody": docs.batch_request_body(1000), "security": [{"bearer": []}]},
)
async def post_batch(request: Request) -> Response:
    """Validate each item on its own; write each operation's accepted events as one record."""
    ingest = _ingest(request)
    principal = await ingest.authenticate(request)
    check_content_type(request.headers.get("content-type"))
    items = read_batch(load_json(await request.body()), ingest.settings.max_batch_events)
    now = server_now()
    outcomes, groups = validate_and_group(
        items, principal, now, ingest.max_future, ingest.statuses.closed
    )
    recorded_at = stamp(now)
    if groups:
        await asyncio.gather(*(ingest.write_group(g, recorded_at, principal) for g in groups))
    return _batch_answer(ingest, outcomes)


def _batch_answer(ingest: Ingest, outcomes: list[ItemOutcome]) -> Response:
    counts = {"accepted": 0, CONTRACT: 0, FORBIDDEN: 0, CLOSED: 0, UNAVAILABLE: 0}
    results = []
    for item in outcomes:
        counts[item.reason or "accepted"] += 1
        results.append(_item(item))
    accepted, unavailable = counts["accepted"], counts[UNAVAILABLE]
    rejected = counts[CONTRACT] + counts[FORBIDDEN] + counts[CLOSED]
    metrics = ingest.metrics
    if accepted:
        metrics.accepted.inc(accepted)
    for reason in (CONTRACT, FORBIDDEN, CLOSED, UNAVAILABLE):
        if counts[reason]:
            metrics.rejected.labels(reason).inc(counts[reason])
    summary: dict[str, Any] = {
        "accepted": accepted,
        "rejected": rejected,
        "unavailable": unavailable,
    }
    if accepted:
        return _json(202 if accepted == len(outcomes) else 207, {**summary, "results": results})
    if unavailable:
        return ingest.unavailable(
            "no event of the batch was acknowledged", **summary, results=results
        )
    errors = [
        {
            "path": f"events.{item.index}" + (f".{e['path']}" if e["path"] else ""),
            "message": e["message"],
        }
        for item in outcomes
        for e in item.errors
    ]
    if counts[FORBIDDEN] == len(outcomes):
        refused = "the token may record none of these events"
        return forbidden(refused, errors, **summary, results=results).response()
    if counts[CLOSED] == len(outcomes):
        closed_ops = sorted({item.operation_id for item in outcomes if item.operation_id})
        return problem_response(
            409, "Operation closed", detail=f"closed: {', '.join(closed_ops)}", errors=errors,
            kind=CLOSED, operation_ids=closed_ops, **summary, results=results,
        )  # fmt: skip
    return problem_response(
        422, "No event accepted", errors=errors, kind="invalid-batch", **summary, results=results
    )


def _item(item: ItemOutcome) -> dict[str, Any]:
    if item.reason is None:
        return {
            "index": item.index,
            "event_id": item.event_id,
            "status": "accepted",
            "partition": item.partition,
            "offset": item.offset,
            "record_index": item.record_index,
        }
    return {
        "index": item.index,
        "event_id": item.event_id,
        "status": "unavailable" if item.reason == UNAVAILABLE else "rejected",
        "reason": item.reason,
        "errors": item.errors,
    }


@router.get(
    "/v1/principal",
    summary="Who the bearer token names",
    responses={
        200: docs.json_body("Principal", "Subject, role and the operations the token covers."),
        401: docs.COMMON_ERRORS[401],
        403: docs.COMMON_ERRORS[403],
    },
    openapi_extra={"security": [{"bearer": []}]},
)
async def principal(request: Request) -> Response:
    """The field principal of the token, so a field app knows whom it records for and where.

    The capture app signs in with it; it checks the token exactly as the write endpoints do.
    """
    who = await _ingest(request).authenticate(request)
    return _json(
        200, {"subject": who.subject, "role": who.role, "operations": sorted(who.operations)}
    )


@router.get("/healthz", summary="Liveness", responses={200: docs.json_body("Health", "Alive.")})
async def healthz() -> Response:
    """The process is alive and serving HTTP."""
    return _json(200, {"status": "ok"})


@router.get(
    "/readyz",
    summary="Readiness: the broker answers",
    responses={200: docs.json_body("Health", "Ready."), 503: docs.COMMON_ERRORS[503]},
)
async def readyz(request: Request) -> Response:
    """Ready when the broker answers a metadata request now (bounded, reused for ~1 s) and
    writes are not being refused (none failed in the last two produce bounds without a success
    since). ``operations`` says whether closures are known (an unreadable operations topic
    does not make ingest unready: it fails open, docs/operations.md)."""
    ingest = _ingest(request)
    operations = ingest.statuses.health()
    if await ingest.producer.ready():
        return _json(200, {"status": "ready", "operations": operations})
    return ingest.unavailable(
        "the Kafka broker is not reachable, the log topic is missing, or writes are refused",
        operations=operations,
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    responses={200: {"description": "Prometheus text format.", "content": {"text/plain": {}}}},
)
async def metrics(request: Request) -> Response:
    """Requests by route and status, accepted and rejected events, produce latency."""
    ingest = _ingest(request)
    if ingest.settings.metrics_port is not None:
        raise ProblemError(404, "Not Found", detail="metrics are served on the metrics port")
    return Response(generate_latest(ingest.metrics.registry), media_type=CONTENT_TYPE_LATEST)
