"""Read events written under an older ``schema_version`` as the current version.

An upcaster takes the raw dict of one kind at ``from_version`` and returns it as it would have
been written at ``from_version + 1``; the registry sets ``schema_version`` itself and chains
upcasters until none applies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

RawEvent = dict[str, Any]
Upcaster = Callable[[RawEvent], RawEvent]


class UpcasterRegistry:
    """Upcasters keyed by (kind, from_version)."""

    def __init__(self) -> None:
        self._upcasters: dict[tuple[str, int], Upcaster] = {}

    def __len__(self) -> int:
        return len(self._upcasters)

    def register(self, kind: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Decorator: ``fn`` turns a ``kind`` event at ``from_version`` into the next version."""

        def decorate(fn: Upcaster) -> Upcaster:
            key = (kind, from_version)
            if key in self._upcasters:
                raise ValueError(f"an upcaster for {kind} v{from_version} is already registered")
            self._upcasters[key] = fn
            return fn

        return decorate

    def applies(self, raw: RawEvent) -> bool:
        """Whether ``raw`` is at a version some upcaster reads."""
        return self._key(raw) in self._upcasters

    def upcast(self, raw: RawEvent) -> RawEvent:
        """Apply the chain of upcasters in version order; ``raw`` itself is not modified."""
        key = self._key(raw)
        while key in self._upcasters:
            raw = self._upcasters[key](dict(raw))
            raw["schema_version"] = key[1] + 1
            key = (key[0], key[1] + 1)
        return raw

    @staticmethod
    def _key(raw: RawEvent) -> tuple[str, int] | None:
        kind, version = raw.get("type"), raw.get("schema_version")
        if isinstance(kind, str) and type(version) is int:
            return (kind, version)
        return None


#: The registry `parse_event` uses; version 1 is current, so it starts empty.
DEFAULT_REGISTRY = UpcasterRegistry()
register_upcaster = DEFAULT_REGISTRY.register
