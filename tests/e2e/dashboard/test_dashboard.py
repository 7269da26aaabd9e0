"""The wall-screen dashboard in headless Chromium: loads, shows the tally, updates live."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import Browser, Request, expect

from services.common import operations as ops
from services.common.oidc import unverified_claims
from services.query.summary import pounds
from services.stack.devissuer.tokens import dev_token
from tests.integration.query.ledger import Ledger, fold_metrics, make_event

from .conftest import ARTIFACTS

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

T0 = datetime(2026, 11, 16, 6, 0, tzinfo=UTC)
AREAS = ["Buckinghamshire", "Berkshire", "Oxfordshire"]


def _week(op: str) -> list[dict[str, object]]:
    """A few days of a week of action across the three counties."""
    events: list[dict[str, object]] = []
    for day in range(5):
        for i, area in enumerate(AREAS):
            at = T0 + timedelta(days=day, hours=i)
            unit = f"Stronghold {area[:4]}"
            for _ in range((day + i) % 3 + 1):
                events.append(make_event(op, "warrant_executed", at, area=area, unit=unit))
            events.append(make_event(op, "arrest_made", at, area=area, unit=unit, age_band="adult"))
            events.append(
                make_event(
                    op,
                    "item_seized",
                    at,
                    area=area,
                    unit=unit,
                    item="drug_wrap",
                    substance=["crack", "heroin", "cocaine"][i],
                    quantity=20 + 7 * day,
                )
            )
            events.append(
                make_event(
                    op,
                    "item_seized",
                    at,
                    area=area,
                    unit=unit,
                    item="cash",
                    amount_pence=125_050 * (day + 1) + 7 * i,
                    currency="GBP",
                )
            )
        events.append(make_event(op, "school_visited", T0 + timedelta(days=day, hours=5)))
    events.append(make_event(op, "item_seized", T0, item="mobile_phone", quantity=4))
    events.append(make_event(op, "vulnerable_person_engaged", T0 + timedelta(hours=3)))
    return events


async def test_dashboard_shows_the_tally_and_updates_live(
    served_query: str, ledger: Ledger, browser: Browser, unique_id: str
) -> None:
    op = f"dash-{unique_id}"
    week = _week(op)
    await ledger.submit(week, T0 + timedelta(days=6))
    warrants = sum(1 for e in week if e["type"] == "warrant_executed")
    token = dev_token(role="supervisor", operations=[op], ttl_s=600)

    page = await browser.new_page(viewport={"width": 1600, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{served_query}/?operation={op}#token={token}")

    figure = page.locator('.tile[data-metric="warrants_executed"] .figure')
    await expect(figure).to_have_text(str(warrants), timeout=10_000)
    await expect(page.locator("#live")).to_have_text("live")
    assert "token=" not in page.url  # dropped from the address bar once stored
    await expect(page.locator("#operation-name")).to_have_text(op)
    cash = page.locator('.tile[data-metric="cash_seized_pence"] .figure')
    await expect(cash).to_have_text(pounds(fold_metrics(week)["cash_seized_pence"]))
    # Charts: one bar per area and one column per day.
    await expect(page.locator("#by-area rect.bar")).to_have_count(3)
    await expect(page.locator("#by-day rect.bar")).to_have_count(5)
    await expect(page.locator("#freshness")).to_contain_text("aggregator up to date")

    # A new event committed by the aggregator appears without a reload.
    await ledger.submit(
        [make_event(op, "warrant_executed", T0 + timedelta(days=4, hours=8), area="Berkshire")],
        T0 + timedelta(days=6, hours=1),
    )
    await expect(figure).to_have_text(str(warrants + 1), timeout=3_000)
    await page.wait_for_timeout(1600)  # let the change highlight fade before the picture
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "dashboard.png"))

    # Tapping a tile charts that metric.
    await page.locator('.tile[data-metric="drug_wraps_seized"]').click()
    await expect(page.locator("#by-area .metric-name, [data-role=metric-name]").first).to_have_text(
        "Drug wraps seized"
    )
    await page.screenshot(path=str(ARTIFACTS / "dashboard-drug-wraps.png"))
    assert errors == []
    await page.close()


async def test_dashboard_without_a_token_asks_for_one(served_query: str, browser: Browser) -> None:
    page = await browser.new_page()
    await page.goto(served_query + "/")
    await page.evaluate("localStorage.clear()")
    await page.reload()
    await expect(page.locator("#login")).to_be_visible()
    await page.fill("#token-input", "not-a-token")
    await page.click("#login button")
    await expect(page.locator("#login-error")).to_contain_text("401")
    await page.close()


async def test_dashboard_renews_its_token_and_resumes_the_stream(
    served_query: str, ledger: Ledger, browser: Browser, unique_id: str
) -> None:
    """The stream ends at the token's expiry; the page takes the renewed token, reconnects with
    Last-Event-ID, and shows what was committed meanwhile. No token is ever in a URL."""
    op = f"renew-{unique_id}"
    await ledger.submit([make_event(op, "warrant_executed", T0)], T0 + timedelta(hours=1))
    short = dev_token(role="supervisor", operations=[op], ttl_s=4)
    expires = unverified_claims(short)["exp"]
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    streams: list[Request] = []
    page.on("request", lambda r: streams.append(r) if "/stream" in r.url else None)
    await page.goto(f"{served_query}/?operation={op}#token={short}")
    figure = page.locator('.tile[data-metric="warrants_executed"] .figure')
    await expect(figure).to_have_text("1", timeout=10_000)
    # Meanwhile the person signs in again (another tab): a fresh token is stored.
    renewed = dev_token(role="supervisor", operations=[op], ttl_s=600)
    await page.evaluate("t => localStorage.setItem('opsledger.token', t)", renewed)
    await asyncio.sleep(max(0.0, expires - time.time()) + 0.5)
    await ledger.submit([make_event(op, "warrant_executed", T0)], T0 + timedelta(hours=2))
    await expect(figure).to_have_text("2", timeout=10_000)
    await expect(page.locator("#login")).to_be_hidden()
    assert len(streams) >= 2
    for request in streams:
        assert "token" not in request.url, request.url
    first, resumed = await streams[0].all_headers(), await streams[-1].all_headers()
    assert first["authorization"] == f"Bearer {short}"
    assert resumed["authorization"] == f"Bearer {renewed}"
    assert resumed["last-event-id"]  # resumed from the last totals it showed
    assert errors == []
    await page.close()


async def test_dashboard_asks_for_a_token_when_its_own_expires(
    served_query: str, ledger: Ledger, browser: Browser, unique_id: str
) -> None:
    op = f"expire-{unique_id}"
    await ledger.submit([make_event(op, "school_visited", T0)], T0 + timedelta(hours=1))
    short = dev_token(role="supervisor", operations=[op], ttl_s=3)
    page = await browser.new_page()
    await page.goto(f"{served_query}/?operation={op}#token={short}")
    figure = page.locator('.tile[data-metric="schools_visited"] .figure')
    await expect(figure).to_have_text("1", timeout=10_000)
    await expect(page.locator("#login")).to_be_visible(timeout=10_000)
    await expect(page.locator("#login-error")).to_contain_text("expired")
    await page.close()


async def test_dashboard_titles_a_created_operation_with_its_record(
    served_query: str, ledger: Ledger, browser: Browser, unique_id: str
) -> None:
    """A created operation shows its title, areas, planned window and status; the implicit one
    above shows its slug."""
    op = f"dash-rec-{unique_id}"
    record = ops.new_record(
        op, "Week of action against county lines", AREAS, T0, T0 + timedelta(days=6), by="adm"
    ).close("adm", T0 + timedelta(days=7))
    async with ledger.writer.pool.acquire() as conn:
        await ops.store(conn, record)
    await ledger.submit([make_event(op, "warrant_executed", T0)], T0 + timedelta(hours=1))
    token = dev_token(role="supervisor", operations=[op], ttl_s=600)
    page = await browser.new_page(viewport={"width": 1600, "height": 900})
    await page.goto(f"{served_query}/?operation={op}#token={token}")
    await expect(page.locator("#operation-name")).to_have_text(
        "Week of action against county lines", timeout=10_000
    )
    detail = page.locator("#operation-detail")
    await expect(detail).to_contain_text("Buckinghamshire, Berkshire, Oxfordshire")
    await expect(detail).to_contain_text("planned 16 Nov 2026 – 22 Nov 2026")
    await expect(detail).to_contain_text("closed 23 Nov 2026")
    assert await page.title() == "Week of action against county lines · opsledger"
