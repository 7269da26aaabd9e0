"""`make bench`: every component benchmark plus the end-to-end one, in one run, one JSON file.

Each component runs in a child process of its own (``python -m bench --component NAME``), so
one that fails or hangs is reported as "not measured: <why>" and the others still run. The
merged results go to bench/results/latest.json and a dated copy; the table goes to stdout.

Options: ``--quick`` (or OPSLEDGER_BENCH_QUICK=1) shortens every window and size;
``--only e2e,ingest`` runs a subset; ``--no-save`` leaves bench/results alone; ``--json FILE``
also writes the merged results there.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
# (name in the results, module); in this order: the cheap ones first, e2e last.
COMPONENTS = [
    ("contract", "bench.bench_contract"),
    ("ingest", "bench.bench_ingest"),
    ("aggregator", "bench.bench_aggregator"),
    ("query", "bench.bench_query"),
    ("rebuild", "bench.bench_rebuild"),
    ("tlog", "bench.bench_tlog"),
    ("brokers", "bench.bench_brokers"),
    ("e2e", "bench.bench_e2e"),
    ("scale", "bench.bench_scale"),
]
TIMEOUT_S = {"query": 1200, "rebuild": 1200, "e2e": 1500, "scale": 1500}
QUICK_SIZES = {
    "OPSLEDGER_BENCH_AGG_EVENTS": "50000",
    "OPSLEDGER_BENCH_AGG_SINGLE_EVENTS": "10000",
    "OPSLEDGER_BENCH_REBUILD_EVENTS": "200000",
}


def _component(name: str, module: str, out: Path) -> None:
    """Child-process mode: run one component and write its figures (or its failure) as JSON."""
    started = time.monotonic()
    try:
        result = importlib.import_module(module).run()
    except Exception as exc:
        traceback.print_exc()
        result = {"not_measured": f"failed: {type(exc).__name__}: {exc}"[:300]}
    result.setdefault("_seconds", round(time.monotonic() - started, 1))
    out.write_text(json.dumps(result, default=str))


def _run_child(name: str, module: str) -> tuple[dict[str, Any], float]:
    """Run one component in a child process; its figures, or why it was not measured."""
    from bench.common import say

    started = time.monotonic()
    if importlib.util.find_spec(module) is None:
        return {"not_measured": f"{module} is missing"}, 0.0
    timeout = TIMEOUT_S.get(name, 900)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        argv = [sys.executable, "-m", "bench", "--component", name, "--json-out", str(out)]
        say(f"{name}: running ({module})")
        try:
            # the child's own output goes to stderr, so stdout stays the table
            done = subprocess.run(argv, timeout=timeout, stdout=sys.stderr, check=False)  # noqa: S603
        except subprocess.TimeoutExpired:
            return {"not_measured": f"timed out after {timeout} s"}, time.monotonic() - started
        seconds = time.monotonic() - started
        if not out.exists():
            return {"not_measured": f"exited with status {done.returncode}"}, seconds
        result: dict[str, Any] = json.loads(out.read_text())
    say(f"{name}: done in {seconds:.0f} s")
    return result, seconds


def _merge(results: dict[str, Any], name: str, part: dict[str, Any]) -> None:
    """Hoist a component's figures into its section and its ceilings into `ceilings`."""
    part = dict(part)
    part.pop("_seconds", None)
    ceilings = part.pop("ceilings", None) or {}
    if name == "contract":
        section: dict[str, Any] = part
    elif name in part and isinstance(part[name], dict):
        section = part.pop(name)
        section.update({k: v for k, v in part.items() if k not in {"machine"}})
    else:
        section = {k: v for k, v in part.items() if k != "machine"}
    results[name] = section
    for kind, figures in ceilings.items():
        results["ceilings"].setdefault(kind, {})
        if kind == "pg_write" or not isinstance(figures, dict):
            results["ceilings"][kind] = figures
        else:
            results["ceilings"][kind].update(figures)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short windows and sizes")
    parser.add_argument("--only", default="", help="comma-separated component names")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results")
    parser.add_argument("--json", help="also write the merged results to this file")
    parser.add_argument("--component", help=argparse.SUPPRESS)
    parser.add_argument("--json-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        os.environ["OPSLEDGER_BENCH_QUICK"] = "1"
    if os.environ.get("OPSLEDGER_BENCH_QUICK", "").lower() in {"1", "true", "yes"}:
        for key, value in QUICK_SIZES.items():
            os.environ.setdefault(key, value)
    if args.component:
        _component(args.component, dict(COMPONENTS)[args.component], Path(args.json_out))
        return 0

    from bench.common import ensure_stack, machine_info, say
    from bench.report import e2e_ceilings, issue17, table, targets_text

    started = time.monotonic()
    settings = ensure_stack()
    at = datetime.now(UTC)
    results: dict[str, Any] = {
        "machine": machine_info(settings),
        "at": at.isoformat(timespec="seconds"),
        "quick": os.environ.get("OPSLEDGER_BENCH_QUICK") == "1",
        "ceilings": {},
    }
    wanted = {n.strip() for n in args.only.split(",") if n.strip()}
    durations: dict[str, float] = {}
    for name, module in COMPONENTS:
        if wanted and name not in wanted:
            continue
        part, durations[name] = _run_child(name, module)
        _merge(results, name, part)
    e2e_ceilings(results)
    results["targets_issue17"] = issue17(results)
    results["machine"]["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    results["durations_s"] = {k: round(v, 1) for k, v in durations.items()}
    results["duration_s"] = round(time.monotonic() - started, 1)
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        text = json.dumps(results, indent=2, default=str) + "\n"
        (RESULTS / "latest.json").write_text(text)
        dated = RESULTS / f"{at:%Y-%m-%dT%H%MZ}{'-quick' if results['quick'] else ''}.json"
        dated.write_text(text)
        say(f"wrote {RESULTS / 'latest.json'} and {dated}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(table(results))
    print()
    print(targets_text(results))
    machine = results["machine"]
    print(
        f"\nfull run took {results['duration_s']:.0f} s (load average"
        f" {machine['load_avg_1m_at_start']} at start, {machine['load_avg_1m_at_end']} at end,"
        f" {os.cpu_count()} CPUs)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
