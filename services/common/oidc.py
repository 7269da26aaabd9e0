"""Bearer tokens verified against an OpenID Connect issuer's published keys (JWKS).

The services hold no signing secret: a token is good when an asymmetric signature (RS256, ES256
or EdDSA; never HS* or ``none``, whatever its header says) checks out against a key the
configured issuer publishes under the token's ``kid``, and ``iss``, ``aud`` and ``exp`` (and
``nbf`` when present) hold within a small leeway. The provider's claims become our role and
operations through a configurable mapping (``ClaimMapping``).

Keys are cached. They are re-read every ``refresh_s``; a token naming an unknown ``kid`` (the
provider rotated its key) triggers one early re-read, at most every ``min_refresh_interval_s``,
so forged ``kid`` values cannot turn the verifier into a load generator against the provider.
When the provider cannot be reached, cached keys keep verifying for up to ``max_stale_s`` (a
short outage is invisible); after that, or with no key ever fetched, every token is refused
with `VerifierUnavailable`. An unreachable provider never makes a bad token good: a failed
read changes nothing, and keys only ever come from the issuer's own answer.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import jwt
import orjson
from jwt import PyJWK

from schemas.text import is_single_line_text
from services.common.auth import ROLES, AuthError, Principal, Role

log = logging.getLogger(__name__)

ASYMMETRIC_ALGORITHMS: tuple[str, ...] = ("RS256", "ES256", "EdDSA")
# The JWK key type (and curve) each algorithm needs: an RS256 header over an EC key is refused.
_KEY_TYPE = {"RS256": ("RSA", None), "ES256": ("EC", "P-256"), "EdDSA": ("OKP", None)}
_CURVES_EDDSA = ("Ed25519", "Ed448")


class VerifierUnavailable(AuthError):
    """The issuer's keys cannot be had right now, so no token can be verified (HTTP 503)."""


# -- claims -> principal ------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimMapping:
    """How a provider's claims name our role, operations and subject.

    ``roles_claim`` and ``operations_claim`` are dotted paths (``realm_access.roles``); each
    holds a string, a space-separated string or a list of strings. ``role_values`` maps the
    provider's role (or group) names to ours; names not in it are ignored. Exactly one of our
    roles must result: none, or two different ones, is refused (a token must not be read as
    more than one thing).
    """

    roles_claim: str = "roles"
    operations_claim: str = "operations"
    subject_claim: str = "sub"
    role_values: Mapping[str, Role] = field(default_factory=lambda: {r: r for r in ROLES})

    def principal(self, claims: Mapping[str, Any], expires_at: float | None = None) -> Principal:
        """The principal these verified claims describe; AuthError when they describe none."""
        names = _strings(_lookup(claims, self.roles_claim), self.roles_claim)
        roles = {self.role_values[n] for n in names if n in self.role_values}
        if not roles:
            raise AuthError(f"invalid token: no opsledger role in claim `{self.roles_claim}`")
        if len(roles) > 1:
            raise AuthError(
                f"invalid token: claim `{self.roles_claim}` names several roles "
                f"({', '.join(sorted(roles))}); one identity has one role"
            )
        operations = _strings(_lookup(claims, self.operations_claim), self.operations_claim)
        subject = _lookup(claims, self.subject_claim)
        if not isinstance(subject, str) or not subject:
            raise AuthError(f"invalid token: no subject in claim `{self.subject_claim}`")
        if not is_single_line_text(subject):
            # It is stamped on every event as `principal`: PostgreSQL cannot store NUL.
            raise AuthError(f"invalid token: claim `{self.subject_claim}` is not one line of text")
        return Principal(
            subject=subject,
            role=roles.pop(),
            operations=frozenset(operations),
            expires_at=expires_at,
        )


def _lookup(claims: Mapping[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _strings(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise AuthError(f"invalid token: claim `{name}` must be a string or a list of strings")


# -- where keys come from -----------------------------------------------------------------


class KeySource(Protocol):
    """Fetches the issuer's current JWKS document (``{"keys": [...]}``)."""

    async def fetch(self) -> dict[str, Any]: ...


class HttpKeySource:
    """The issuer's discovery document names its ``jwks_uri``; both read with a bounded wait.

    The discovery document must name the configured issuer exactly (OpenID Connect Discovery
    section 4.3), so a mistyped or hijacked URL cannot substitute another issuer's keys.
    """

    def __init__(
        self,
        issuer: str,
        *,
        jwks_url: str | None = None,
        timeout_s: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
        ca_file: str | None = None,
    ) -> None:
        self.issuer = issuer
        self._jwks_url = jwks_url
        self._timeout = timeout_s
        self._transport = transport
        # A private CA (e.g. an on-premises provider); None: the system's trusted roots.
        self._verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=ca_file) if ca_file else True
        )

    async def fetch(self) -> dict[str, Any]:
        async with httpx.AsyncClient(
            timeout=self._timeout,
            transport=self._transport,
            follow_redirects=False,
            verify=self._verify,
        ) as client:
            if self._jwks_url is None:
                url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
                discovery = _json_object(await client.get(url), url)
                if discovery.get("issuer") != self.issuer:
                    raise ValueError(
                        f"{url} names issuer {discovery.get('issuer')!r}, not {self.issuer!r}"
                    )
                jwks_uri = discovery.get("jwks_uri")
                if not isinstance(jwks_uri, str):
                    raise ValueError(f"{url} names no jwks_uri")
                self._jwks_url = jwks_uri
            return _json_object(await client.get(self._jwks_url), self._jwks_url)


def _json_object(response: httpx.Response, url: str) -> dict[str, Any]:
    response.raise_for_status()
    doc = orjson.loads(response.content)
    if not isinstance(doc, dict):
        raise ValueError(f"{url} did not answer a JSON object")
    return doc


class StaticKeySource:
    """A fixed JWKS (tests; an offline deployment with keys shipped as configuration)."""

    def __init__(self, jwks: dict[str, Any]) -> None:
        self.jwks = jwks

    async def fetch(self) -> dict[str, Any]:
        return self.jwks


# -- the key cache ------------------------------------------------------------------------


class KeyCache:
    """The issuer's signing keys by ``kid``, re-read on a bounded schedule (see module doc)."""

    def __init__(
        self,
        source: KeySource,
        *,
        refresh_s: float = 300.0,
        min_refresh_interval_s: float = 10.0,
        max_stale_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._refresh_s = refresh_s
        self._min_interval_s = min_refresh_interval_s
        self._max_stale_s = max_stale_s
        self._clock = clock
        self._keys: dict[str, _Key] = {}
        self._inflight: asyncio.Task[None] | None = None  # the one read under way, if any
        self._fetched_at = -float("inf")  # last successful read
        self._attempted_at = -float("inf")  # last read started, successful or not

    def known(self, kid: str) -> bool:
        """True while ``kid`` is among the keys in force (cached tokens are checked with it).

        Also starts a due refresh behind the caller, so that a key the issuer withdraws stops
        even tokens that are only ever answered from memory.
        """
        if self._keys_in_force() and self._due():
            self._start_read()
        return kid in self._keys and self._keys_in_force()

    async def key(self, kid: str) -> _Key:
        """The key named ``kid``; AuthError when the issuer does not publish it."""
        if kid in self._keys and self._keys_in_force():
            if self._due():
                self._start_read()  # behind the request, which need not wait for it
        else:
            # First use, a rotated key, or keys too old to trust: wait for a read, the one
            # under way (concurrent requests share it) or a new one if the interval allows.
            if self._inflight is None and self._may_read():
                self._start_read()
            if self._inflight is not None:
                await asyncio.shield(self._inflight)
        if not self._keys_in_force():
            raise VerifierUnavailable("the token issuer's keys cannot be fetched; retry shortly")
        found = self._keys.get(kid)
        if found is None:
            raise AuthError(f"invalid token: the issuer publishes no key {kid!r}")
        return found

    def _keys_in_force(self) -> bool:
        return self._clock() - self._fetched_at <= self._max_stale_s

    def _may_read(self) -> bool:
        return self._clock() - self._attempted_at >= self._min_interval_s

    def _due(self) -> bool:
        stale = self._clock() - self._fetched_at > self._refresh_s
        return stale and self._inflight is None and self._may_read()

    def _start_read(self) -> None:
        self._attempted_at = self._clock()
        self._inflight = asyncio.create_task(self._read(), name="opsledger-jwks-refresh")

    async def _read(self) -> None:
        try:
            document = await self._source.fetch()
            keys = _parse_jwks(document)
        except Exception as exc:  # noqa: BLE001 - any failure: keep what we have, bounded
            log.warning("cannot refresh the token issuer's keys: %s", exc)
        else:
            self._keys, self._fetched_at = keys, self._clock()
        finally:
            self._inflight = None


@dataclass(frozen=True)
class _Key:
    jwk: PyJWK
    raw: Mapping[str, Any]


def _parse_jwks(document: Mapping[str, Any]) -> dict[str, _Key]:
    raw = document.get("keys")
    if not isinstance(raw, list):
        raise ValueError("the JWKS has no `keys` list")
    keys: dict[str, _Key] = {}
    for entry in raw:
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
            continue
        if entry.get("use", "sig") != "sig" or entry.get("kty") not in ("RSA", "EC", "OKP"):
            continue  # encryption keys, symmetric keys: never used to verify
        try:
            keys[entry["kid"]] = _Key(PyJWK(entry), entry)
        except jwt.PyJWTError as exc:
            log.info("ignoring JWKS entry %s: %s", entry.get("kid"), exc)
    return keys


# -- the verifier ---------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuerConfig:
    """What a token must say about where it comes from and whom it is for."""

    issuer: str
    audience: str
    algorithms: tuple[str, ...] = ASYMMETRIC_ALGORITHMS
    leeway_s: float = 10.0
    mapping: ClaimMapping = field(default_factory=ClaimMapping)

    def __post_init__(self) -> None:
        refused = [a for a in self.algorithms if a not in ASYMMETRIC_ALGORITHMS]
        if refused or not self.algorithms:
            raise ValueError(
                f"token algorithms must be among {', '.join(ASYMMETRIC_ALGORITHMS)}; "
                f"refused: {', '.join(refused) or '(none given)'}"
            )


class OidcVerifier:
    """Verifies bearer tokens; remembers verified ones (bounded) until their ``exp``.

    A remembered token is re-checked against the key set in force, so a key the issuer stops
    publishing stops its tokens at the next key refresh.
    """

    def __init__(
        self,
        config: IssuerConfig,
        keys: KeyCache,
        *,
        max_remembered: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.keys = keys
        self._max = max_remembered
        self._clock = clock
        self._known: dict[str, tuple[Principal, float, str]] = {}

    async def verify(self, token: str) -> Principal:
        """The token's principal; AuthError (401) or VerifierUnavailable (503) otherwise."""
        hit = self._known.get(token)
        if hit is not None:
            principal, exp, kid = hit
            if self._clock() < exp and self.keys.known(kid):
                return principal
            del self._known[token]
        principal, exp, kid = await self._verify(token)
        if len(self._known) >= self._max:
            self._known.clear()
        self._known[token] = (principal, exp, kid)
        return principal

    async def _verify(self, token: str) -> tuple[Principal, float, str]:
        cfg = self.config
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from exc
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in cfg.algorithms:
            raise AuthError(
                f"invalid token: algorithm {alg!r} is not accepted "
                f"(only {', '.join(cfg.algorithms)})"
            )
        if not isinstance(kid, str) or not kid:
            raise AuthError("invalid token: no `kid` in its header")
        key = await self.keys.key(kid)
        _check_key_fits(key, alg)
        try:
            claims = jwt.decode(
                token,
                key.jwk.key,
                algorithms=[alg],
                issuer=cfg.issuer,
                audience=cfg.audience,
                leeway=cfg.leeway_s,
                options={"require": ["exp", "iss", "aud"], "verify_iat": False},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("token expired") from exc
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from exc
        exp = float(claims["exp"])
        return cfg.mapping.principal(claims, expires_at=exp), exp + cfg.leeway_s, kid


def _check_key_fits(key: _Key, alg: str) -> None:
    kty, crv = _KEY_TYPE[alg]
    jwk = key.raw
    if jwk.get("kty") != kty or (crv is not None and jwk.get("crv") != crv):
        raise AuthError(f"invalid token: key {jwk.get('kid')!r} is not a {alg} key")
    if alg == "EdDSA" and jwk.get("crv") not in _CURVES_EDDSA:
        raise AuthError(f"invalid token: key {jwk.get('kid')!r} is not an EdDSA key")
    if jwk.get("alg") not in (None, alg):
        raise AuthError(f"invalid token: key {jwk.get('kid')!r} is for {jwk['alg']}, not {alg}")


def unverified_claims(token: str) -> dict[str, Any]:
    """The payload of a token, NOT verified (for display and tests only)."""
    payload = token.split(".")[1]
    claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    if not isinstance(claims, dict):
        raise ValueError("the token's payload is not a JSON object")
    return claims
