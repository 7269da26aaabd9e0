"""The dashboard signs in through the real identity provider (Keycloak): authorization code with
PKCE on Keycloak's own sign-in page, access tokens that live 15 s, renewed by the page before
they expire; the live stream ends at each token's expiry and resumes by Last-Event-ID, and the
events sent across the renewal are all counted, exactly once. No token is in any URL."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from playwright.async_api import Browser, Request, Response, expect

from services.common.oidc import unverified_claims
from services.devtools.procs import free_port
from services.stack.keycloak import DASHBOARD_CLIENT, KeycloakAdmin, RunningKeycloak
from tests.integration.query.ledger import Ledger, make_event

from .conftest import serve

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

T0 = datetime(2026, 11, 16, 6, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def signin_query(query_env: dict[str, str], keycloak: RunningKeycloak) -> Iterator[str]:
    """The query service trusting Keycloak, with the dashboard's public client published."""
    env = {
        **query_env,
        "OPSLEDGER_OIDC_ISSUER": keycloak.issuer("opsledger"),
        "OPSLEDGER_QUERY_DASHBOARD_CLIENT_ID": DASHBOARD_CLIENT,
        "OPSLEDGER_OIDC_LEEWAY_S": "1",
    }
    port = free_port()
    env["OPSLEDGER_QUERY_PORT"] = str(port)
    with serve("query", env, port) as url:
        yield url


def _as_admin(keycloak: RunningKeycloak, change: Callable[[KeycloakAdmin], None]) -> None:
    admin = KeycloakAdmin(keycloak)
    try:
        change(admin)
    finally:
        admin.close()


def _warrants(op: str, n: int, at: datetime) -> list[dict[str, Any]]:
    return [make_event(op, "warrant_executed", at + timedelta(seconds=i)) for i in range(n)]


async def test_auth_config_names_the_issuer_and_public_client(
    signin_query: str, keycloak: RunningKeycloak
) -> None:
    async with httpx.AsyncClient() as client:
        body = (await client.get(f"{signin_query}/v1/auth/config")).json()
    issuer = keycloak.issuer("opsledger")
    assert body["mode"] == "oidc" and body["issuer"] == issuer
    assert body["client_id"] == DASHBOARD_CLIENT
    assert body["authorization_endpoint"].startswith(issuer)
    assert body["token_endpoint"].startswith(issuer)


async def test_dashboard_signs_in_renews_and_resumes_with_nothing_missed(
    signin_query: str,
    ledger: Ledger,
    browser: Browser,
    keycloak: RunningKeycloak,
) -> None:
    op = f"dash-signin-{secrets.token_hex(4)}"
    _as_admin(keycloak, lambda admin: admin.set_operations("opsledger", "supervisor", [op]))
    await ledger.submit(_warrants(op, 3, T0), T0 + timedelta(hours=1))
    sent = 3

    page = await browser.new_page(viewport={"width": 1400, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    requests: list[Request] = []
    page.on("request", lambda request: requests.append(request))

    await page.goto(f"{signin_query}/?operation={op}")
    # Keycloak's own sign-in page, then back to the dashboard.
    await page.wait_for_selector("#username", timeout=30_000)
    assert page.url.startswith(keycloak.issuer("opsledger"))
    await page.fill("#username", "supervisor")
    await page.fill("#password", "supervisor-pw")
    await page.click("#kc-login")

    figure = page.locator('.tile[data-metric="warrants_executed"] .figure')
    try:
        await expect(figure).to_have_text("3", timeout=30_000)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nconsole: {console}") from None
    signed_in_at = time.time()

    # Events keep arriving across the first token's expiry (15 s) and the stream's renewal.
    for batch in range(12):
        await ledger.submit(
            _warrants(op, 2, T0 + timedelta(minutes=batch + 1)), T0 + timedelta(hours=2)
        )
        sent += 2
        await asyncio.sleep(1.5)
    await expect(figure).to_have_text(str(sent), timeout=30_000)
    await asyncio.sleep(3)  # nothing counted twice after a resume
    await expect(figure).to_have_text(str(sent))
    assert time.time() - signed_in_at > 15  # the run outlived the first access token

    streams = [r for r in requests if "/stream" in r.url]
    assert len(streams) >= 2, [r.url for r in streams]
    first, *later = [await r.all_headers() for r in streams]
    first_token = first["authorization"].removeprefix("Bearer ")
    resumed = [h for h in later if h["authorization"] != first["authorization"]]
    assert resumed, "the stream never reconnected with a renewed token"
    assert "last-event-id" in resumed[0]  # resumed where it left off
    assert unverified_claims(first_token)["azp"] == DASHBOARD_CLIENT

    posts = [r for r in requests if r.method == "POST" and r.url.endswith("/token")]
    grants = [(r.post_data or "") for r in posts]
    assert any("grant_type=authorization_code" in g and "code_verifier=" in g for g in grants)
    assert any("grant_type=refresh_token" in g for g in grants)  # renewed, not re-typed

    bearer = {
        h["authorization"].removeprefix("Bearer ") for h in [first, *later] if "authorization" in h
    }
    for request in requests:  # no token in any URL (the code only, in the fragment)
        assert not any(token in request.url for token in bearer), request.url
        assert "access_token" not in request.url and "id_token" not in request.url
    assert "#" not in page.url and "code=" not in page.url
    assert not errors, errors
    await page.close()


async def test_a_refused_refresh_token_sends_the_page_back_to_sign_in(
    signin_query: str,
    ledger: Ledger,
    browser: Browser,
    keycloak: RunningKeycloak,
) -> None:
    """An administrator ends the user's sessions: the page's next renewal is refused by the
    provider, the page forgets its refresh token and goes back to the sign-in form (not a blank
    or stale wall); signing in again brings the live figures back."""
    op = f"dash-refused-{secrets.token_hex(4)}"
    _as_admin(keycloak, lambda admin: admin.set_operations("opsledger", "supervisor", [op]))
    await ledger.submit(_warrants(op, 3, T0), T0 + timedelta(hours=1))

    page = await browser.new_page(viewport={"width": 1400, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    refreshes: list[tuple[str, int]] = []  # (refresh token sent, status answered)

    def on_response(response: Response) -> None:
        request = response.request
        if request.method == "POST" and request.url.endswith("/token"):
            form = parse_qs(request.post_data or "")
            if form.get("grant_type") == ["refresh_token"]:
                refreshes.append((form["refresh_token"][0], response.status))

    page.on("response", on_response)

    async def sign_in() -> None:
        await page.wait_for_selector("#username", timeout=30_000)
        assert page.url.startswith(keycloak.issuer("opsledger"))
        await page.fill("#username", "supervisor")
        await page.fill("#password", "supervisor-pw")
        await page.click("#kc-login")

    await page.goto(f"{signin_query}/?operation={op}")
    await sign_in()
    figure = page.locator('.tile[data-metric="warrants_executed"] .figure')
    await expect(figure).to_have_text("3", timeout=30_000)
    signed_in_at = time.monotonic()

    _as_admin(keycloak, lambda admin: admin.end_sessions("opsledger", "supervisor"))

    # The renewal (at two thirds of the 15 s token) is refused; the page lands on the form.
    await page.wait_for_url(f"{keycloak.issuer('opsledger')}/**", timeout=30_000)
    assert time.monotonic() - signed_in_at < 20, "the page waited past its token's expiry"
    assert [status for _, status in refreshes] == [400], refreshes
    await sign_in()
    await expect(figure).to_have_text("3", timeout=30_000)
    assert page.url.startswith(signin_query) and "code=" not in page.url

    # Signed in afresh: a new refresh token, which the provider honours, and live figures.
    await ledger.submit(_warrants(op, 2, T0 + timedelta(minutes=5)), T0 + timedelta(hours=2))
    await expect(figure).to_have_text("5", timeout=30_000)
    await page.wait_for_timeout(12_000)  # past the new token's renewal
    refused = refreshes[0][0]
    assert [status for _, status in refreshes[1:]][:1] == [200], refreshes
    assert all(token != refused for token, _ in refreshes[1:])  # the refused one never again
    await expect(figure).to_have_text("5")
    assert not errors, errors
    await page.close()
