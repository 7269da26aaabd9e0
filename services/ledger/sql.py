"""The batch writer's SQL: six round trips per batch, whatever its size.

1. ``claim_offsets``: create-or-lock this consumer's offset rows, returning ``last_offset``;
2. ``claim_heads``: create-or-lock the operations' chain heads, returning ``seq`` and ``hash``;
3. ``lookup``: the events (with their contributions) and voids the batch refers to;
4. binary ``COPY`` of the new events and of their contributions into their tables (the fastest
   write measured: bench/pg_ceiling.py; no temporary table, which the aggregator's role may
   not create);
5. ``apply``: every other write of the batch in one statement of data-modifying CTEs (the
   batch's contributions, read back by id, added to their time-travel rollups; voids,
   conflicts, totals, chain heads, offsets), then ``pg_notify``.

``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` both creates a missing row and locks an
existing one, returning its latest committed values, so (1) and (2) replace an insert plus a
``SELECT ... FOR UPDATE``. The CTEs of (4) touch disjoint rows, so that none needs to see
another's effect (they all run on one snapshot). Statements are templates over ``{s}``, the
schema, filled by `statements` with an identifier the writer has validated.
"""

from __future__ import annotations

from typing import Final

from services.common import rollup

# Column names and array types of each unnest, in parameter order.
EVENT_COLUMNS: Final = (
    ("event_id", "uuid"), ("operation_id", "text"), ("seq", "bigint"), ("type", "text"),
    ("schema_version", "int"), ("occurred_at", "timestamptz"), ("recorded_at", "timestamptz"),
    ("principal", "text"), ("officer_id", "text"), ("unit", "text"), ("area", "text"),
    ("body", "text"), ("content_hash", "text"), ("prev_hash", "text"), ("hash", "text"),
    ("kafka_partition", "int"), ("kafka_offset", "bigint"), ("kafka_index", "int"),
)  # fmt: skip
CONTRIBUTION_COLUMNS: Final = (
    ("event_id", "uuid"), ("operation_id", "text"), ("metric", "text"), ("detail", "text"),
    ("area", "text"), ("unit", "text"), ("day", "date"), ("delta", "bigint"),
    ("occurred_at", "timestamptz"), ("recorded_at", "timestamptz"),
)  # fmt: skip
VOID_COLUMNS: Final = (
    ("void_event_id", "uuid"), ("target_event_id", "uuid"), ("operation_id", "text"),
    ("applied", "bool"),
)  # fmt: skip
CONFLICT_COLUMNS: Final = (
    ("event_id", "uuid"), ("operation_id", "text"), ("stored_content_hash", "text"),
    ("content_hash", "text"), ("body", "text"), ("kafka_topic", "text"),
    ("kafka_partition", "int"), ("kafka_offset", "bigint"), ("kafka_index", "int"),
)  # fmt: skip
TOTALS_COLUMNS: Final = (
    ("operation_id", "text"), ("metric", "text"), ("detail", "text"), ("area", "text"),
    ("unit", "text"), ("day", "date"), ("value", "bigint"),
)  # fmt: skip
HEAD_COLUMNS: Final = (("operation_id", "text"), ("seq", "bigint"), ("hash", "text"))
OFFSET_COLUMNS: Final = (
    ("partition", "int"), ("last_offset", "bigint"), ("highwater", "bigint"),
    ("last_event_at", "timestamptz"),
)  # fmt: skip


class _Numbering:
    """Hands out $1, $2, ... in the order the writer passes its arguments."""

    def __init__(self) -> None:
        self.n = 0

    def param(self, pg_type: str) -> str:
        self.n += 1
        return f"${self.n}::{pg_type}"

    def unnest(self, columns: tuple[tuple[str, str], ...]) -> str:
        arrays = ", ".join(self.param(f"{t}[]") for _, t in columns)
        names = ", ".join(name for name, _ in columns)
        return f"unnest({arrays}) AS x({names})"


def _cols(columns: tuple[tuple[str, str], ...]) -> str:
    return ", ".join(name for name, _ in columns)


def _names(columns: tuple[tuple[str, str], ...], casts: dict[str, str] | None = None) -> str:
    casts = casts or {}
    return ", ".join(f"x.{name}{casts.get(name, '')}" for name, _ in columns)


def _apply(derived: bool) -> str:
    """The write-everything statement after the COPYs; its parameters in `APPLY_ORDER`.

    With ``derived`` false (a rebuild's bulk load), totals and rollups are left out: the
    shadow derives them from the contributions once the load is over.
    """
    n = _Numbering()
    voids = n.unnest(VOID_COLUMNS)
    held = n.param("uuid[]")
    conflicts = n.unnest(CONFLICT_COLUMNS)
    totals = n.unnest(TOTALS_COLUMNS)
    heads = n.unnest(HEAD_COLUMNS)
    group, topic = n.param("text"), n.param("text")
    offsets = n.unnest(OFFSET_COLUMNS)
    channel, notify = n.param("text"), n.param("text[]")
    contributed = n.param("uuid[]")
    cols = _cols
    # The batch's contribution rows, COPY'd just before in the same transaction.
    batch = f"(SELECT * FROM {{s}}.contributions WHERE event_id = ANY({contributed}))"  # noqa: S608
    derived_ctes = (
        f" ru AS ({rollup.upsert_sql('{s}', batch)}),"  # noqa: S608
        f" tt AS (INSERT INTO {{s}}.totals AS t ({cols(TOTALS_COLUMNS)})"
        f" SELECT {_names(TOTALS_COLUMNS)} FROM {totals}"
        " ON CONFLICT (operation_id, metric, detail, area, unit, day)"
        " DO UPDATE SET value = t.value + EXCLUDED.value),"
        if derived
        # empty arrays, typed:
        else f" tt AS (SELECT 1 FROM {totals} WHERE {contributed} IS NULL AND false),"  # noqa: S608
    )
    # Only constants and $n placeholders are interpolated here; values are bind parameters.
    return (
        f"WITH vi AS (INSERT INTO {{s}}.voids ({cols(VOID_COLUMNS)})"  # noqa: S608
        f" SELECT {_names(VOID_COLUMNS)} FROM {voids}),"
        f" va AS (UPDATE {{s}}.voids SET applied = true WHERE void_event_id = ANY({held})),"
        f" cf AS (INSERT INTO {{s}}.conflicts ({cols(CONFLICT_COLUMNS)})"
        f" SELECT {_names(CONFLICT_COLUMNS, {'body': '::jsonb'})} FROM {conflicts}"
        " ON CONFLICT DO NOTHING),"
        + derived_ctes
        + f" hd AS (UPDATE {{s}}.chain_heads AS h SET seq = x.seq, hash = x.hash,"  # noqa: S608
        f" updated_at = now() FROM {heads} WHERE h.operation_id = x.operation_id),"
        " os AS (UPDATE {s}.consumer_offsets AS o SET"
        " last_offset = GREATEST(o.last_offset, x.last_offset),"
        " highwater = COALESCE(x.highwater, o.highwater),"
        " last_event_at = GREATEST(o.last_event_at, x.last_event_at), updated_at = now()"
        f" FROM {offsets} WHERE o.consumer_group = {group} AND o.topic = {topic}"
        " AND o.partition = x.partition)"
        f" SELECT pg_notify({channel}, op) FROM unnest({notify}) AS op"
    )


#: The order of `apply`'s parameter groups (each table's arrays in its column order); the
#: events and contributions travel by COPY before it, ``contributed`` names the latter.
APPLY_ORDER: Final = (
    "voids", "held_voids", "conflicts", "totals", "heads", "group", "topic", "offsets",
    "channel", "notify", "contributed",
)  # fmt: skip

_CLAIM_OFFSETS = (
    "INSERT INTO {s}.consumer_offsets AS o (consumer_group, topic, partition, last_offset)"
    " SELECT $1, $2, p, -1 FROM {lock}unnest($3::int[]) AS p ORDER BY p"
    " ON CONFLICT (consumer_group, topic, partition) DO UPDATE SET last_offset = o.last_offset"
    " RETURNING partition, last_offset"
)

TEMPLATES: Final[dict[str, str]] = {
    "positions": "SELECT partition, last_offset FROM {s}.consumer_offsets"
    " WHERE consumer_group = $1 AND topic = $2",
    "claim_offsets": _CLAIM_OFFSETS.replace("{lock}", ""),
    # The live schema's writers first hold the rebuild swap lock shared ($4).
    "claim_offsets_locked": "WITH swap AS (SELECT pg_advisory_xact_lock_shared($4::bigint))"
    + " "
    + _CLAIM_OFFSETS.replace("{lock}", "swap, "),
    "claim_heads": "INSERT INTO {s}.chain_heads AS h (operation_id, seq, hash)"
    " SELECT op, 0, $2 FROM unnest($1::text[]) AS op ORDER BY op"
    " ON CONFLICT (operation_id) DO UPDATE SET seq = h.seq"
    " RETURNING operation_id, seq, hash",
    # The fold state of the batch's ids (`services.ledger.plan.fold_state`): their events
    # (a void's own contribution row is its removal, not what it counts), and the voids that
    # name them as target, with each void's recorded_at and chain position.
    "lookup": "SELECT true AS is_event, e.event_id AS id, e.content_hash, e.operation_id,"
    " e.type, e.occurred_at, e.recorded_at,"
    " (e.body->'payload'->>'voided_event_id')::uuid AS void_target,"
    " c.metric, c.detail, c.area, c.unit, c.day, c.delta,"
    " NULL::uuid AS void_event_id, NULL::bool AS applied, e.seq"
    " FROM {s}.events AS e LEFT JOIN {s}.contributions AS c"
    " ON c.event_id = e.event_id AND e.type <> 'event_voided'"
    " WHERE e.event_id = ANY($1::uuid[])"
    " UNION ALL"
    " SELECT false, v.target_event_id, NULL, v.operation_id, NULL, NULL, ve.recorded_at, NULL,"
    " NULL, NULL, NULL, NULL, NULL, NULL, v.void_event_id, v.applied, ve.seq"
    " FROM {s}.voids AS v JOIN {s}.events AS ve ON ve.event_id = v.void_event_id"
    " WHERE v.target_event_id = ANY($1::uuid[])",
    "apply": _apply(derived=True),
    "apply_bulk": _apply(derived=False),
}


def statements(quoted_schema: str) -> dict[str, str]:
    """Every statement for one schema (``quoted_schema`` already validated and quoted)."""
    # replace(), not formatting: the only text substituted is the validated identifier, and
    # every value travels as a bind parameter.
    return {name: sql.replace("{s}", quoted_schema) for name, sql in TEMPLATES.items()}
