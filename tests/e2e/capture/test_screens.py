"""The capture app at phone and tablet sizes: screenshots kept as artifacts, and axe-core's
check on every screen (no serious or critical violation)."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.base import AXE_SCRIPT
from playwright.async_api import Browser, Locator, Page, async_playwright, expect

from .conftest import ARTIFACTS, CHROMIUM_ARGS, Pipeline
from .device import Device, field_token

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.integration]

SIZES = {"phone": {"width": 360, "height": 740}, "tablet": {"width": 800, "height": 1280}}


async def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now (WCAG 2.x A/AA)."""
    await page.evaluate(AXE_SCRIPT)
    result: dict[str, Any] = await page.evaluate(
        """axe.run(document, {runOnly: {type: "tag",
             values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]},
           resultTypes: ["violations"]})"""
    )
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


@pytest.mark.parametrize("size", SIZES)
async def test_every_screen_at_phone_and_tablet_size(
    pipeline: Pipeline, browser: Browser, size: str
) -> None:
    op = f"capture-{secrets.token_hex(4)}"
    context = await browser.new_context(viewport=SIZES[size], locale="en-GB")
    device = await Device.open(context, pipeline.ingest.url)
    page = device.page
    found: dict[str, list[dict[str, Any]]] = {}

    async def screen(name: str) -> None:
        await page.screenshot(path=str(ARTIFACTS / f"capture-{size}-{name}.png"))
        found[name] = await axe_violations(page)
        # Nothing wider than the screen: no sideways scrolling on a 360-pixel phone.
        assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), (
            f"{name} scrolls sideways at {size} size"
        )

    await screen("sign-in")
    await page.get_by_label("Token", exact=True).fill(field_token(op, "capture-second-op"))
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Settings")).to_be_visible()
    await page.get_by_label("Unit", exact=True).fill("Stronghold Slough")
    await page.get_by_label("Area", exact=True).fill("Berkshire")
    await screen("settings")
    await page.get_by_role("button", name="Save settings").click()
    await screen("record")

    await device.kind("Items seized")
    await page.get_by_text("Cash", exact=True).click()
    await page.get_by_label("Amount in pounds and pence").fill("12,500.5")
    await expect(page.locator(".money-preview")).to_have_text("£12,500.50")
    await page.locator(".money-preview").scroll_into_view_if_needed()
    await screen("cash")
    await device.save()
    await device.kind("Items seized")
    await page.get_by_text("Drug wraps", exact=True).click()
    await page.get_by_role("group", name="Substance").get_by_text("Heroin", exact=True).click()
    await page.get_by_role("button", name="How many: 1 more").click()
    await screen("wraps")
    await device.save()
    await device.kind("Arrest")
    await page.get_by_role("button", name="Save", exact=True).click()  # empty: named fields
    await expect(page.locator("[data-path='payload.person_ref'] .field-error")).to_be_visible()
    await screen("arrest-missing-fields")
    await page.get_by_role("button", name="Cancel").click()

    tomorrow = (datetime.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    await device.warrant("W-2026-0777", when=tomorrow)
    await device.expect_waiting(0)
    await device.events_view()
    await expect(device.entry("W-2026-0777")).to_have_attribute("data-state", "refused")
    await expect(page.locator("li.event[data-state=accepted]")).to_have_count(2)
    await screen("events")
    cash = device.entry("Cash seized")
    await cash.get_by_role("button", name="Void Cash seized £12,500.50").click()
    await screen("void")

    await context.close()
    assert found == {name: [] for name in found}


async def test_an_event_recorded_with_the_keyboard_alone(
    pipeline: Pipeline, browser: Browser
) -> None:
    op = f"capture-{secrets.token_hex(4)}"
    context = await browser.new_context(viewport=SIZES["phone"], locale="en-GB")
    device = await Device.open(context, pipeline.ingest.url)
    page = device.page
    await device.sign_in(field_token(op))
    keyboard = page.keyboard

    async def tab_to(target: Locator, most: int = 40) -> None:
        """Tab forward until ``target`` has the focus (it must be reachable, in order)."""
        for _ in range(most):
            if await target.evaluate("node => node === document.activeElement"):
                return
            await keyboard.press("Tab")
        raise AssertionError(f"{target} never got the focus by Tab")

    await tab_to(page.get_by_role("button", name="Items seized"))
    await keyboard.press("Enter")
    await tab_to(page.get_by_role("radio", name="Drug wraps"))  # a picker is one Tab stop
    await keyboard.press("ArrowRight")  # arrows choose within it
    await expect(page.get_by_role("radio", name="Mobile phones")).to_be_checked()
    await tab_to(page.get_by_role("button", name="How many: 1 more"))
    await keyboard.press("Enter")
    await keyboard.press("Enter")
    await tab_to(page.get_by_role("button", name="Save", exact=True))
    await keyboard.press("Enter")
    await device.expect_waiting(0)
    await device.events_view()
    await expect(device.entry("Seized 3 mobile phones")).to_have_attribute("data-state", "accepted")
    await context.close()


async def test_chromium_finds_the_app_installable(
    pipeline: Pipeline, chromium: str, tmp_path: Path
) -> None:
    # A profile on disk: Chromium never offers to install from an incognito-like context.
    async with async_playwright() as p:
        context = await p.chromium.launch_persistent_context(
            tmp_path / "profile", executable_path=chromium, args=CHROMIUM_ARGS
        )
        page = await context.new_page()
        await page.goto(f"{pipeline.ingest.url}/capture")
        cdp = await context.new_cdp_session(page)
        manifest = await cdp.send("Page.getAppManifest")
        assert manifest["url"].endswith("/capture/manifest.webmanifest")
        assert manifest["errors"] == []
        errors: list[Any] = ["not asked yet"]
        for _ in range(50):
            errors = (await cdp.send("Page.getInstallabilityErrors"))["installabilityErrors"]
            if not errors:
                break
            await page.wait_for_timeout(200)
        await context.close()
    assert errors == []
