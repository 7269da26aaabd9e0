"""Render docs/configuration.md from the settings classes themselves, so the two cannot drift.

`python -m services.common.config_doc > docs/configuration.md` regenerates it; a unit test
fails when the committed file differs.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

# (title, module, class, what it configures); each service's class extends CommonSettings, so
# only the fields a class adds are listed under it.
SECTIONS: tuple[tuple[str, str, str, str], ...] = (
    ("Every service", "services.common.settings", "CommonSettings", "read by every process"),
    (
        "Token issuer",
        "services.common.issuer_settings",
        "IssuerSettings",
        "read by ingest and query, which verify bearer tokens (docs/deployment.md: Entra ID, "
        "Keycloak)",
    ),
    ("Ingest", "services.ingest.settings", "IngestSettings", "`opsledger serve ingest`"),
    (
        "Aggregator",
        "services.aggregator.settings",
        "AggregatorSettings",
        "`opsledger serve aggregator`",
    ),
    ("Query", "services.query.settings", "QuerySettings", "`opsledger serve query`"),
    (
        "Transparency log",
        "services.tlog.settings",
        "TlogSettings",
        "the aggregator (checkpoints) and `opsledger checkpoint | prove | export | verify`",
    ),
    ("Local stack", "services.stack.settings", "StackSettings", "`opsledger stack ...`"),
)


REPO_ROOT = Path(__file__).resolve().parents[2]


def settings_classes() -> list[tuple[str, type[BaseSettings], str]]:
    """The documented settings classes that exist, in document order."""
    out = []
    for title, module, name, what in SECTIONS:
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ModuleNotFoundError, AttributeError):
            continue
        out.append((title, cls, what))
    return out


def env_names(cls: type[BaseSettings], name: str, info: FieldInfo) -> list[str]:
    """Environment variable names that set field ``name`` of ``cls``."""
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return [str(c) for c in alias.choices]
    if isinstance(alias, str):
        return [alias]
    prefix = str(cls.model_config.get("env_prefix", ""))
    return [(prefix + name).upper()]


def all_env_names() -> set[str]:
    """Every environment variable any settings class reads (used by deployment checks)."""
    names: set[str] = set()
    for _, cls, _ in settings_classes():
        for name, info in cls.model_fields.items():
            names.update(env_names(cls, name, info))
    return names


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "(required)"
    value: Any = info.get_default(call_default_factory=True)
    if isinstance(value, SecretStr):
        return "(development placeholder; must be set in production)"
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    # Paths derived from where the checkout and the home directory are: shown portably.
    text = str(value).replace(str(REPO_ROOT), "<repo>").replace(str(Path.home()), "~")
    return f"`{text}`"


def render() -> str:
    lines = [
        "# Configuration",
        "",
        "Every setting is an environment variable. This page is generated from the settings",
        "classes (`python -m services.common.config_doc > docs/configuration.md`); a test fails",
        "when it is out of date. `KAFKA_BOOTSTRAP_SERVERS` and `DATABASE_URL` are also read under",
        'their conventional names, which `eval "$(opsledger stack env)"` sets.',
        "",
    ]
    base_fields: set[str] = set()
    for title, cls, what in settings_classes():
        own = {n: f for n, f in cls.model_fields.items() if n not in base_fields}
        if cls.__name__ in ("CommonSettings", "IssuerSettings"):
            base_fields |= set(cls.model_fields)
        lines += [f"## {title}", "", f"`{cls.__module__}.{cls.__name__}`, {what}.", ""]
        lines += ["| variable | default | meaning |", "| --- | --- | --- |"]
        for name, info in own.items():
            env = " / ".join(f"`{e}`" for e in env_names(cls, name, info))
            desc = (info.description or "").replace("|", "\\|")
            lines.append(f"| {env} | {_default(info)} | {desc} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(), end="")
