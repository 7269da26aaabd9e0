"""Pure verification: recompute an operation's hash chain and totals from its event rows.

No I/O: the same code checks rows read from PostgreSQL and rows read from an exported bundle.
A row is any mapping with ``seq``, ``event_id``, ``body``, ``prev_hash`` and ``hash``; the
columns copied out of the body for querying (``type``, ``unit``...) are checked when present.
With ``body_text`` (the body's text as PostgreSQL keeps it), the hash is checked over those
very bytes, so nothing a JSON library or ``jsonb`` does to numbers or key order can stand between
what was hashed and what is checked; without it (an exported bundle), over the canonical form.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from schemas.canonical import (
    GENESIS_HASH,
    canonical_json,
    chain_digest,
    chain_hash,
    client_fields,
)
from schemas.errors import ContractError
from schemas.events import FieldEvent
from schemas.parsing import parse_event
from schemas.tally import (
    METRICS,
    Contribution,
    Counted,
    FoldState,
    Removal,
    RowKey,
    Totals,
    VoidApplied,
    VoidHeld,
    fact_of,
    fold,
)
from services.common import rollup

Row = Mapping[str, Any]
#: Keep reports readable when a whole chain was rewritten.
MAX_PROBLEMS = 100


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """One place where the stored chain disagrees with its recomputation."""

    seq: int
    reason: str


@dataclass(frozen=True, slots=True)
class MetricDiff:
    """A headline metric: recomputed from the events vs what the projection holds."""

    metric: str
    expected: int
    actual: int


@dataclass(frozen=True, slots=True)
class RowDiff:
    """One fine-grained totals row that differs."""

    metric: str
    detail: str
    area: str
    unit: str
    day: date
    expected: int
    actual: int


@dataclass(frozen=True, slots=True)
class DerivedDiff:
    """One stored derived row (``contributions`` or ``voids``) that the chain does not explain.

    ``event_id`` is the row's key (for a removal row, the void's id); ``seq`` the chain position
    of that event when it is in this operation's chain.
    """

    table: str
    event_id: str
    seq: int | None
    detail: str


@dataclass(frozen=True, slots=True)
class Projection:
    """What the ledger claims: totals rows, the chain head, optionally summed contributions,
    and optionally the stored derived rows themselves (each checked against the chain)."""

    totals: Mapping[RowKey, int]
    head: tuple[int, str] | None
    contributions: Mapping[RowKey, int] | None = None
    contribution_rows: Sequence[Row] | None = None
    void_rows: Sequence[Row] | None = None
    rollup_rows: Sequence[Row] | None = None
    # The log offset the operation's tally froze at (`tlog.closures`); None while open.
    closed_after_offset: int | None = None


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of a verification; ``ok`` only when chain and totals are both intact."""

    operation_id: str
    events: int
    chain_problems: list[ChainBreak]
    metric_diffs: list[MetricDiff]
    row_diffs: list[RowDiff]
    contribution_diffs: list[RowDiff] = field(default_factory=list)
    recomputed: dict[str, int] = field(default_factory=dict)
    derived_diffs: list[DerivedDiff] = field(default_factory=list)

    @property
    def first_broken_seq(self) -> int | None:
        return min((p.seq for p in self.chain_problems), default=None)

    @property
    def chain_intact(self) -> bool:
        return not self.chain_problems

    @property
    def totals_match(self) -> bool:
        return not (self.metric_diffs or self.row_diffs or self.contribution_diffs)

    @property
    def derived_match(self) -> bool:
        """Every stored contribution row and void status is what the chain's fold produces."""
        return not self.derived_diffs

    @property
    def ok(self) -> bool:
        return self.chain_intact and self.totals_match and self.derived_match

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (dates as ISO strings)."""

        def rows(diffs: list[RowDiff]) -> list[dict[str, Any]]:
            return [{**asdict(d), "day": d.day.isoformat()} for d in diffs]

        return {
            "operation_id": self.operation_id,
            "ok": self.ok,
            "events": self.events,
            "chain": {
                "intact": self.chain_intact,
                "first_broken_seq": self.first_broken_seq,
                "problems": [asdict(p) for p in self.chain_problems],
            },
            "totals": {
                "match": self.totals_match,
                "recomputed": self.recomputed,
                "metric_diffs": [asdict(d) for d in self.metric_diffs],
                "row_diffs": rows(self.row_diffs),
                "contribution_diffs": rows(self.contribution_diffs),
            },
            "derived": {
                "match": self.derived_match,
                "diffs": [asdict(d) for d in self.derived_diffs],
            },
        }


def _body_of(row: Row) -> dict[str, Any]:
    body = row["body"]
    return dict(body) if isinstance(body, Mapping) else {}


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


# Column -> how to read the same fact out of the hashed body. Filters and exports use the
# columns, so an edit to a column alone (which the hash does not cover) must be caught too.
_COPIES: dict[str, Callable[[dict[str, Any]], Any]] = {
    "event_id": lambda b: b.get("event_id"),
    "operation_id": lambda b: b.get("operation_id"),
    "type": lambda b: b.get("type"),
    "schema_version": lambda b: b.get("schema_version"),
    "principal": lambda b: b.get("principal"),
    "officer_id": lambda b: (b.get("actor") or {}).get("officer_id"),
    "unit": lambda b: (b.get("actor") or {}).get("unit"),
    "area": lambda b: (b.get("location") or {}).get("area"),
}
_TIME_COPIES = ("occurred_at", "recorded_at")


def _column_mismatches(row: Row, body: dict[str, Any]) -> list[str]:
    bad = []
    for column, read in _COPIES.items():
        if column in row and str(row[column]) != str(read(body)):
            bad.append(column)
    for column in _TIME_COPIES:
        if column in row and _when(row[column]) != _when(body.get(column)):
            bad.append(column)
    return bad


def _hash_matches(row: Row, body: dict[str, Any]) -> bool:
    prev, claimed = str(row["prev_hash"]), str(row["hash"])
    text = row.get("body_text")
    if isinstance(text, str):
        stored = text.encode()
        if chain_digest(stored, prev) == claimed:
            return True  # the bytes kept are the bytes hashed
        if stored == canonical_json(body):
            return False
        # Not in canonical form: a row stored while `body` was jsonb (which keeps no text) is
        # checked in the form it was hashed in.
    return chain_hash(body, prev) == claimed


def verify_chain(rows: Sequence[Row], head: tuple[int, str] | None) -> list[ChainBreak]:
    """Every place the chain is broken: gaps, edited bodies, wrong links, a moved head."""
    problems: list[ChainBreak] = []
    expected_seq, prev = 1, GENESIS_HASH
    for row in sorted(rows, key=lambda r: int(r["seq"])):
        seq = int(row["seq"])
        if seq > expected_seq:
            missing = f"{expected_seq}" if seq == expected_seq + 1 else f"{expected_seq}..{seq - 1}"
            problems.append(ChainBreak(expected_seq, f"seq {missing} missing (row deleted?)"))
        elif seq < expected_seq:
            problems.append(ChainBreak(seq, "seq repeated"))
        body = _body_of(row)
        if row["prev_hash"] != prev:
            problems.append(ChainBreak(seq, "prev_hash is not the previous row's hash"))
        if not _hash_matches(row, body):
            problems.append(ChainBreak(seq, "hash does not match the stored body (row edited?)"))
        bad = _column_mismatches(row, body)
        if bad:
            problems.append(ChainBreak(seq, f"column(s) {', '.join(bad)} differ from the body"))
        # Continue from the stored hash so one edit is reported once, not at every later row.
        expected_seq, prev = seq + 1, str(row["hash"])
    last = expected_seq - 1
    if head is None:
        if rows:
            problems.append(ChainBreak(1, "no chain head recorded for these events"))
    elif head[0] > last:
        why = f"chain head is at seq {head[0]}; rows after {last} missing"
        problems.append(ChainBreak(last + 1, why))
    elif head[0] < last:
        why = f"rows after the chain head (seq {head[0]}) (inserted?)"
        problems.append(ChainBreak(head[0] + 1, why))
    elif head[1] != prev:
        problems.append(ChainBreak(last, "chain head hash differs from the last row's hash"))
    return problems[:MAX_PROBLEMS]


def parse_bodies(rows: Iterable[Row]) -> tuple[list[FieldEvent], list[ChainBreak]]:
    """The events behind the rows, and a problem for each body that is not a valid event."""
    events: list[FieldEvent] = []
    problems: list[ChainBreak] = []
    for row in rows:
        try:
            events.append(parse_event(client_fields(_body_of(row))))
        except ContractError as exc:
            problems.append(ChainBreak(int(row["seq"]), f"body is not a valid event: {exc}"))
    return events, problems


def _metrics(rows: Mapping[RowKey, int]) -> dict[str, int]:
    out = dict.fromkeys(METRICS, 0)
    for (metric, *_), value in rows.items():
        out[metric] = out.get(metric, 0) + value
    return out


def compare_rows(expected: Mapping[RowKey, int], actual: Mapping[RowKey, int]) -> list[RowDiff]:
    """Rows whose values differ (a missing row counts as zero)."""
    diffs = []
    for key in sorted(set(expected) | set(actual)):
        e, a = expected.get(key, 0), actual.get(key, 0)
        if e != a:
            diffs.append(RowDiff(*key, expected=e, actual=a))
    return diffs


def compare_totals(
    recomputed: Totals, claimed: Mapping[RowKey, int]
) -> tuple[list[MetricDiff], list[RowDiff]]:
    """Headline and fine-row differences between a recomputation and a claimed projection."""
    actual = _metrics(claimed)
    metric_diffs = [
        MetricDiff(m, recomputed.metrics.get(m, 0), actual.get(m, 0))
        for m in sorted(set(recomputed.metrics) | set(actual), key=_metric_order)
        if recomputed.metrics.get(m, 0) != actual.get(m, 0)
    ]
    return metric_diffs, compare_rows(recomputed.rows, claimed)


def _metric_order(metric: str) -> tuple[int, str]:
    return (METRICS.index(metric) if metric in METRICS else len(METRICS), metric)


def verify_rows(
    operation_id: str,
    rows: Sequence[Row],
    projection: Projection,
    *,
    counted: Callable[[Row], bool] | None = None,
) -> VerifyReport:
    """Check the chain of ``rows`` and that folding them gives ``projection``'s totals.

    ``counted`` selects which rows enter the fold (a view such as as_of); default: all.
    """
    chain = verify_chain(rows, projection.head)
    derived = verify_derived(
        rows, projection.contribution_rows, projection.void_rows, projection.rollup_rows
    )
    if projection.closed_after_offset is not None:
        derived += after_close(rows, projection.closed_after_offset)
    events, invalid = parse_bodies(r for r in rows if counted is None or counted(r))
    recomputed = fold(events)
    metric_diffs, row_diffs = compare_totals(recomputed, projection.totals)
    contribution_diffs = (
        []
        if projection.contributions is None
        else compare_rows(projection.contributions, projection.totals)
    )
    return VerifyReport(
        operation_id=operation_id,
        events=len(rows),
        chain_problems=sorted(chain + invalid, key=lambda p: p.seq)[:MAX_PROBLEMS],
        metric_diffs=metric_diffs,
        row_diffs=row_diffs,
        contribution_diffs=contribution_diffs,
        recomputed=recomputed.metrics,
        derived_diffs=derived,
    )


def after_close(rows: Sequence[Row], last_offset: int) -> list[DerivedDiff]:
    """Chained events past the closure that the late rule (`services.ledger.plan.is_late`)
    would have kept out of the chain: anything but a void with a reason.

    The submitter's role is not in the chained body, so that half of the rule (an *admin's*
    void) is judged by the aggregator only; this catches a late event put into the chain.
    """
    out = []
    for r in rows:
        if r.get("kafka_offset") is None or int(r["kafka_offset"]) <= last_offset:
            continue
        body = _body_of(r)
        reason = (body.get("payload") or {}).get("reason")
        if body.get("type") == "event_voided" and isinstance(reason, str) and reason.strip():
            continue
        out.append(DerivedDiff(
            "events", str(r["event_id"]), int(r["seq"]),
            f"chained after the operation closed (offset {r['kafka_offset']} > {last_offset})"
            " but not a correction: it should be a late event, not counted",
        ))  # fmt: skip
    return out


# --- Derived rows: every contribution row and void status, recomputed from the chain --------


@dataclass(frozen=True, slots=True)
class _Expected:
    """A contribution row as the fold rule writes it."""

    c: Contribution
    occurred_at: datetime
    recorded_at: datetime | None


def _fields(c: Contribution, occurred_at: Any, recorded_at: Any) -> dict[str, Any]:
    return {
        "metric": c.metric,
        "detail": c.detail,
        "area": c.area,
        "unit": c.unit,
        "day": c.day,
        "delta": c.delta,
        "occurred_at": _when(occurred_at),
        "recorded_at": _when(recorded_at),
    }


def _stored(row: Row) -> dict[str, Any]:
    day = row["day"]
    return {
        "metric": row["metric"],
        "detail": row["detail"],
        "area": row["area"],
        "unit": row["unit"],
        "day": day if isinstance(day, date) else date.fromisoformat(str(day)),
        "delta": int(row["delta"]),
        "occurred_at": _when(row["occurred_at"]),
        "recorded_at": _when(row["recorded_at"]),
    }


def replay_derived(
    rows: Sequence[Row],
) -> tuple[dict[str, _Expected], dict[str, tuple[str, bool]]]:
    """The contribution rows (by the event id they are stored under) and the void rows (void id
    -> (target id, applied)) that the fold rule writes for these chain rows, in chain order.

    The aggregator applied `FoldState.add` in exactly this order (duplicates and conflicts never
    enter the chain), so replaying the chain reproduces each of its decisions. A void whose
    target is not in this chain is left out of the void map (see `verify_derived`).
    """
    state = FoldState()
    contributions: dict[str, _Expected] = {}
    voids: dict[str, tuple[str, bool]] = {}
    targets_here = {str(r["event_id"]) for r in rows}

    def removal(r: Removal) -> None:
        if r.contribution is not None:
            contributions[str(r.void.void_event_id)] = _Expected(
                r.contribution, r.occurred_at, r.recorded_at
            )
        voids[str(r.void.void_event_id)] = (str(r.target_id), True)

    for row in sorted(rows, key=lambda r: int(r["seq"])):
        body = _body_of(row)
        try:
            event = parse_event(client_fields(body))
        except ContractError:
            continue  # already named by the chain check
        recorded_at = _when(body.get("recorded_at")) or _when(row.get("recorded_at"))
        decision = state.add(fact_of(event, recorded_at))
        eid = str(event.event_id)
        if isinstance(decision, Counted):
            if decision.contribution is not None:
                contributions[eid] = _Expected(
                    decision.contribution, event.occurred_at, recorded_at
                )
            if decision.cancelled_by is not None:
                removal(decision.cancelled_by)
        elif isinstance(decision, VoidApplied):
            removal(decision.removal)
        elif isinstance(decision, VoidHeld) and str(decision.target_id) in targets_here:
            voids[eid] = (str(decision.target_id), False)
    return contributions, voids


def verify_derived(
    rows: Sequence[Row],
    contribution_rows: Sequence[Row] | None,
    void_rows: Sequence[Row] | None,
    rollup_rows: Sequence[Row] | None = None,
) -> list[DerivedDiff]:
    """Each stored contribution row, void status and rollup row compared with the chain's replay.

    A void whose target is outside this operation's chain depends on another operation's
    arrival order, so only an ``applied`` status is wrong for it (it can never apply).
    """
    if contribution_rows is None and void_rows is None and rollup_rows is None:
        return []
    expected, voids = replay_derived(rows)
    seq_of = {str(r["event_id"]): int(r["seq"]) for r in rows}
    diffs: list[DerivedDiff] = []

    def name(table: str, eid: str, detail: str) -> None:
        diffs.append(DerivedDiff(table, eid, seq_of.get(eid), detail))

    if contribution_rows is not None:
        stored = {str(r["event_id"]): _stored(r) for r in contribution_rows}
        for eid in sorted(set(expected) | set(stored), key=lambda e: (seq_of.get(e, 0), e)):
            want = expected.get(eid)
            have = stored.get(eid)
            if want is None:
                name("contributions", eid, "row has no event in the chain that produces it")
            elif have is None:
                name("contributions", eid, "row missing (the chain's event counts)")
            else:
                fields = _fields(want.c, want.occurred_at, want.recorded_at)
                bad = [f"{k} {have[k]} (chain says {v})" for k, v in fields.items() if have[k] != v]
                if bad:
                    name("contributions", eid, "; ".join(bad))
    if void_rows is not None:
        chain_voids = {
            str(r["event_id"]) for r in rows if _body_of(r).get("type") == "event_voided"
        }
        stored_voids = {
            str(r["void_event_id"]): (str(r["target_event_id"]), bool(r["applied"]))
            for r in void_rows
        }
        for vid in sorted(set(voids) | set(stored_voids), key=lambda e: (seq_of.get(e, 0), e)):
            want_v = voids.get(vid)
            have_v = stored_voids.get(vid)
            if want_v is None:
                if have_v is None:
                    continue
                if vid not in chain_voids:
                    name("voids", vid, "row has no void in the chain")
                elif have_v[1] or have_v[0] in seq_of:
                    held = "applied" if have_v[1] else "held"
                    name("voids", vid, f"stored {held}, but the chain's fold ignores this void")
            elif have_v is None:
                name("voids", vid, "row missing")
            elif have_v != want_v:
                status = {True: "applied", False: "held"}
                name(
                    "voids",
                    vid,
                    f"stored {status[have_v[1]]} on {have_v[0]},"
                    f" chain says {status[want_v[1]]} on {want_v[0]}",
                )
    if rollup_rows is not None:
        diffs.extend(_rollup_diffs(expected.values(), rollup_rows))
    return diffs[:MAX_PROBLEMS]


# --- Rollups: the time-travel sums, recomputed from the chain's contribution rows ------------

#: (grain, occurred bucket, recorded bucket, metric, detail, area, unit, day)
RollupKey = tuple[str, datetime, datetime, str, str, str, str, date]


def expected_rollups(contributions: Iterable[_Expected]) -> dict[RollupKey, int]:
    """What `services.common.rollup` sums for these contribution rows: per grain (hour, day),
    occurred and recorded bucket (UTC) and tally row, the sum of the deltas."""
    out: dict[RollupKey, int] = {}
    for e in contributions:
        if e.recorded_at is None:
            continue  # never stored: a contribution row always has its recorded_at
        c = e.c
        for grain in rollup.GRAINS:
            key = (
                grain,
                rollup.bucket(grain, e.occurred_at),
                rollup.bucket(grain, e.recorded_at),
                c.metric,
                c.detail,
                c.area,
                c.unit,
                c.day,
            )
            out[key] = out.get(key, 0) + c.delta
    return out


def _rollup_key(row: Row) -> RollupKey:
    day = row["day"]
    occurred, recorded = _when(row["occurred_bucket"]), _when(row["recorded_bucket"])
    assert occurred is not None and recorded is not None  # NOT NULL columns
    return (
        str(row["grain"]),
        occurred,
        recorded,
        str(row["metric"]),
        str(row["detail"]),
        str(row["area"]),
        str(row["unit"]),
        day if isinstance(day, date) else date.fromisoformat(str(day)),
    )


def _rollup_diffs(
    contributions: Iterable[_Expected], stored_rows: Sequence[Row]
) -> list[DerivedDiff]:
    """Each stored rollup row whose value is not the sum of the chain's contributions in its
    buckets (a missing row counts as zero), named by its key."""
    want = expected_rollups(contributions)
    have: dict[RollupKey, int] = {}
    for r in stored_rows:
        key = _rollup_key(r)
        have[key] = have.get(key, 0) + int(r["value"])
    diffs = []
    for key in sorted(set(want) | set(have)):
        w, h = want.get(key, 0), have.get(key, 0)
        if w != h:
            grain, occurred, recorded, metric, detail, area, unit, day = key
            name = (
                f"{grain} occurred {occurred.astimezone(UTC).isoformat()}"
                f" recorded {recorded.astimezone(UTC).isoformat()}"
                f" {metric}/{detail}/{area}/{unit}/{day.isoformat()}"
            )
            diffs.append(
                DerivedDiff("rollups", name, None, f"value {h} (chain's contributions sum to {w})")
            )
    return diffs
