"""docs/configuration.md is generated from the settings classes and must not drift."""

from pathlib import Path

from services.common import config_doc

DOC = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"


def test_configuration_doc_is_current() -> None:
    assert DOC.read_text() == config_doc.render(), (
        "docs/configuration.md is stale: run "
        "`.venv/bin/python -m services.common.config_doc > docs/configuration.md`"
    )


def test_every_service_settings_class_is_documented() -> None:
    titles = [title for title, _, _ in config_doc.settings_classes()]
    assert titles == [
        "Every service",
        "Token issuer",
        "Ingest",
        "Aggregator",
        "Query",
        "Transparency log",
        "Local stack",
    ]


def test_env_names_include_conventional_aliases() -> None:
    names = config_doc.all_env_names()
    assert {"KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "OPSLEDGER_OIDC_ISSUER"} <= names
