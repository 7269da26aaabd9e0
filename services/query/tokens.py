"""Verified tokens remembered until they expire, so a dashboard's repeated reads skip HMAC+JSON.

Keyed by the whole token string (signature included): only a string that already passed
`decode_token` can hit, and never after its own ``exp``.
"""

from __future__ import annotations

import base64
import time

import orjson

from services.common.auth import Principal, decode_token
from services.common.settings import CommonSettings


class TokenCache:
    """``decode_token`` with a bounded memory of what it already verified."""

    def __init__(self, settings: CommonSettings, max_entries: int = 4096) -> None:
        self._settings = settings
        self._max = max_entries
        self._known: dict[str, tuple[Principal, float]] = {}

    def decode(self, token: str) -> Principal:
        """The token's principal; raises AuthError as ``decode_token`` does."""
        hit = self._known.get(token)
        if hit is not None:
            if time.time() < hit[1]:
                return hit[0]
            del self._known[token]
        principal = decode_token(self._settings, token)
        if len(self._known) >= self._max:
            self._known.clear()
        self._known[token] = (principal, _expiry(token))
        return principal


def _expiry(token: str) -> float:
    # The signature was verified just now; reading `exp` again needs no second verification.
    payload = token.split(".")[1]
    claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return float(claims["exp"])
