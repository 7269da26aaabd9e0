"""The OIDC verifier: one test per rule (algorithms, keys, claims, rotation, outages)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from typing import Any

import httpx
import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from services.common.auth import AuthError
from services.common.oidc import (
    ClaimMapping,
    HttpKeySource,
    IssuerConfig,
    KeyCache,
    OidcVerifier,
    VerifierUnavailable,
)

ISS = "https://idp.example/realms/force"
AUD = "opsledger"


class Key:
    """A key pair, its JWK and a signer."""

    def __init__(self, alg: str, kid: str) -> None:
        self.alg, self.kid = alg, kid
        if alg == "RS256":
            self.private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.jwk = RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        elif alg == "ES256":
            self.private = ec.generate_private_key(ec.SECP256R1())
            self.jwk = ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        else:
            self.private = ed25519.Ed25519PrivateKey.generate()
            self.jwk = OKPAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        self.jwk = {**self.jwk, "kid": kid, "use": "sig"}

    def sign(self, **over: Any) -> str:
        return jwt.encode(
            claims(**over), self.private, algorithm=self.alg, headers={"kid": self.kid}
        )

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISS, "aud": AUD, "sub": "pc-4101", "roles": ["supervisor"],
        "operations": ["op-a"], "iat": now, "exp": now + 300,
    }  # fmt: skip
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


class Source:
    """A JWKS that tests change (rotation) or break (outage); counts fetches."""

    def __init__(self, *keys: Key) -> None:
        self.keys = list(keys)
        self.down = False
        self.fetches = 0

    async def fetch(self) -> dict[str, Any]:
        self.fetches += 1
        if self.down:
            raise httpx.ConnectError("provider unreachable")
        return {"keys": [k.jwk for k in self.keys]}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def rsa_key() -> Key:
    return Key("RS256", "rsa-1")


def verifier(
    source: Source, clock: Clock | None = None, mapping: ClaimMapping | None = None, **kw: Any
) -> OidcVerifier:
    cache = KeyCache(
        source,
        refresh_s=kw.pop("refresh_s", 300),
        min_refresh_interval_s=kw.pop("min_refresh_interval_s", 10),
        max_stale_s=kw.pop("max_stale_s", 600),
        clock=clock or Clock(),
    )
    config = IssuerConfig(ISS, AUD, mapping=mapping or ClaimMapping(), **kw)
    return OidcVerifier(config, cache)


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
async def test_each_asymmetric_algorithm_verifies(alg: str) -> None:
    key = Key(alg, f"{alg}-1")
    principal = await verifier(Source(key)).verify(key.sign(operations=["op-a", "op-b"]))
    assert (principal.subject, principal.role) == ("pc-4101", "supervisor")
    assert principal.operations == {"op-a", "op-b"}
    assert principal.expires_at == pytest.approx(time.time() + 300, abs=5)


async def test_hmac_signed_with_the_public_key_is_refused(rsa_key: Key) -> None:
    """The classic confusion: HS256 keyed with the published public key."""
    forged = _hs256(rsa_key)
    with pytest.raises(AuthError, match="algorithm 'HS256' is not accepted"):
        await verifier(Source(rsa_key)).verify(forged)


def _hs256(key: Key) -> str:
    """Built by hand: PyJWT itself refuses a PEM public key as an HMAC secret."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(orjson.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}))
    body = b64(orjson.dumps(claims(roles=["admin"])))
    mac = hmac.new(key.public_pem(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


async def test_alg_none_is_refused(rsa_key: Key) -> None:
    token = jwt.encode(claims(), None, algorithm="none", headers={"kid": rsa_key.kid})
    with pytest.raises(AuthError, match="algorithm 'none' is not accepted"):
        await verifier(Source(rsa_key)).verify(token)


async def test_an_algorithm_left_out_of_the_configuration_is_refused() -> None:
    key = Key("ES256", "ec-1")
    with pytest.raises(AuthError, match="not accepted"):
        await verifier(Source(key), algorithms=("RS256",)).verify(key.sign())


def test_symmetric_algorithms_cannot_be_configured() -> None:
    with pytest.raises(ValueError, match="refused: HS256"):
        IssuerConfig(ISS, AUD, algorithms=("RS256", "HS256"))


async def test_a_header_algorithm_that_does_not_fit_the_key_is_refused() -> None:
    """An ES256 key published under kid k; a token claiming RS256 under kid k never checks."""
    ec_key, rsa_other = Key("ES256", "k"), Key("RS256", "k")
    with pytest.raises(AuthError, match="is not a RS256 key"):
        await verifier(Source(ec_key)).verify(rsa_other.sign())


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"iss": "https://other.example"}, "Invalid issuer"),
        ({"aud": "someone-else"}, "Audience doesn't match"),
        ({"exp": int(time.time()) - 60}, "token expired"),
        ({"nbf": int(time.time()) + 120}, "not yet valid"),
        ({"exp": None}, 'Token is missing the "exp" claim'),
        ({"aud": None}, 'Token is missing the "aud" claim'),
        ({"iss": None}, 'Token is missing the "iss" claim'),
    ],
)
async def test_issuer_audience_and_lifetime_are_required(
    rsa_key: Key, over: dict[str, Any], message: str
) -> None:
    with pytest.raises(AuthError, match=message):
        await verifier(Source(rsa_key)).verify(rsa_key.sign(**over))


async def test_small_clock_skew_is_tolerated(rsa_key: Key) -> None:
    token = rsa_key.sign(exp=int(time.time()) - 3, nbf=int(time.time()) + 3)
    assert (await verifier(Source(rsa_key), leeway_s=10).verify(token)).role == "supervisor"


async def test_a_tampered_payload_is_refused(rsa_key: Key) -> None:
    head, _, sig = rsa_key.sign().split(".")
    _, body, _ = rsa_key.sign(roles=["admin"]).split(".")
    with pytest.raises(AuthError, match="Signature verification failed"):
        await verifier(Source(rsa_key)).verify(f"{head}.{body}.{sig}")


async def test_a_token_without_kid_is_refused(rsa_key: Key) -> None:
    token = jwt.encode(claims(), rsa_key.private, algorithm="RS256")
    with pytest.raises(AuthError, match="no `kid`"):
        await verifier(Source(rsa_key)).verify(token)


async def test_a_rotated_key_is_fetched_without_a_restart(rsa_key: Key) -> None:
    source = Source(rsa_key)
    clock = Clock()
    v = verifier(source, clock)
    await v.verify(rsa_key.sign())
    new = Key("RS256", "rsa-2")
    source.keys.append(new)  # the provider rotates: a new key is published
    clock.now += 11  # past the minimum refresh interval
    assert (await v.verify(new.sign(roles=["auditor"]))).role == "auditor"
    assert source.fetches == 2


async def test_unknown_kids_refresh_at_most_once_per_interval(rsa_key: Key) -> None:
    source = Source(rsa_key)
    clock = Clock()
    v = verifier(source, clock, min_refresh_interval_s=10)
    await v.verify(rsa_key.sign())
    stranger = Key("RS256", "never-published")
    for _ in range(50):
        with pytest.raises(AuthError, match="publishes no key 'never-published'"):
            await v.verify(stranger.sign())
    assert source.fetches == 1  # keys read a moment ago: a forged kid triggers no read
    clock.now += 10
    for _ in range(50):
        with pytest.raises(AuthError):
            await v.verify(stranger.sign())
    assert source.fetches == 2  # one read per interval, however many tokens ask


async def test_cached_keys_work_through_a_short_outage_and_not_after(rsa_key: Key) -> None:
    source = Source(rsa_key)
    clock = Clock()
    v = verifier(source, clock, refresh_s=60, max_stale_s=600)
    await v.verify(rsa_key.sign())
    source.down = True
    clock.now += 120  # keys due for refresh, provider away: the cached key still verifies
    assert (await v.verify(rsa_key.sign(sub="pc-2"))).subject == "pc-2"
    head, _, sig = rsa_key.sign().split(".")
    _, body, _ = rsa_key.sign(roles=["admin"]).split(".")
    with pytest.raises(AuthError, match="Signature verification failed"):
        await v.verify(f"{head}.{body}.{sig}")  # an outage never makes a bad token good
    clock.now += 600  # past max_stale: nothing verifies until the provider answers again
    with pytest.raises(VerifierUnavailable):
        await v.verify(rsa_key.sign(sub="pc-3"))
    source.down = False
    clock.now += 10
    assert (await v.verify(rsa_key.sign(sub="pc-4"))).subject == "pc-4"


async def test_an_unreachable_provider_refuses_every_token(rsa_key: Key) -> None:
    source = Source(rsa_key)
    source.down = True
    with pytest.raises(VerifierUnavailable):
        await verifier(source).verify(rsa_key.sign())


async def test_a_withdrawn_key_stops_its_remembered_tokens(rsa_key: Key) -> None:
    source = Source(rsa_key, Key("RS256", "rsa-2"))
    clock = Clock()
    v = verifier(source, clock, refresh_s=60)
    token = rsa_key.sign()
    await v.verify(token)
    source.keys = source.keys[1:]  # the provider withdraws rsa-1 (compromised)
    clock.now += 61
    await v.verify(token)  # answered from memory; the due key refresh starts behind it
    await asyncio.sleep(0)
    with pytest.raises(AuthError, match="publishes no key 'rsa-1'"):
        await v.verify(token)


async def test_a_remembered_token_is_refused_after_its_expiry(rsa_key: Key) -> None:
    v = OidcVerifier(IssuerConfig(ISS, AUD, leeway_s=0), KeyCache(Source(rsa_key)))
    exp = int(time.time()) + 1
    token = rsa_key.sign(exp=exp)
    await v.verify(token)
    await asyncio.sleep(exp - time.time() + 0.1)
    with pytest.raises(AuthError, match="token expired"):
        await v.verify(token)


# -- claim mapping --------------------------------------------------------------------------


def test_roles_from_a_nested_claim_through_a_role_map() -> None:
    mapping = ClaimMapping(
        roles_claim="realm_access.roles",
        role_values={"Opsledger.Supervisor": "supervisor"},
        operations_claim="ops",
        subject_claim="oid",
    )
    principal = mapping.principal(
        {"realm_access": {"roles": ["offline_access", "Opsledger.Supervisor"]},
         "ops": "op-a op-b", "oid": "7f1c"}
    )  # fmt: skip
    assert (principal.role, principal.operations, principal.subject) == (
        "supervisor", {"op-a", "op-b"}, "7f1c"
    )  # fmt: skip


@pytest.mark.parametrize(
    ("claimed", "message"),
    [
        ({"roles": ["offline_access"]}, "no opsledger role"),
        ({}, "no opsledger role"),
        ({"roles": ["field", "admin"]}, "several roles"),
        ({"roles": ["field"], "operations": [1, 2]}, "list of strings"),
        ({"roles": ["field"], "sub": ""}, "no subject"),
        # the subject is stamped on every event as `principal`; PostgreSQL cannot store NUL
        ({"roles": ["field"], "sub": "pc\x004101"}, "not one line of text"),
        ({"roles": ["field"], "sub": "pc-4101\n"}, "not one line of text"),
        ({"roles": ["field"], "sub": "pc\ud800"}, "not one line of text"),
    ],
)
def test_claims_that_name_no_single_role_are_refused(claimed: dict[str, Any], message: str) -> None:
    with pytest.raises(AuthError, match=message):
        ClaimMapping().principal({"sub": "pc-1", **claimed})


# -- discovery ------------------------------------------------------------------------------


def _provider(issuer_in_document: str) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/.well-known/openid-configuration"):
            return httpx.Response(
                200, json={"issuer": issuer_in_document, "jwks_uri": f"{ISS}/certs"}
            )
        return httpx.Response(200, json={"keys": []})

    return httpx.MockTransport(handler)


async def test_discovery_reads_the_jwks_uri() -> None:
    source = HttpKeySource(ISS, transport=_provider(ISS))
    assert await source.fetch() == {"keys": []}


async def test_discovery_naming_another_issuer_is_refused() -> None:
    source = HttpKeySource(ISS, transport=_provider("https://evil.example"))
    with pytest.raises(ValueError, match="names issuer 'https://evil.example'"):
        await source.fetch()


async def test_concurrent_first_requests_share_one_key_read(rsa_key: Key) -> None:
    """Fifty requests reach a fresh verifier at once: all wait for the one read, none is 503."""

    class Slow(Source):
        async def fetch(self) -> dict[str, Any]:
            await asyncio.sleep(0.05)
            return await super().fetch()

    source = Slow(rsa_key)
    v = verifier(source)
    tokens = [rsa_key.sign(sub=f"pc-{n}") for n in range(50)]
    principals = await asyncio.gather(*(v.verify(t) for t in tokens))
    assert [p.subject for p in principals] == [f"pc-{n}" for n in range(50)]
    assert source.fetches == 1
