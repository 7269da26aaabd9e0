"""`opsledger witness`: fetch each new checkpoint, check consistency, cosign or refuse loudly.

State lives in ``--state DIR`` (one file per operation: the last note it cosigned); forks are
written beside it as ``<operation>.fork.json`` with the evidence, and the command exits 1.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import httpx
import orjson
import typer

from services.tlog.keys import load_or_create
from services.tlog.verifier import COSIGNATURE_V1, VerificationError, VerifierKey
from services.tlog.witness import Fork, Outcome, step


def _get(client: httpx.Client, path: str, **params: int) -> dict[str, object] | None:
    response = client.get(path, params=params)
    if response.status_code == 404:
        return None
    response.raise_for_status()
    doc: dict[str, object] = response.json()
    return doc


def witness_once(
    client: httpx.Client,
    operation: str,
    state: Path,
    *,
    ledger_key: VerifierKey,
    key_file: Path,
    name: str,
) -> Outcome | None:
    """One round for one operation: None when the ledger has no checkpoint yet."""
    signer = load_or_create(key_file, name, COSIGNATURE_V1)
    latest = _get(client, f"/v1/operations/{operation}/checkpoint")
    if latest is None:
        return None
    offered = str(latest["checkpoint"])
    kept_file = state / f"{operation}.checkpoint"
    kept = kept_file.read_text() if kept_file.exists() else None
    proof: list[str] | None = None
    if kept is not None:
        old_size = int(kept.split("\n")[1])
        new_size = int(str(latest["size"]))
        if 0 < old_size < new_size:
            doc = _get(
                client, f"/v1/operations/{operation}/proof/consistency", to=new_size,
                **{"from": old_size},
            )  # fmt: skip
            proof = [str(p) for p in doc["proof"]] if doc else []  # type: ignore[attr-defined]
    outcome = step(
        kept, offered, proof, ledger_key=ledger_key,
        origin=f"{ledger_key.name}/{operation}", witness=signer, now=int(time.time()),
    )  # fmt: skip
    if outcome.cosigned is not None:
        state.mkdir(parents=True, exist_ok=True)
        tmp = kept_file.with_suffix(".tmp")
        tmp.write_text(outcome.cosigned)
        tmp.replace(kept_file)
    return outcome


def witness(
    url: Annotated[str, typer.Option(help="The ledger's query service, e.g. http://host:8081.")],
    operation: Annotated[list[str], typer.Option("--operation", help="Operation(s) to watch.")],
    ledger_key: Annotated[Path, typer.Option(help="File holding the ledger's verifier key.")],
    key: Annotated[Path, typer.Option(help="This witness's private key (created if missing).")],
    state: Annotated[Path, typer.Option(help="Directory of the checkpoints cosigned so far.")],
    name: Annotated[str, typer.Option(help="This witness's key name.")] = "witness.local",
    token: Annotated[
        str | None,
        typer.Option(envvar="OPSLEDGER_WITNESS_TOKEN", help="Bearer token (reader of the ops)."),
    ] = None,
    interval: Annotated[float, typer.Option(help="Seconds between rounds.", min=0.1)] = 5.0,
    once: Annotated[bool, typer.Option("--once", help="One round, then exit.")] = False,
) -> None:
    """Cosign each new checkpoint after checking it extends the last one; refuse forks."""
    vkey = VerifierKey.parse(ledger_key.read_text())
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
        while True:
            for op in operation:
                try:
                    outcome = witness_once(
                        client, op, state, ledger_key=vkey, key_file=key, name=name
                    )
                except Fork as fork:
                    evidence = state / f"{op}.fork.json"
                    state.mkdir(parents=True, exist_ok=True)
                    evidence.write_bytes(orjson.dumps(fork.evidence(), option=orjson.OPT_INDENT_2))
                    typer.echo(
                        f"FORK DETECTED for {op}: {fork.reason}."
                        f" NOT cosigned; evidence in {evidence}",
                        err=True,
                    )
                    raise typer.Exit(1) from None
                except (VerificationError, httpx.HTTPError) as exc:
                    typer.echo(f"{op}: refused, {type(exc).__name__}: {exc}", err=True)
                    if once:
                        raise typer.Exit(1) from None
                    continue
                if outcome is None:
                    typer.echo(f"{op}: no checkpoint yet", err=True)
                else:
                    typer.echo(f"{op}: {outcome.message} (size {outcome.checkpoint.size})")
            if once:
                return
            time.sleep(interval)


def register(app: typer.Typer) -> None:
    app.command("witness")(witness)
