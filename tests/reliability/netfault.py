"""Cut one broker of a local cluster off from the others and from the clients, then heal it.

nftables, on this machine's loopback only: every cluster node listens on its own 127.0.0.x
address and runs under a group id of its own (`services.stack.kafka.KafkaPart.gid`), so three
rules in an output hook of a table of our own isolate it completely:

* nothing reaches its listeners (destination = its address and ports);
* nothing leaves its listeners (source = its address and ports);
* nothing leaves its own sockets (`meta skgid`): its connections to the other nodes.

Packets are dropped, not refused, so peers see what a real partition looks like: silence until
their timeouts. Healing deletes the table; nothing else on the machine is touched.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

NFT_TIMEOUT_S = 10


class NftablesMissing(RuntimeError):
    """`nft` is not installed (`make test-reliability` installs Debian's nftables)."""


def nft(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("nft") or "/usr/sbin/nft"
    if not shutil.which(binary):
        raise NftablesMissing("`nft` not found: run `make nftables` (Debian package nftables)")
    return subprocess.run(  # noqa: S603 - fixed binary, arguments built here
        [binary, *args], input=stdin, capture_output=True, text=True,
        timeout=NFT_TIMEOUT_S, check=False,
    )  # fmt: skip


@dataclass(frozen=True)
class Isolation:
    """One node's cut: its address, its two ports and its group id."""

    host: str
    ports: tuple[int, int]
    gid: int

    @property
    def table(self) -> str:
        return f"opsledger_cut_{self.ports[0]}"

    def ruleset(self) -> str:
        ports = ", ".join(str(p) for p in self.ports)
        return (
            f"table inet {self.table} {{\n"
            f"  chain out {{\n"
            f"    type filter hook output priority -10; policy accept;\n"
            f"    ip daddr {self.host} tcp dport {{ {ports} }} drop\n"
            f"    ip saddr {self.host} tcp sport {{ {ports} }} drop\n"
            f"    meta skgid {self.gid} drop\n"
            f"  }}\n"
            f"}}\n"
        )

    def cut(self) -> None:
        if not self.host.startswith("127."):
            raise ValueError(f"refusing to filter a non-loopback address {self.host}")
        self.heal()
        result = nft("-f", "-", stdin=self.ruleset())
        if result.returncode != 0:
            raise RuntimeError(f"nft could not add {self.table}: {result.stderr.strip()}")

    def heal(self) -> None:
        """Remove the table (a no-op when there is none)."""
        if nft("list", "table", "inet", self.table).returncode == 0:
            result = nft("delete", "table", "inet", self.table)
            if result.returncode != 0:
                raise RuntimeError(f"nft could not delete {self.table}: {result.stderr.strip()}")

    def active(self) -> bool:
        return nft("list", "table", "inet", self.table).returncode == 0
