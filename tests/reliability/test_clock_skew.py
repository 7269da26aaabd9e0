"""Devices whose clocks are days off: past times are accepted, far-future times refused (422)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from .checker import check
from .conftest import Cluster
from .oracle import Device, Oracle


async def test_clock_skew_accepted_or_refused_by_policy(cluster: Cluster, record_result) -> None:
    ingest = cluster.spawn("ingest")
    cluster.spawn("aggregator")
    ops = cluster.operations(2)
    (op_a, tok_a), (op_b, tok_b) = sorted(ops.items())
    skews = {
        "behind-3d": (op_a, tok_a, timedelta(days=-3)),
        "behind-40d": (op_b, tok_b, timedelta(days=-40)),
        "ahead-4min": (op_a, tok_a, timedelta(minutes=4)),
        "ahead-2d": (op_b, tok_b, timedelta(days=2)),
        "exact": (op_a, tok_a, timedelta(0)),
    }
    devices = [
        Device(name, op, tok, clock_skew=skew, seed=i, invalid_ratio=0.0)
        for i, (name, (op, tok, skew)) in enumerate(skews.items())
    ]
    oracle = Oracle([ingest.url])
    fates = await asyncio.wait_for(oracle.run(devices, events=120), 120)

    by_device: dict[str, dict[str, int]] = {}
    for eid, event in fates.sent.items():
        fate = "acked" if eid in fates.acked else "refused" if eid in fates.refused else "open"
        counts = by_device.setdefault(event["source"]["device_id"], {})
        counts[fate] = counts.get(fate, 0) + 1
    assert by_device["ahead-2d"].get("acked", 0) == 0, by_device
    assert set(
        fates.refused[e] for e, ev in fates.sent.items() if ev["source"]["device_id"] == "ahead-2d"
    ) == {422}
    for name in ("behind-3d", "behind-40d", "ahead-4min", "exact"):
        assert by_device[name].get("refused", 0) == 0, by_device
        assert by_device[name]["acked"] >= 100, by_device

    report = await check(
        fates,
        dsn=cluster.dsn,
        bootstrap=cluster.bootstrap,
        topic=cluster.topic,
        groups=[cluster.group],
    )
    record_result(report, by_device=by_device)
    assert report.ok, report.explain()

    # The checker itself must be able to fail: an acknowledged event it cannot find is "lost".
    ghost = devices[0].event()
    fates.sent[ghost["event_id"]] = fates.acked[ghost["event_id"]] = ghost
    broken = await check(
        fates,
        dsn=cluster.dsn,
        bootstrap=cluster.bootstrap,
        topic=cluster.topic,
        groups=[cluster.group],
    )
    assert broken.lost == [ghost["event_id"]] and broken.missing_on_topic == [ghost["event_id"]]
    assert broken.totals_diff and not broken.ok
