"""`make bench` prints the cost of three brokers beside one broker."""

from bench.report import table


def test_one_and_three_brokers_side_by_side() -> None:
    layout = {
        "ack": {"offered_per_s": 200, "p50_ms": 2.5, "p99_ms": 9.0, "max_ms": 20.0},
        "e2e_batch": {"events_per_s": 15000},
    }
    slower = {**layout, "ack": {**layout["ack"], "p50_ms": 4.0}}
    text = table({"ceilings": {}, "brokers": {"1": layout, "3": slower}})
    lines = [line for line in text.splitlines() if "broker" in line]
    assert lines[0].startswith("ingest ack @200/s, 1 broker(s)") and "p50 2.5 ms" in lines[0]
    assert lines[1].startswith("e2e batch, 1 broker(s)") and "15,000 ev/s" in lines[1]
    assert lines[2].startswith("ingest ack @200/s, 3 broker(s)") and "p50 4.0 ms" in lines[2]
