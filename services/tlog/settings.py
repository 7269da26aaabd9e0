"""Settings of the transparency log: the ledger's signing key and how often it signs."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, model_validator

import services
from services.common.settings import CommonSettings, service_env

_alias = service_env("TLOG")


def _local_dir() -> Path:
    """The checkout's `.local/` (where `opsledger stack` keeps its state), else ./.local."""
    root = Path(services.__file__).resolve().parent.parent
    return (root if (root / "deploy" / "local").is_dir() else Path.cwd()) / ".local"


class TlogSettings(CommonSettings):
    """The ledger's checkpoint signing; environment names ``OPSLEDGER_TLOG_*``."""

    signing_key: SecretStr | None = Field(
        None,
        validation_alias=_alias("SIGNING_KEY"),
        description="The ledger's Ed25519 signer key, `PRIVATE+KEY+<name>+<id>+<base64>` "
        "(`opsledger keys generate`); required in production, a secret.",
    )
    key_file: Path = Field(
        default_factory=lambda: _local_dir() / "tlog" / "ledger.key",
        validation_alias=_alias("KEY_FILE"),
        description="Development only: where the signer key is generated on first use when "
        "no signing key is set.",
    )
    key_name: str = Field(
        "opsledger.local",
        pattern=r"^[^\s+]+$",
        validation_alias=_alias("KEY_NAME"),
        description="Name of a generated key; each operation's checkpoint origin is "
        "`<key name>/<operation>`.",
    )
    checkpoint_interval_s: float = Field(
        2.0,
        gt=0,
        le=3600,
        validation_alias=_alias("CHECKPOINT_INTERVAL_S"),
        description="At most one checkpoint per operation this often while events arrive.",
    )

    @model_validator(mode="after")
    def _key_in_production(self) -> TlogSettings:
        if self.env == "production" and self.signing_key is None:
            raise ValueError("OPSLEDGER_TLOG_SIGNING_KEY must be set in production")
        return self


@lru_cache(maxsize=1)
def tlog_settings() -> TlogSettings:
    """The process-wide transparency-log settings (read once from the environment)."""
    return TlogSettings()
