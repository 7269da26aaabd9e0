"""The press-release bullet list of a tally, as a pure function of its metrics and details.

- 52 warrants executed
- 56 adults arrested
- 3,586 wraps of crack, heroin and cocaine seized
- £79,245.60 in cash seized
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# Substances in the order a press release names them (the contract's order).
SUBSTANCES: tuple[str, ...] = ("crack", "heroin", "cocaine", "cannabis", "other")
# (metric, singular, plural): "1 warrant executed", "52 warrants executed".
_PHRASES: tuple[tuple[str, str, str], ...] = (
    ("warrants_executed", "warrant executed", "warrants executed"),
    ("arrests", "arrest", "arrests"),
    ("drug_wraps_seized", "drug wrap seized", "drug wraps seized"),
    ("mobile_phones_seized", "mobile phone seized", "mobile phones seized"),
    ("weapons_seized", "weapon seized", "weapons seized"),
    ("cash_seized_pence", "", ""),
    ("schools_visited", "school visited", "schools visited"),
    ("vulnerable_people_engaged", "vulnerable person engaged", "vulnerable people engaged"),
    ("other_items_seized", "other item seized", "other items seized"),
)

Details = Mapping[str, Mapping[str, int]]  # metric -> detail (age band, substance) -> value


def format_summary(metrics: Mapping[str, int], details: Details | None = None) -> str:
    """Markdown bullets for every non-zero metric; ``details`` names drugs and age bands."""
    details = details or {}
    lines = []
    for metric, one, many in _PHRASES:
        n = int(metrics.get(metric, 0))
        if n == 0:
            continue
        if metric == "cash_seized_pence":
            text = f"{pounds(n)} in cash seized"
        elif metric == "arrests":
            text = _arrests(n, details.get("arrests", {}))
        elif metric == "drug_wraps_seized":
            text = _wraps(n, details.get("drug_wraps_seized", {}))
        else:
            text = f"{n:,} {one if n == 1 else many}"
        lines.append(f"- {text}")
    if not lines:
        return "- nothing recorded yet\n"
    return "\n".join(lines) + "\n"


def pounds(pence: int) -> str:
    """Pence as pounds to the penny: 7924560 -> '£79,245.60'."""
    sign = "-" if pence < 0 else ""
    whole, rest = divmod(abs(pence), 100)
    return f"{sign}£{whole:,}.{rest:02d}"


def _arrests(n: int, bands: Mapping[str, int]) -> str:
    adults, youths = int(bands.get("adult", 0)), int(bands.get("youth", 0))
    if bands and adults == n:
        return f"{n:,} {'adult' if n == 1 else 'adults'} arrested"
    if bands and youths == n:
        return f"{n:,} {'young person' if n == 1 else 'young people'} arrested"
    if adults and youths and adults + youths == n:
        return f"{n:,} people arrested ({adults:,} adults, {youths:,} young people)"
    return f"{n:,} {'person' if n == 1 else 'people'} arrested"


def _wraps(n: int, substances: Mapping[str, int]) -> str:
    named = [s for s in _ordered(substances) if substances[s] > 0]
    if not named:
        return f"{n:,} {'drug wrap' if n == 1 else 'drug wraps'} seized"
    words = ["other drugs" if s == "other" else s for s in named]
    return f"{n:,} {'wrap' if n == 1 else 'wraps'} of {_join(words)} seized"


def _ordered(substances: Iterable[str]) -> list[str]:
    known = [s for s in SUBSTANCES if s in substances]
    return known + sorted(s for s in substances if s not in SUBSTANCES)


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def details_from_groups(groups: Iterable[Mapping[str, object]]) -> dict[str, dict[str, int]]:
    """The ``details`` of format_summary from a totals answer grouped by ``item``."""
    out: dict[str, dict[str, int]] = {}
    for group in groups:
        item = group.get("item")
        metrics = group.get("metrics")
        if not item or not isinstance(metrics, Mapping):
            continue
        for metric, value in metrics.items():
            if value:
                out.setdefault(metric, {})[str(item)] = int(value)
    return out


def provenance(
    operation_id: str, note: str | None, size: int, events: int, metrics: Mapping[str, int]
) -> str:
    """The markdown that lets a reader check the figures: the signed checkpoint, the proofs.

    Empty when the ledger has not signed a checkpoint of the operation yet.
    """
    if note is None:
        return ""
    covered = (
        f"its Merkle tree of all {size:,} events"
        if size >= events
        else f"its Merkle tree of the first {size:,} of {events:,} events (the next checkpoint"
        " follows within seconds)"
    )
    quoted = "".join(f"    {line}\n" for line in note.splitlines())
    proofs = "".join(
        f"- {metric}: `opsledger prove --operation {operation_id} --metric {metric}`\n"
        for metric, _, _ in _PHRASES
        if metrics.get(metric)
    )
    return (
        f"\nThese figures are the fold of the ledger's events; the ledger signed {covered}"
        " (C2SP checkpoint, Ed25519):\n\n"
        f"{quoted}\n"
        "The events behind each figure, with their inclusion proofs (each file checks offline"
        " with `python verifier.py FILE --public-key KEY`, the key from `GET /v1/keys`):\n\n"
        f"{proofs}"
    )


def summary_document(
    operation_id: str,
    metrics: Mapping[str, int],
    details: Details,
    checkpoint: Mapping[str, object] | None,
    events: int,
    operation: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """The JSON summary: the operation (title, areas, dates, status), figures, the bullets, the
    signed checkpoint and how to prove each."""
    return {
        "operation_id": operation_id,
        "operation": None if operation is None else dict(operation),
        "metrics": dict(metrics),
        "details": {k: dict(v) for k, v in details.items()},
        "markdown": format_summary(metrics, details),
        "events": events,
        "checkpoint": checkpoint,
        "prove": {
            metric: f"opsledger prove --operation {operation_id} --metric {metric}"
            for metric, value in metrics.items()
            if value
        },
    }
