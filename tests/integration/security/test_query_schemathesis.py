"""Schemathesis against the query service's OpenAPI: no 5xx and no answer outside its schema.

The query service runs as `opsledger serve query` over the real PostgreSQL and is called as an
auditor (the widest read role), so generated requests reach the handlers; the live stream (an
endless response) is left out.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from services.devtools.procs import ServiceProcess
from services.stack.devissuer.tokens import dev_token

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def query_url(
    database_url: str, world: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A query server process for this module."""
    env = {"OPSLEDGER_ENV": "test", "DATABASE_URL": database_url,
           "OPSLEDGER_DATABASE_URL": database_url, "OPSLEDGER_TOPIC": world.topic,
           "OPSLEDGER_CONSUMER_GROUP": f"{world.topic}-group"}  # fmt: skip
    log_dir = tmp_path_factory.mktemp("query")
    with ServiceProcess("query", env, log_dir, health_path="/readyz") as query:
        yield query.url


TOKEN = dev_token(role="auditor", ttl_s=3600)


def _run(query_url: str, **checks: Any) -> list[str]:
    """Every operation but the stream, 15 generated cases each; returns the operations run."""
    schema = schemathesis.openapi.from_url(f"{query_url}/openapi.json")
    tested = []
    for result in schema.exclude(path_regex=r".*/stream$").get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, **checks)

        run()
        tested.append(operation.label)
    assert len(tested) >= 8, tested
    return tested


def test_query_api_never_answers_5xx_nor_breaks_its_response_schemas(query_url: str) -> None:
    """Server errors, bodies that break their schema, invalid input accepted: none."""
    c = schemathesis.checks
    # The OpenAPI's completeness has its own test below.
    undocumented = [c.status_code_conformance, c.content_type_conformance,
                    c.positive_data_acceptance]  # fmt: skip
    _run(query_url, excluded_checks=undocumented)


def test_query_api_documents_every_status_it_answers(query_url: str) -> None:
    """Every status and media type answered is documented; schema-valid input is accepted."""
    _run(query_url)
