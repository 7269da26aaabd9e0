"""Send validated rows to ingest in batches, as a field principal, retrying what was not taken.

Each batch goes to ``POST /v1/events/batch``; an item ingest could not write (broker away:
``unavailable``) or a whole batch answered 503 or lost on the way is sent again with the same
event_ids, which the ledger counts once. Items ingest refuses are reported with their row.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from services.importer.rows import ImportFile, Row

BATCH_EVENTS = 500
ATTEMPTS = 8
MAX_BACKOFF_S = 5.0


class ImportSendError(Exception):
    """Ingest refused the caller, or could not be reached after every attempt."""


@dataclass
class SendResult:
    accepted: int = 0
    refused: list[tuple[ImportFile, Row]] = field(default_factory=list)


def check_principal(client: httpx.Client) -> dict[str, Any]:
    """Who the token names, asked of ingest; fails unless it may write events."""
    try:
        response = client.get("/v1/principal")
    except httpx.TransportError as exc:
        raise ImportSendError(f"ingest at {client.base_url} cannot be reached: {exc}") from None
    if response.status_code != 200:
        raise _refused_token(response)
    who: dict[str, Any] = response.json()
    return who


def send_rows(
    client: httpx.Client,
    work: list[tuple[ImportFile, Row]],
    advance: Callable[[int], None],
    sleep: Callable[[float], None] = time.sleep,
) -> SendResult:
    """Send every row in batches; ``advance(n)`` after n rows got their final answer."""
    result = SendResult()
    for start in range(0, len(work), BATCH_EVENTS):
        pending = work[start : start + BATCH_EVENTS]
        for attempt in range(ATTEMPTS):
            pending = _send_batch(client, pending, result, advance)
            if not pending:
                break
            sleep(min(MAX_BACKOFF_S, 0.25 * 2**attempt))
        else:
            raise ImportSendError(
                f"ingest did not take {len(pending)} events after {ATTEMPTS} attempts;"
                " run the same import again: what was taken is not counted twice"
            )
    return result


def _send_batch(
    client: httpx.Client,
    batch: list[tuple[ImportFile, Row]],
    result: SendResult,
    advance: Callable[[int], None],
) -> list[tuple[ImportFile, Row]]:
    """One request; the items to send again."""
    body = {"events": [row.event for _, row in batch]}
    try:
        response = client.post("/v1/events/batch", json=body)
    except httpx.TransportError:
        return batch
    if response.status_code in (401, 403) and "results" not in _json(response):
        raise _refused_token(response)
    results = _json(response).get("results")
    if not isinstance(results, list):
        if response.status_code >= 500:
            return batch
        raise ImportSendError(f"ingest answered {response.status_code}: {_detail(response)}")
    again = []
    for item in results:
        imported, row = batch[item["index"]]
        status = item["status"]
        if status == "accepted":
            result.accepted += 1
            advance(1)
        elif status == "unavailable":
            again.append((imported, row))
        else:
            errors = item.get("errors") or [{"path": "", "message": item.get("reason", "refused")}]
            row.errors.extend(
                {"field": imported.field_name(e.get("path", "")), "message": e["message"]}
                for e in errors
            )
            result.refused.append((imported, row))
            advance(1)
    return again


def _refused_token(response: httpx.Response) -> ImportSendError:
    return ImportSendError(
        f"ingest refused the token ({response.status_code}): {_detail(response)}"
    )


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        doc = response.json()
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _detail(response: httpx.Response) -> str:
    doc = _json(response)
    return str(doc.get("detail") or doc.get("title") or response.text[:200])
