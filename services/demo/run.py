"""Play the reference week of action through the real HTTP ingest, then read the tally back.

Each run uses a fresh operation id (``week-of-action-<seed>-<random>``), so a rerun never mixes
with an earlier one; the events themselves are the same for the same seed.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from services.demo.data import REFERENCE, WeekOfAction, week_of_action
from services.query.summary import details_from_groups, format_summary

Say = Callable[[str], None]
TokenFor = Callable[[str, list[str]], str]  # (role, operations) -> a bearer token


class DemoError(Exception):
    """The pipeline refused events or did not reach the reference tally in time."""


@dataclass(frozen=True)
class Outcome:
    """What the demo ends with: the operation and its totals as the query service answers."""

    week: WeekOfAction
    metrics: dict[str, int]
    groups: list[dict[str, Any]]
    seconds: float

    @property
    def exact(self) -> bool:
        return all(self.metrics.get(k, 0) == v for k, v in REFERENCE.items())

    def summary(self) -> str:
        return format_summary(self.metrics, details_from_groups(self.groups))


def new_operation_id(seed: int) -> str:
    """A fresh operation id for one run."""
    return f"week-of-action-{seed}-{secrets.token_hex(3)}"


async def _post(client: httpx.AsyncClient, events: list[dict[str, Any]], batch: bool) -> None:
    path, body = ("/v1/events/batch", {"events": events}) if batch else ("/v1/events", events[0])
    for attempt in range(20):
        response = await client.post(path, json=body)
        if response.status_code == 202:
            return
        if response.status_code != 503:
            raise DemoError(f"ingest answered {response.status_code} to {path}: {response.text}")
        await asyncio.sleep(min(0.2 * 2**attempt, 2.0))  # broker briefly away: retry, same ids
    raise DemoError(f"ingest kept answering 503 to {path}")


async def send_week(
    week: WeekOfAction, ingest_url: str, tokens: TokenFor, progress: Progress
) -> None:
    """POST every request of the week in order, advancing the progress bar per event."""
    token = tokens("field", [week.operation_id])
    task = progress.add_task("sending field events", total=week.event_count)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=ingest_url, headers=headers, timeout=30) as client:
        for send in week.sends:
            await _post(client, send.events, send.batch)
            progress.advance(task, len(send.events))


async def wait_for_tally(
    week: WeekOfAction, query_url: str, tokens: TokenFor, timeout_s: float
) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """Poll the query service until the totals equal the reference (or the time is up)."""
    token = tokens("supervisor", [week.operation_id])
    headers = {"Authorization": f"Bearer {token}"}
    url = f"/v1/operations/{week.operation_id}/totals"
    deadline = time.monotonic() + timeout_s
    metrics: dict[str, int] = {}
    groups: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=query_url, headers=headers, timeout=10) as client:
        while True:
            response = await client.get(url, params={"group_by": "item"})
            if response.status_code == 200:
                doc = response.json()
                metrics, groups = doc["metrics"], doc.get("groups", [])
                if all(metrics.get(k, 0) == v for k, v in REFERENCE.items()):
                    break
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.25)
    return metrics, groups


async def play(
    seed: int,
    ingest_url: str,
    query_url: str,
    tokens: TokenFor,
    progress: Progress,
    timeout_s: float = 60.0,
) -> Outcome:
    """Send the week for a fresh operation and wait for its tally (``tokens(role, ops)``)."""
    started = time.monotonic()
    week = week_of_action(seed, new_operation_id(seed))
    await send_week(week, ingest_url, tokens, progress)
    task = progress.add_task("waiting for the ledger", total=None)
    metrics, groups = await wait_for_tally(week, query_url, tokens, timeout_s)
    progress.update(task, total=1, completed=1)
    return Outcome(week, metrics, groups, time.monotonic() - started)


def progress_bar() -> Progress:
    """The progress display used while sending."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
    )
