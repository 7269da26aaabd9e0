"""Put every throughput figure beside its ceiling from the same run, and print the table.

The ratios are also written back into the results, so latest.json carries them too.
"""

from __future__ import annotations

from typing import Any

Row = tuple[str, str, str, str, str, str]  # figure, value, ceiling, ceiling value, ratio, verdict


def _get(doc: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    return doc


def _num(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value < 1000:
        return f"{value:,.1f}{unit}"
    return f"{round(value):,}{unit}"


def _verdict(ok: Any, target: Any) -> str:
    if ok is None:
        return ""
    return f"{'met' if ok else 'MISSED'} (target {_num(target)})"


# Issue 17's targets, each judged on figures of the same run. They replace the older absolute
# targets (events/s on this box) where both exist: a ratio to a ceiling measured beside it is
# what survives a busy or a different machine.
TARGETS_17: dict[str, tuple[str, float, str]] = {
    # key: (what is compared, bound, ">=" or "<=")
    "aggregator_ratio": ("aggregator submissions_100 / pg_write", 0.9, ">="),
    "e2e_batch_ratio": ("e2e batch, one aggregator / pg_write", 0.85, ">="),
    "e2e_single_cpu_ratio": ("e2e single / cores per CPU-second of an event", 0.9, ">="),
    "latency_p99_1000": ("p99 202 -> visible at 1,000 ev/s, ms", 50.0, "<="),
    "dashboard_p99_1000": ("p99 at 1,000 ev/s on the dashboard's own stream, ms", 50.0, "<="),
    "latency_p99_5000": ("p99 202 -> visible at 5,000 ev/s, ms", 100.0, "<="),
    "dashboard_p99_5000": ("p99 at 5,000 ev/s on the dashboard's own stream, ms", 100.0, "<="),
    "rebuild_ratio": ("rebuild / pg_bulk_load", 0.8, ">="),
    "rebuild_1m_seconds": ("rebuild of 1,000,000 events at the run's rate, s", 25.0, "<="),
    "as_of_p99": ("as_of p99 at 1M events, 4 readers, ms", 100.0, "<="),
    "known_at_p99": ("known_at p99 at 1M events, 4 readers, ms", 100.0, "<="),
}


def _ratio(value: Any, ceiling: Any) -> float | None:
    return round(value / ceiling, 3) if value and ceiling else None


def issue17(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each issue-17 target with the run's figure and whether it is met (None: not measured)."""
    e2e = results.get("e2e", {})
    pg = _get(results, "ceilings", "pg_write", "events_per_s")
    rebuild = results.get("rebuild", {})
    rebuild_s = None
    if _get(rebuild, "events_per_s"):
        rebuild_s = round(1_000_000 / rebuild["events_per_s"], 1)
    measured: dict[str, Any] = {
        "aggregator_ratio": _ratio(_get(results, "aggregator", "submissions_100", "events_per_s"),
                                   pg),
        "e2e_batch_ratio": _ratio(_get(e2e, "batch", "events_per_s"), pg),
        "e2e_single_cpu_ratio": _ratio(_get(e2e, "single", "events_per_s"),
                                       _get(e2e, "single", "cpu_ceiling_events_per_s")),
        "latency_p99_1000": _get(e2e, "latency_ms", "p99"),
        "dashboard_p99_1000": _get(e2e, "latency_ms", "dashboard_default_stream", "p99"),
        "latency_p99_5000": _get(e2e, "latency_ms_at_5000", "p99"),
        "dashboard_p99_5000": _get(e2e, "latency_ms_at_5000", "dashboard_default_stream", "p99"),
        "rebuild_ratio": _ratio(_get(rebuild, "events_per_s"),
                                _get(rebuild, "ceiling_events_per_s")),
        "rebuild_1m_seconds": rebuild_s,
        "as_of_p99": _get(results, "query", "as_of", "p99_ms"),
        "known_at_p99": _get(results, "query", "known_at", "p99_ms"),
    }  # fmt: skip
    out: dict[str, dict[str, Any]] = {}
    for key, (what, bound, sense) in TARGETS_17.items():
        value = measured[key]
        met = None if value is None else (value >= bound if sense == ">=" else value <= bound)
        out[key] = {"what": what, "measured": value, "target": f"{sense} {bound:g}", "met": met}
    return out


def _v17(results: dict[str, Any], key: str) -> str:
    """The verdict cell of an issue-17 target: met or MISSED with its bound."""
    t = issue17(results)[key]
    if t["met"] is None:
        return ""
    return f"{'met' if t['met'] else 'MISSED'} (target {t['target']})"


def e2e_ceilings(results: dict[str, Any]) -> None:
    """For each e2e throughput figure, the lowest of its ceilings (named) and the ratio to it."""
    ceilings = results.get("ceilings", {})
    pg = _get(ceilings, "pg_write", "events_per_s")
    for name, size in (("batch", "batch"), ("single", "single"), ("batch_2_aggregators", "batch")):
        figures = _get(results, "e2e", name)
        if not isinstance(figures, dict):
            continue
        candidates = {
            "kafka_producer_perf": _get(ceilings, "kafka_producer_perf", f"e2e_{size}_record",
                                        "events_per_s"),
            "kafka_consumer_perf": _get(ceilings, "kafka_consumer_perf", f"e2e_{size}_record",
                                        "events_per_s"),
            "pg_write": pg,
        }  # fmt: skip
        known = {k: v for k, v in candidates.items() if v}
        figures["ratios"] = {
            k: round(figures["events_per_s"] / v, 3) if figures.get("events_per_s") else None
            for k, v in known.items()
        }
        if known:
            lowest = min(known, key=lambda k: known[k])
            figures["ceiling"] = lowest
            figures["ceiling_events_per_s"] = known[lowest]
            figures["ratio_to_ceiling"] = figures["ratios"][lowest]


def rows(results: dict[str, Any]) -> list[Row]:
    """The table: one row per figure; throughput rows carry their ceiling and ratio."""
    out: list[Row] = []
    c = results.get("ceilings", {})

    def throughput(label: str, value: Any, ceiling: str, cvalue: Any, verdict: str = "") -> None:
        ratio = f"{value / cvalue:.2f}" if value and cvalue else "-"
        out.append((label, _num(value, " ev/s"), ceiling, _num(cvalue, " ev/s"), ratio, verdict))

    def missing(label: str, section: str) -> None:
        reason = _get(results, section, "not_measured")
        if reason:
            out.append((label, "not measured", "", "", "", str(reason)[:60]))

    for kind in ("single", "batch"):
        f = _get(results, "ingest", kind)
        if isinstance(f, dict):
            perf = _get(c, "kafka_producer_perf", f"{kind}_record", "records_per_s")
            per = f.get("events_per_request", 1)
            throughput(f"ingest {kind}", f.get("events_per_s"), "kafka producer perf",
                       perf * per if perf else None,
                       _verdict(f.get("meets_target"), f.get("target_events_per_s")))  # fmt: skip
    missing("ingest", "ingest")
    for kind in ("submissions_100", "submissions_1"):
        f = _get(results, "aggregator", kind)
        if isinstance(f, dict):
            best = _get(c, "pg_write", "best")
            verdict = (
                _v17(results, "aggregator_ratio")
                if kind == "submissions_100"
                else _verdict(f.get("meets_target"), f.get("target_events_per_s"))
            )
            throughput(f"aggregator {kind}", f.get("events_per_s"), f"pg_write ({best})",
                       _get(c, "pg_write", "events_per_s"), verdict)  # fmt: skip
    missing("aggregator", "aggregator")
    e2e = results.get("e2e", {})
    for kind in ("batch", "single", "batch_2_aggregators"):
        f = e2e.get(kind)
        if isinstance(f, dict):
            verdict = _v17(results, "e2e_batch_ratio") if kind == "batch" else ""
            if not f.get("exact", True):
                verdict = "TOTALS NOT EXACT " + verdict
            throughput(f"e2e {kind}", f.get("events_per_s"), str(f.get("ceiling", "-")),
                       f.get("ceiling_events_per_s"), verdict)  # fmt: skip
            if f.get("cpu_ceiling_events_per_s"):
                others = f.get("other_processes_cores")
                note = f"(other processes: {others} cores)" if others is not None else ""
                left = f.get("cpu_left_ceiling_events_per_s")
                if left:  # the ceiling on the cores the other processes left free
                    note = f"{note[:-1]}; on the cores left: {_num(left, ' ev/s')})"
                ceiling = f["cpu_ceiling_events_per_s"]
                label = "  same, vs the box's CPU"
                if kind == "single":
                    note = f"{_v17(results, 'e2e_single_cpu_ratio')} {note}"
                throughput(label, f.get("events_per_s"), "cores / CPU per event", ceiling, note)
    for key, rate in (("latency_ms", "1000"), ("latency_ms_at_5000", "5000")):
        f = e2e.get(key)
        if isinstance(f, dict):
            out.append((
                f"e2e latency @{f['offered_per_s']:,}/s", f"p50 {_num(f['p50'])} ms",
                f"p99 {_num(f['p99'])} ms", f"max {_num(f['max'])} ms", "",
                _v17(results, f"latency_p99_{rate}"),
            ))  # fmt: skip
            d = f.get("dashboard_default_stream")
            if isinstance(d, dict):
                out.append((
                    "  same, dashboard stream (defaults)", f"p50 {_num(d['p50'])} ms",
                    f"p99 {_num(d['p99'])} ms", f"max {_num(d['max'])} ms", "",
                    _v17(results, f"dashboard_p99_{rate}"),
                ))  # fmt: skip
    rss = _get(e2e, "batch", "rss_mb")
    if isinstance(rss, dict):
        for service, m in rss.items():
            out.append((f"  rss {service} (e2e batch)", f"peak {m['peak_mb']} MB",
                        f"start {m['start_mb']} MB", f"end {m['end_mb']} MB", "", ""))  # fmt: skip
    missing("e2e", "e2e")
    for name, f in (_get(results, "scale", "runs") or {}).items():
        if isinstance(f, dict):
            throughput(f"scale {name}", f.get("events_per_s"), "cores / CPU per event",
                       f.get("cpu_ceiling_events_per_s"),
                       f"(other processes: {f.get('other_processes_cores')} cores)")  # fmt: skip
    missing("scale", "scale")
    f = results.get("rebuild")
    if isinstance(f, dict) and "events_per_s" in f:
        throughput(f"rebuild ({_num(f.get('events'))} events)", f["events_per_s"],
                   "pg_bulk_load", f.get("ceiling_events_per_s"),
                   _v17(results, "rebuild_ratio"))  # fmt: skip
        out.append(("  same, 1M events at this rate",
                    f"{_num(issue17(results)['rebuild_1m_seconds']['measured'])} s", "", "", "",
                    _v17(results, "rebuild_1m_seconds")))  # fmt: skip
        throughput("  same, vs reading the log", f["events_per_s"], "bare aiokafka consumer",
                   f.get("ceiling_bare_consumer_events_per_s"))  # fmt: skip
    missing("rebuild", "rebuild")
    b = results.get("brokers", {})
    for n in ("1", "3"):
        f = b.get(n)
        if isinstance(f, dict):
            ack = f.get("ack", {})
            out.append((f"ingest ack @{_num(ack.get('offered_per_s'))}/s, {n} broker(s)",
                        f"p50 {_num(ack.get('p50_ms'))} ms", f"p99 {_num(ack.get('p99_ms'))} ms",
                        f"max {_num(ack.get('max_ms'))} ms", "", ""))  # fmt: skip
            batch = _get(f, "e2e_batch", "events_per_s")
            out.append((f"e2e batch, {n} broker(s)", _num(batch, " ev/s"), "", "", "", ""))
    missing("brokers", "brokers")
    q = results.get("query", {})
    for key, target in (("totals", "totals_p99"), ("as_of", "time_travel_p99"),
                        ("known_at", "time_travel_p99")):  # fmt: skip
        f = q.get(key)
        if isinstance(f, dict) and "p99_ms" in f:
            ok = _get(q, "meets", f"{key}_p99")
            verdict = (
                _v17(results, f"{key}_p99")
                if key != "totals"
                else _verdict(ok, _get(q, "targets_ms", target))
            )
            out.append((f"query {key} ({f.get('readers')} readers)",
                        f"p50 {_num(f['p50_ms'])} ms", f"p99 {_num(f['p99_ms'])} ms",
                        f"{_num(f.get('per_s'))} req/s", "", verdict))  # fmt: skip
    missing("query", "query")
    t = results.get("tlog", {})
    f = t.get("tree")
    if isinstance(f, dict) and "tree_us_per_event" in f:
        out.append(("tlog tree per event (1,000/batch)", f"{_num(f['tree_us_per_event'])} µs",
                    "writer per event", f"{_num(f['writer_us_per_event_with_tree'])} µs",
                    f"{f['tree_share_of_writer']:.0%}", ""))  # fmt: skip
    for kind in ("inclusion", "consistency"):
        f = _get(t, "proofs", kind)
        if isinstance(f, dict) and "p99_ms" in f:
            out.append((f"tlog {kind} proof ({f.get('readers')} readers)",
                        f"p50 {_num(f['p50_ms'])} ms", f"p99 {_num(f['p99_ms'])} ms",
                        f"{_num(f.get('per_s'))} req/s", "",
                        _verdict(_get(t, "proofs", "meets_target"),
                                 _get(t, "proofs", "target_p99_ms"))))  # fmt: skip
    missing("tlog", "tlog")
    f = _get(results, "contract", "validate_event")
    if isinstance(f, dict):
        out.append(("contract parse_event", f"{f['parse_event_us']:.1f} µs", "json.loads",
                    f"{f['json_loads_us']:.1f} µs", f"{f['parse_event_vs_json_loads']:.1f}x",
                    _verdict(f.get("meets_target"), f.get("target_us"))))  # fmt: skip
    f = _get(results, "contract", "decoding")
    if isinstance(f, dict) and "prepare_record_us_per_event" in f:
        out.append((f"contract prepare_record, {f['per_submission']}/record",
                    f"{f['prepare_record_us_per_event']:.1f} µs/event CPU", "parse_event(bytes)",
                    f"{f['parse_event_bytes_us_per_event']:.1f} µs/event", "", ""))  # fmt: skip
    missing("contract", "contract")
    return out


def table(results: dict[str, Any]) -> str:
    """The rows as aligned text."""
    head: Row = ("figure", "measured", "ceiling", "ceiling value", "ratio", "target")
    body = rows(results)
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(6)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
             for r in [head, *body]]  # fmt: skip
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def targets_text(results: dict[str, Any]) -> str:
    """Issue 17's targets, one line each: the figure of this run, the bound, met or missed."""
    lines = ["issue 17 targets (figures of this run):"]
    for t in issue17(results).values():
        state = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
        value = "-" if t["measured"] is None else f"{t['measured']:,}"
        lines.append(f"  {state:<12} {t['what']}: {value} (target {t['target']})")
    return "\n".join(lines)
