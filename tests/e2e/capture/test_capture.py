"""The capture app through the real ingest, broker, aggregator, database and query service.

An officer records events with no signal, reloads, gets signal back: exactly those events are
counted; ingest dies in the middle of a send: still exactly those; a refused event names its
field and, fixed, is accepted; a void from the device takes its event out of the totals.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

import pytest
from playwright.async_api import Browser, Route, expect

from .conftest import Pipeline
from .device import Device, field_token, settled_totals, totals_status

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.integration]

PHONE = {"width": 360, "height": 740}


async def record_twenty(device: Device) -> dict[str, int]:
    """Twenty events of four kinds; what they add to the tally."""
    for n in range(8):
        await device.warrant(f"W-2026-{1400 + n}")
    for substance, quantity in (("Crack", 12), ("Heroin", 7), ("Cocaine", 30), ("Crack", 1),
                                ("Heroin", 5)):  # fmt: skip
        await device.wraps(substance, quantity)
    for pounds in ("1250.50", "80", "0.99", "12,000.01"):
        await device.cash(pounds)
    for n in range(3):
        await device.school(f"URN-11{n:04d}")
    return {
        "warrants_executed": 8,
        "drug_wraps_seized": 12 + 7 + 30 + 1 + 5,
        "cash_seized_pence": 125_050 + 8_000 + 99 + 1_200_001,
        "schools_visited": 3,
    }


def new_operation() -> str:
    return f"capture-{secrets.token_hex(4)}"


async def test_twenty_events_recorded_offline_are_counted_once_signal_returns(
    pipeline: Pipeline, browser: Browser
) -> None:
    op = new_operation()
    context = await browser.new_context(viewport=PHONE, locale="en-GB")
    device = await Device.open(context, pipeline.ingest.url)
    await device.sign_in(field_token(op))
    await device.until_offline_ready()

    await context.set_offline(True)
    expected = await record_twenty(device)
    await device.expect_waiting(20)
    await device.page.reload()  # the tab closed and opened again, still no signal
    await expect(device.page.locator("body[data-ready=true]")).to_have_count(1)
    await device.expect_waiting(20)
    assert await device.page.evaluate("navigator.serviceWorker.controller !== null")
    assert await totals_status(pipeline.query.url, op) == 404  # nothing left the device

    await context.set_offline(False)
    await device.expect_waiting(0)
    assert await settled_totals(pipeline.query.url, op, expected) == expected
    await device.events_view()
    await expect(device.page.locator("li.event[data-state=accepted]")).to_have_count(20)
    await context.close()


async def test_ingest_killed_in_the_middle_of_a_send_still_counts_exactly_twenty(
    pipeline: Pipeline, browser: Browser
) -> None:
    op = new_operation()
    # Routing sees every request only without a service worker in between.
    context = await browser.new_context(viewport=PHONE, locale="en-GB", service_workers="block")
    device = await Device.open(context, pipeline.ingest.url)
    await device.sign_in(field_token(op))
    await context.set_offline(True)
    expected = await record_twenty(device)
    await device.expect_waiting(20)

    sends: list[int] = []

    async def kill_ingest_before_it_answers(route: Route) -> None:
        if sends:
            await route.continue_()
            return
        # Ingest takes the batch (the broker acknowledged all 20) and dies before the device
        # hears back: the device must send the same 20 again, and the ledger count them once.
        answer = await route.fetch()
        sends.append(answer.status)
        pipeline.ingest.sigkill()
        await route.abort("connectionreset")

    await device.page.route("**/v1/events/batch", kill_ingest_before_it_answers)
    await context.set_offline(False)
    await expect(device.page.locator("#net")).to_contain_text("trying again", timeout=30_000)
    assert sends == [202]
    await device.expect_waiting(20)  # not one marked accepted: the answer never came
    pipeline.ingest.start(wait=False)
    pipeline.ingest.wait_healthy(60, "/readyz")
    await device.expect_waiting(0, timeout_ms=75_000)  # the next try comes after its backoff
    assert await settled_totals(pipeline.query.url, op, expected) == expected
    await context.close()


async def test_refused_event_names_its_field_and_once_fixed_is_accepted_and_a_void_uncounts(
    pipeline: Pipeline, browser: Browser
) -> None:
    op = new_operation()
    context = await browser.new_context(viewport=PHONE, locale="en-GB")
    # Signed in by a link: the token in the fragment, taken out of the address at once.
    device = await Device.open(context, pipeline.ingest.url, f"#token={field_token(op)}")
    page = device.page
    assert page.url.endswith("/capture")
    await device.settings()

    # A mistyped date, a day ahead of the server clock: ingest refuses it and says which field.
    tomorrow = (datetime.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    await device.warrant("W-2026-0001", when=tomorrow)
    await device.events_view()
    refused = device.entry("W-2026-0001")
    await expect(refused).to_have_attribute("data-state", "refused", timeout=30_000)
    await expect(refused.locator(".problems")).to_contain_text("When: is ")
    await refused.get_by_role("button", name="Fix").click()
    when = page.get_by_label("When")
    await expect(when).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("[data-path=occurred_at] .field-error")).to_contain_text(
        "after the server clock"
    )
    await when.fill(datetime.now().strftime("%Y-%m-%dT%H:%M"))
    await page.get_by_role("button", name="Save and send again").click()
    await expect(device.entry("W-2026-0001")).to_have_attribute(
        "data-state", "accepted", timeout=30_000
    )
    await page.get_by_role("button", name="Record").click()
    await device.warrant("W-2026-0002")
    await device.school("URN-120001")
    await device.expect_waiting(0)
    expected: dict[str, Any] = {"warrants_executed": 2, "schools_visited": 1}
    assert await settled_totals(pipeline.query.url, op, expected) == expected

    # Voiding the second warrant from the device takes it out of the totals.
    await device.events_view()
    second = device.entry("W-2026-0002")
    await second.get_by_role("button", name="Void Warrant W-2026-0002").click()
    await second.get_by_label("Why does this event not count?").fill("entered on the wrong job")
    await second.get_by_role("button", name="Void event").click()
    await device.expect_waiting(0)
    await expect(device.entry("W-2026-0002")).to_contain_text("Voided")
    expected = {"warrants_executed": 1, "schools_visited": 1}
    assert await settled_totals(pipeline.query.url, op, expected) == expected

    # A mistake never sent is simply deleted: it never reaches the ledger.
    await context.set_offline(True)
    await page.get_by_role("button", name="Record").click()
    await device.warrant("W-2026-0003")
    await device.expect_waiting(1)
    await device.events_view()
    third = device.entry("W-2026-0003")
    await third.get_by_role("button", name="Delete Warrant W-2026-0003").click()
    await third.get_by_role("button", name="Yes, delete").click()
    await device.expect_waiting(0)
    await expect(device.entry("W-2026-0003")).to_have_count(0)
    await context.set_offline(False)
    await page.get_by_role("button", name="Record").click()
    await device.school("URN-120002")  # sent after the deletion, so it proves it was settled
    expected = {"warrants_executed": 1, "schools_visited": 2}
    assert await settled_totals(pipeline.query.url, op, expected) == expected
    await context.close()
