"""The whole pipeline on the wall: an event POSTed to ingest appears on the dashboard."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import Browser, expect

from schemas.examples import fresh_event
from services.stack.devissuer.tokens import dev_token

from .conftest import ARTIFACTS

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.integration]


def _event(op: str, kind: str, **payload: object) -> dict[str, object]:
    event = fresh_event(op, kind)
    event["payload"] = {**event["payload"], **payload}
    return event


async def test_an_event_posted_to_ingest_appears_on_the_wall(
    served_pipeline: str, served_query: str, browser: Browser, unique_id: str
) -> None:
    op = f"wall-{unique_id}"
    field = {"Authorization": "Bearer " + dev_token(role="field", operations=[op])}
    supervisor = dev_token(role="supervisor", operations=[op], ttl_s=600)

    async with httpx.AsyncClient(base_url=served_pipeline, headers=field, timeout=10) as ingest:
        r = await ingest.post("/v1/events", json=_event(op, "school_visited"))
        assert r.status_code == 202, r.text
        page = await browser.new_page(viewport={"width": 1600, "height": 900})
        # The operation appears once the aggregator applied the first event.
        async with httpx.AsyncClient(base_url=served_query, timeout=10) as query:
            for _ in range(150):
                got = await query.get(
                    f"/v1/operations/{op}/totals",
                    headers={"Authorization": f"Bearer {supervisor}"},
                )
                if got.status_code == 200:
                    break
                await page.wait_for_timeout(200)
            assert got.status_code == 200, got.text
        await page.goto(f"{served_query}/?operation={op}#token={supervisor}")
        schools = page.locator('.tile[data-metric="schools_visited"] .figure')
        await expect(schools).to_have_text("1", timeout=10_000)

        r = await ingest.post("/v1/events", json=_event(op, "school_visited"))
        assert r.status_code == 202, r.text
        await expect(schools).to_have_text("2", timeout=10_000)
        await page.screenshot(path=str(ARTIFACTS / "dashboard-pipeline.png"))
        await page.close()
