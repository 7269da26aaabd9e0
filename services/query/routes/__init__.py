"""The query service's routes, one module per concept, each exposing ``router: APIRouter``.

The app includes the modules named in ``ROUTE_MODULES``, in order. A module listed here that does
not exist yet is skipped, so another engineer can add one (e.g. ``audit.py``: history, verify,
export) without touching the app factory.
"""

from __future__ import annotations

import importlib

from fastapi import APIRouter

ROUTE_MODULES: tuple[str, ...] = (
    "health",
    "operations",
    "summary",
    "stream",
    "audit",
    "tlog",
    "dashboard",
)


def routers() -> list[APIRouter]:
    """The ``router`` of every route module that exists."""
    found: list[APIRouter] = []
    for name in ROUTE_MODULES:
        qualified = f"{__name__}.{name}"
        try:
            module = importlib.import_module(qualified)
        except ModuleNotFoundError as exc:
            if exc.name != qualified:
                raise  # a real missing dependency inside the module
            continue
        found.append(module.router)
    return found
