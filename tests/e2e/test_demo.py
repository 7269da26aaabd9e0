"""`opsledger demo`, as a user runs it: the reference week of action, printed exactly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.devtools.procs import free_port

REPO = Path(__file__).resolve().parents[2]

# The published tally of the reference week of action (DESIGN.md), as the demo must print it.
PRESS_RELEASE = [
    "- 52 warrants executed",
    "- 56 adults arrested",
    "- 3,586 wraps of crack, heroin and cocaine seized",
    "- 118 mobile phones seized",
    "- 22 weapons seized",
    "- £79,245.60 in cash seized",
    "- 24 schools visited",
    "- 22 vulnerable people engaged",
]


@pytest.mark.e2e
def test_demo_prints_the_reference_tally(stack: object, unique_id: str) -> None:
    env = {
        **os.environ,
        # Its own ports, topic and consumer group, so services a developer left running (or
        # other tests' topics) play no part: the demo starts and stops all three itself.
        "OPSLEDGER_INGEST_PORT": str(free_port()),
        "OPSLEDGER_QUERY_PORT": str(free_port()),
        "OPSLEDGER_AGGREGATOR_PORT": str(free_port()),
        "OPSLEDGER_TOPIC": f"demo-e2e-{unique_id}",
        "OPSLEDGER_CONSUMER_GROUP": f"demo-e2e-{unique_id}",
    }
    done = subprocess.run(
        [sys.executable, "-m", "services.cli.main", "demo", "--seed", "7"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    bullets = [line for line in done.stdout.splitlines() if line.startswith("- ")]
    assert bullets == PRESS_RELEASE
    # It says what it did with the flaky devices and the corrections, not only the total.
    assert "resent by flaky devices" in done.stdout
    assert "voided and re-entered" in done.stdout
    # Aggregator and query ran as their least-privilege roles (docs/security.md), and that was
    # enough for the exact tally above.
    assert "aggregator: connects to PostgreSQL as opsledger_aggregator" in done.stderr
    assert "query: connects to PostgreSQL as opsledger_query" in done.stderr
    for name in ("ingest", "aggregator", "query"):
        assert f"{name}: stopped" in done.stderr
