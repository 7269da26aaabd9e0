"""An officer's phone in the capture app, driven the way a person would: labels and buttons."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from playwright.async_api import BrowserContext, Page, expect

from services.stack.devissuer.tokens import dev_token

TIMEOUT_MS = 30_000


class Device:
    """One browser context (a device) with the capture app open."""

    def __init__(self, context: BrowserContext, page: Page, base_url: str) -> None:
        self.context = context
        self.page = page
        self.base_url = base_url

    @classmethod
    async def open(cls, context: BrowserContext, base_url: str, fragment: str = "") -> Device:
        page = await context.new_page()
        await page.goto(f"{base_url}/capture{fragment}")
        await expect(page.locator("body[data-ready=true]")).to_have_count(1)
        return cls(context, page, base_url)

    async def sign_in(
        self, token: str, unit: str = "Stronghold Reading", area: str = "Berkshire"
    ) -> None:
        page = self.page
        await page.get_by_label("Token", exact=True).fill(token)
        await page.get_by_role("button", name="Sign in").click()
        await self.settings(unit, area)

    async def settings(self, unit: str = "Stronghold Reading", area: str = "Berkshire") -> None:
        page = self.page
        await page.get_by_label("Unit", exact=True).fill(unit)
        await page.get_by_label("Area", exact=True).fill(area)
        await page.get_by_role("button", name="Save settings").click()
        await expect(page.get_by_role("heading", name="Record")).to_be_visible()

    async def until_offline_ready(self) -> None:
        """The service worker controls the page, so the app opens with no network."""
        # One evaluate awaiting the page's own promise: wait_for_function's polling would need
        # eval, which the page's Content Security Policy rightly forbids.
        controlled = self.page.evaluate(
            """() => new Promise((resolve) => {
                 if (navigator.serviceWorker.controller) resolve(true);
                 navigator.serviceWorker.addEventListener("controllerchange", () => resolve(true));
               })"""
        )
        assert await asyncio.wait_for(controlled, TIMEOUT_MS / 1000)

    async def kind(self, label: str) -> None:
        await self.page.get_by_role("button", name=label, exact=True).click()

    async def save(self) -> None:
        await self.page.get_by_role("button", name="Save", exact=True).click()
        await expect(self.page.locator("#event-form")).to_be_hidden()

    async def warrant(self, ref: str, when: str | None = None) -> None:
        await self.kind("Warrant executed")
        await self.page.get_by_label("Warrant reference").fill(ref)
        if when is not None:
            await self.page.get_by_label("When").fill(when)
        await self.save()

    async def wraps(self, substance: str, quantity: int) -> None:
        await self.kind("Items seized")
        page = self.page
        await page.get_by_text("Drug wraps", exact=True).click()
        await page.get_by_role("group", name="Substance").get_by_text(substance, exact=True).click()
        await page.get_by_label("How many", exact=True).fill(str(quantity - 1))
        await page.get_by_role("button", name="How many: 1 more").click()  # the stepper
        await self.save()

    async def cash(self, pounds: str) -> None:
        await self.kind("Items seized")
        await self.page.get_by_text("Cash", exact=True).click()
        await self.page.get_by_label("Amount in pounds and pence").fill(pounds)
        await self.save()

    async def school(self, ref: str) -> None:
        await self.kind("School visited")
        await self.page.get_by_label("School reference (URN)").fill(ref)
        await self.save()

    async def expect_waiting(self, n: int, timeout_ms: float = TIMEOUT_MS) -> None:
        await expect(self.page.locator("#waiting-count")).to_have_text(str(n), timeout=timeout_ms)

    async def events_view(self) -> None:
        await self.page.get_by_role("button", name="My events").click()

    def entry(self, text: str) -> Any:
        return self.page.locator("li.event").filter(has_text=text)


def field_token(*operations: str, subject: str = "PC4101") -> str:
    return dev_token(role="field", operations=list(operations), subject=subject)


async def settled_totals(
    query_url: str, operation: str, expected: dict[str, int], timeout_s: float = 45
) -> dict[str, int]:
    """The operation's metrics once they equal ``expected`` with the log fully applied (lag 0),
    or whatever they are when the time is up."""
    token = dev_token(role="supervisor", operations=[operation])
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + timeout_s
    metrics: dict[str, int] = {}
    async with httpx.AsyncClient(base_url=query_url, headers=headers, timeout=10) as client:
        while time.monotonic() < deadline:
            r = await client.get(f"/v1/operations/{operation}/totals")
            if r.status_code == 200:
                doc = r.json()
                metrics = {k: v for k, v in doc["metrics"].items() if v}
                if metrics == expected and doc["freshness"]["lag"] == 0:
                    return metrics
            await asyncio.sleep(0.3)
    return metrics


async def totals_status(query_url: str, operation: str) -> int:
    token = dev_token(role="supervisor", operations=[operation])
    async with httpx.AsyncClient(base_url=query_url, timeout=10) as client:
        r = await client.get(
            f"/v1/operations/{operation}/totals", headers={"Authorization": f"Bearer {token}"}
        )
        return r.status_code
