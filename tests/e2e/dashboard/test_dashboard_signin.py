"""The dashboard signs in through the real identity provider (Keycloak): authorization code with
PKCE on Keycloak's own sign-in page, access tokens that live 15 s, renewed by the page before
they expire; the live stream ends at each token's expiry and resumes by Last-Event-ID, and the
events sent across the renewal are all counted, exactly once. No token is in any URL."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Request, expect

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
    admin = KeycloakAdmin(keycloak)
    try:
        admin.set_operations("opsledger", "supervisor", [op])
    finally:
        admin.close()
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
