"""Development tokens for the demo, the benchmarks and the tests: one helper, one key.

Signs with the local stack's development key (created on first use) for the local stack's
issuer URL, exactly what `opsledger token` prints. ``dev_verifier`` verifies them with no
network at all (the key's JWKS as a static source), for unit tests.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.common.oidc import IssuerConfig, KeyCache, OidcVerifier, StaticKeySource
from services.stack.devissuer.keys import claims_for, load_or_create
from services.stack.settings import StackSettings

AUDIENCE = "opsledger"


def dev_token(
    role: str,
    operations: Sequence[str] = (),
    *,
    subject: str | None = None,
    ttl_s: int = 3600,
    audience: str = AUDIENCE,
    stack: StackSettings | None = None,
) -> str:
    """A token from the development issuer for ``role`` scoped to ``operations``."""
    stack = stack or StackSettings()
    key = load_or_create(stack.issuer_dir)
    claims = claims_for(
        issuer=stack.issuer_url,
        audience=audience,
        role=role,
        operations=operations,
        subject=subject,
        ttl_s=ttl_s,
    )
    return key.sign(claims)


def dev_verifier(stack: StackSettings | None = None, audience: str = AUDIENCE) -> OidcVerifier:
    """A verifier of development tokens that fetches nothing (the key is read from disk)."""
    stack = stack or StackSettings()
    key = load_or_create(stack.issuer_dir)
    keys = KeyCache(StaticKeySource({"keys": [key.jwk()]}))
    return OidcVerifier(IssuerConfig(stack.issuer_url, audience), keys)
