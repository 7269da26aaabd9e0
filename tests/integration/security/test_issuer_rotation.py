"""`opsledger issuer rotate`: the development issuer's new key signs from then on, the old one
stays in the JWKS for the stated overlap, and a running verifier (what ingest and query build)
accepts both without a restart, then drops the old key once the overlap has ended."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from services.common.auth import AuthError
from services.common.issuer_settings import IssuerSettings
from services.devtools.procs import free_port
from services.stack.devissuer.keys import claims_for, load, load_or_create
from services.stack.issuer import IssuerPart
from services.stack.procs import read_pid, stop
from services.stack.settings import StackSettings

OVERLAP_S = 4.0


@pytest.fixture
async def issuer(tmp_path: Path) -> AsyncIterator[StackSettings]:
    settings = StackSettings(dir=tmp_path, issuer_port=free_port())
    part = IssuerPart(settings)
    part.prepare(lambda _: None)
    part.launch()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                await part.probe(2.0)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        yield settings
    finally:
        record = read_pid(part.pid_file)
        if record is not None:
            stop(record, sig=signal.SIGTERM, timeout_s=10)


def _token(settings: StackSettings) -> str:
    claims = claims_for(
        issuer=settings.issuer_url, audience="opsledger", role="supervisor", ttl_s=600
    )
    return load(settings.issuer_dir).sign(claims)


def _published_kids(settings: StackSettings) -> list[str]:
    jwks = httpx.get(f"{settings.issuer_url}/jwks.json", timeout=5).json()
    return [key["kid"] for key in jwks["keys"]]


def _rotate(settings: StackSettings) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPSLEDGER_STACK_DIR": str(settings.dir)}
    env.pop("OPSLEDGER_ENV", None)
    return subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "services.cli.main", "issuer", "rotate", "--overlap",
         str(OVERLAP_S)],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


async def test_rotation_keeps_old_tokens_valid_for_the_overlap_without_a_restart(
    issuer: StackSettings,
) -> None:
    verifier = IssuerSettings(
        env="test",
        oidc_issuer=issuer.issuer_url,
        oidc_jwks_refresh_s=1.0,
        oidc_jwks_min_refresh_interval_s=0.0,
    ).verifier()
    old_kid = load_or_create(issuer.issuer_dir).kid
    old_token = _token(issuer)
    assert (await verifier.verify(old_token)).role == "supervisor"

    result = _rotate(issuer)
    assert result.returncode == 0, result.stderr
    rotated_at = time.monotonic()
    new_kid = load(issuer.issuer_dir).kid
    assert new_kid != old_kid and new_kid in result.stderr
    assert _published_kids(issuer) == [new_kid, old_kid]

    new_token = _token(issuer)
    # The same verifier, never restarted: the unknown kid makes it re-read the JWKS.
    assert (await verifier.verify(new_token)).role == "supervisor"
    assert (await verifier.verify(old_token)).role == "supervisor"  # inside the overlap
    assert time.monotonic() - rotated_at < OVERLAP_S

    await asyncio.sleep(max(0.0, OVERLAP_S + 0.5 - (time.monotonic() - rotated_at)))
    assert _published_kids(issuer) == [new_kid]
    deadline = time.monotonic() + 15
    while True:  # the running verifier drops the old key at its next refresh
        try:
            await verifier.verify(old_token)
        except AuthError:
            break
        assert time.monotonic() < deadline, "the old key still verifies after the overlap"
        await asyncio.sleep(0.5)
    assert (await verifier.verify(new_token)).role == "supervisor"


def test_rotation_refuses_production(issuer: StackSettings) -> None:
    env = {**os.environ, "OPSLEDGER_STACK_DIR": str(issuer.dir), "OPSLEDGER_ENV": "production"}
    before = load(issuer.issuer_dir).kid
    result = subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "services.cli.main", "issuer", "rotate"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1 and "production" in result.stderr
    assert load(issuer.issuer_dir).kid == before
