"""docker-compose.yml against the Compose Specification, and the topology it promises.

No Docker engine is needed: the file is checked against the Compose Specification JSON Schema
vendored by check-jsonschema (``check_jsonschema/builtin_schemas/vendor/compose-spec.json``,
taken by check-jsonschema from the compose-spec/compose-spec repository), both as written and
after `${VAR}` interpolation the way Compose does it, in the one-broker and three-broker modes.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jsonschema
import pytest
import yaml

from services.stack import certs, secure

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
THREE_BROKERS_ENV = ROOT / "deploy" / "compose" / "three-brokers.env"
SECRETS_EXAMPLE = ROOT / "deploy" / "compose" / "secrets.env.example"
OPSLEDGER_SERVICES = ("migrate", "ingest", "aggregator", "query")
PARTITIONS = 12
SCHEMA_IN_DIST = "check_jsonschema/builtin_schemas/vendor/compose-spec.json"

_VAR = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)"
    r"(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariable(Exception):
    """A `${NAME:?message}` whose NAME is unset or empty: Compose refuses the file."""


def interpolate_str(text: str, env: Mapping[str, str]) -> str:
    """Compose's variable interpolation for one string ($$, ${V}, ${V:-d}, ${V-d}, ${V:?e}...)."""

    def one(m: re.Match[str]) -> str:
        if m["escaped"]:
            return "$"
        name = m["braced"] or m["plain"]
        op, arg = m["op"], m["arg"] or ""
        value = env.get(name)
        unset_or_empty = value is None or value == ""
        if op in (":-", "-"):
            missing = unset_or_empty if op == ":-" else value is None
            return arg if missing else str(value)
        if op in (":?", "?"):
            missing = unset_or_empty if op == ":?" else value is None
            if missing:
                raise MissingVariable(f"{name}: {arg}")
            return str(value)
        if op in (":+", "+"):
            present = not unset_or_empty if op == ":+" else value is not None
            return arg if present else ""
        return value or ""

    return _VAR.sub(one, text)


def interpolate(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate_str(node, env)
    if isinstance(node, list):
        return [interpolate(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    return node


def read_env_file(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


def fake_secrets() -> dict[str, str]:
    return {name: f"{name.lower()}-{'x' * 40}" for name in read_env_file(SECRETS_EXAMPLE)}


def load_compose(mode: str | None = None) -> dict[str, Any]:
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    if mode is None:
        return raw
    env = fake_secrets()
    if mode == "three-brokers":
        env |= read_env_file(THREE_BROKERS_ENV)
    return interpolate(raw, env)


def active_services(doc: dict[str, Any], profiles: set[str]) -> dict[str, Any]:
    return {
        name: svc
        for name, svc in doc["services"].items()
        if not svc.get("profiles") or profiles & set(svc["profiles"])
    }


def env_of(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        return dict(item.partition("=")[::2] for item in environment)
    return {key: "" if value is None else str(value) for key, value in environment.items()}


def compose_schema_path() -> Path:
    # Located through the distribution, not imported: importing check_jsonschema loads its CLI,
    # which needs a click older than the one pinned here.
    dist = metadata.distribution("check-jsonschema")
    return Path(str(dist.locate_file(SCHEMA_IN_DIST)))


def compose_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(compose_schema_path().read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


VALIDATOR = compose_validator()


def schema_errors(doc: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(doc)
    ]


# --- the specification ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [None, "one-broker", "three-brokers"])
def test_compose_file_is_valid_against_the_compose_specification(mode: str | None) -> None:
    assert schema_errors(load_compose(mode)) == []


def _unknown_service_key(doc: dict[str, Any]) -> None:
    doc["services"]["ingest"]["healthcheck_typo"] = {"test": ["CMD", "true"]}


def _bad_depends_on_condition(doc: dict[str, Any]) -> None:
    doc["services"]["query"]["depends_on"] = {"postgres": {"condition": 7}}


def _ports_as_mapping(doc: dict[str, Any]) -> None:
    doc["services"]["ingest"]["ports"] = {"8080": 8080}


def _unknown_top_level_key(doc: dict[str, Any]) -> None:
    doc["servics"] = {}


@pytest.mark.parametrize(
    "break_it",
    [_unknown_service_key, _bad_depends_on_condition, _ports_as_mapping, _unknown_top_level_key],
)
def test_the_schema_rejects_a_broken_compose_file(break_it: Any) -> None:
    doc = copy.deepcopy(load_compose("one-broker"))
    break_it(doc)
    assert schema_errors(doc), "the validator accepted a deliberately broken compose file"


# --- secrets and production mode ----------------------------------------------------------------


@pytest.mark.parametrize("secret", sorted(read_env_file(SECRETS_EXAMPLE)))
def test_compose_refuses_to_start_without_each_secret(secret: str) -> None:
    env = fake_secrets()
    env[secret] = ""
    with pytest.raises(MissingVariable, match=secret):
        interpolate(yaml.safe_load(COMPOSE_FILE.read_text()), env)


def test_every_secret_looking_variable_is_required_not_defaulted() -> None:
    raw = load_compose()
    for name, svc in raw["services"].items():
        for key, value in env_of(svc).items():
            if re.search(r"SECRET|PASSWORD", key) or "PASSWORD" in value:
                assert re.search(r"\$\{[A-Z_]+:\?", value), f"{name}.{key} has a usable default"


def test_services_run_in_production_mode_by_default() -> None:
    doc = load_compose("one-broker")
    for name in OPSLEDGER_SERVICES:
        assert env_of(doc["services"][name])["OPSLEDGER_ENV"] == "production", name


# --- topology -----------------------------------------------------------------------------------


def test_dependencies_exist_and_wait_for_health_or_completion() -> None:
    doc = load_compose("three-brokers")
    services = doc["services"]
    for name, svc in services.items():
        depends = svc.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on must name its conditions"
        for target, rule in depends.items():
            assert target in services, f"{name} depends on unknown service {target}"
            condition = rule["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no healthcheck"
            else:
                assert condition == "service_completed_successfully", (name, target)
                assert services[target].get("restart") == "no", f"{target} is not a one-shot"


def test_long_running_services_have_healthchecks() -> None:
    for name, svc in load_compose("three-brokers")["services"].items():
        if svc.get("restart") != "no":
            test = svc.get("healthcheck", {}).get("test")
            assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"


def test_http_services_check_readiness_on_the_port_they_serve() -> None:
    services = load_compose("one-broker")["services"]
    for name in ("ingest", "aggregator", "query"):
        command = services[name]["command"]
        port = command[command.index("--port") + 1]
        assert f"127.0.0.1:{port}/readyz" in " ".join(services[name]["healthcheck"]["test"])


def test_the_aggregator_can_be_scaled() -> None:
    services = load_compose("one-broker")["services"]
    aggregator = services["aggregator"]
    assert "container_name" not in aggregator
    assert "ports" not in aggregator
    assert int(aggregator.get("scale", 1)) <= PARTITIONS
    # No fixed name anywhere: two stacks (or projects) on one host must not collide.
    assert not [name for name, svc in services.items() if "container_name" in svc]


def test_ingest_needs_kafka_only() -> None:
    services = load_compose("one-broker")["services"]
    assert set(services["ingest"]["depends_on"]) == {"kafka-init"}
    assert "OPSLEDGER_DATABASE_URL" not in env_of(services["ingest"])


def test_each_service_uses_its_own_database_role() -> None:
    services = load_compose("one-broker")["services"]
    roles_sql = (ROOT / "deploy" / "postgres" / "roles.sql").read_text()
    expected = {
        "migrate": "opsledger_owner",
        "aggregator": "opsledger_aggregator",
        "query": "opsledger_query",
    }
    for name, role in expected.items():
        url = env_of(services[name])["OPSLEDGER_DATABASE_URL"]
        assert url.startswith(f"postgresql://{role}:"), name
        assert f"CREATE ROLE {role} LOGIN" in roles_sql


def test_one_broker_by_default() -> None:
    doc = load_compose("one-broker")
    services = active_services(doc, set())
    brokers = [svc for svc in services.values() if "KAFKA_NODE_ID" in env_of(svc)]
    assert len(brokers) == 1
    env = env_of(brokers[0])
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "1"
    assert env_of(services["kafka-init"])["REPLICATION"] == "1"


def test_three_broker_profile_replicates_three_ways_with_two_in_sync() -> None:
    mode_env = read_env_file(THREE_BROKERS_ENV)
    doc = load_compose("three-brokers")
    services = active_services(doc, set(mode_env["COMPOSE_PROFILES"].split(",")))
    brokers = {
        name: env_of(svc) for name, svc in services.items() if "KAFKA_NODE_ID" in env_of(svc)
    }
    assert len(brokers) == 3
    voters = {f"{env['KAFKA_NODE_ID']}@{name}:9093" for name, env in brokers.items()}
    for env in brokers.values():
        assert set(env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")) == voters
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
    assert len({env["CLUSTER_ID"] for env in brokers.values()}) == 1
    init = env_of(services["kafka-init"])
    assert (init["REPLICATION"], init["MIN_ISR"], init["PARTITIONS"]) == ("3", "2", "12")
    internal = {f"{name}:19092" for name in brokers}
    for name in ("ingest", "aggregator"):
        env = env_of(services[name])
        assert set(env["OPSLEDGER_KAFKA_BOOTSTRAP_SERVERS"].split(",")) == internal
        assert env["OPSLEDGER_TOPIC_REPLICATION"] == "3"


def test_published_ports_are_the_documented_ones() -> None:
    services = load_compose("three-brokers")["services"]
    published = {
        name: sorted(str(p) for p in svc.get("ports", [])) for name, svc in services.items()
    }
    assert published["ingest"] == ["8080:8080"]
    assert published["query"] == ["8081:8081"]
    assert published["postgres"] == ["127.0.0.1:5432:5432"]
    assert published["kafka"] == ["127.0.0.1:9092:9092"]
    docs = (ROOT / "docs" / "deployment.md").read_text()
    for port in ("8080", "8081", "8082", "5432", "9092", "19092"):
        assert port in docs, f"port {port} is not documented"


def test_images_are_pinned_and_mounted_files_exist() -> None:
    for name, svc in load_compose("three-brokers")["services"].items():
        image = svc["image"]
        if "build" not in svc:
            assert re.fullmatch(r"[\w./-]+:\d+(\.\d+)+[\w.-]*", image), f"{name}: {image}"
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith(GENERATED):  # `opsledger stack certs` writes these
                continue
            if source.startswith("./"):
                assert (ROOT / source).is_file(), f"{name} mounts missing {source}"


def test_ingest_and_query_need_an_identity_provider_and_hold_no_token_secret() -> None:
    raw = COMPOSE_FILE.read_text()
    assert "JWT" not in raw
    services = load_compose("one-broker")["services"]
    for name in ("ingest", "query"):
        env = env_of(services[name])
        assert env["OPSLEDGER_OIDC_ISSUER"] == fake_secrets()["OPSLEDGER_OIDC_ISSUER"]
    assert re.search(r"OPSLEDGER_OIDC_ISSUER: \$\{OPSLEDGER_OIDC_ISSUER:\?", raw)


def test_metrics_are_served_on_a_port_that_is_not_published() -> None:
    services = load_compose("three-brokers")["services"]
    for name, public in (("ingest", "8080"), ("query", "8081")):
        metrics = env_of(services[name])[f"OPSLEDGER_{name.upper()}_METRICS_PORT"]
        assert metrics != public
        published = [str(p).split(":")[-1] for p in services[name].get("ports", [])]
        assert metrics not in published


# --- secure as shipped: the settings of services/stack/secure.py, proven there on real servers ---

KAFKA_NODES = ("kafka", "kafka-2", "kafka-3")
GENERATED = "./deploy/compose/secrets/"


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path of the service's bind mounts."""
    found = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            found[target] = source
    return found


def test_no_setting_says_a_connection_may_be_insecure() -> None:
    raw = COMPOSE_FILE.read_text()
    for name in secure.INSECURE_SETTINGS:
        assert name not in raw
    for name, svc in load_compose("three-brokers")["services"].items():
        for port in svc.get("ports", []):
            if name.startswith("kafka") or name == "postgres":
                assert str(port).startswith("127.0.0.1:"), (name, port)


def test_kafka_nodes_run_exactly_the_secure_broker_settings() -> None:
    """Every KAFKA_* security variable of a node is one of secure.py's broker properties with
    its value, and every one of those is set: no drift in either direction."""
    services = load_compose("three-brokers")["services"]
    expected = {secure.compose_env_name(k): v for k, v in secure.BROKER_SECURITY.items()}
    for name in KAFKA_NODES:
        svc = services[name]
        env = env_of(svc)
        assert svc["entrypoint"] == ["/bin/bash", "/opsledger/compose-start.sh"]
        security = {
            k: v for k, v in env.items()
            if re.search(r"SSL|SASL|SECURITY|INTER_BROKER", k) and "JAAS" not in k
        }  # fmt: skip
        files = {secure.compose_env_name(k) for k in secure.BROKER_FILES}
        assert {k: v for k, v in security.items() if k not in files} == expected
        files_mounted = mounts(svc)
        assert files_mounted[env["KAFKA_SSL_KEYSTORE_LOCATION"]] == GENERATED + "kafka.pem"
        assert files_mounted[env["KAFKA_SSL_TRUSTSTORE_LOCATION"]] == GENERATED + "ca.pem"
        # Each SASL listener has a login entry: the brokers' own SCRAM user.
        sasl_listeners = [
            entry.split(":")[0]
            for entry in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
            if entry.endswith(":SASL_SSL")
        ]
        for listener in sasl_listeners:
            jaas = env[f"KAFKA_LISTENER_NAME_{listener}_SCRAM___SHA___512_SASL_JAAS_CONFIG"]
            assert 'username="opsledger-broker"' in jaas
            assert 'password="kafka_broker_scram_password-' in jaas
        users = dict(pair.split("=", 1) for pair in env["SCRAM_USERS"].split(","))
        assert set(users) == set(secure.KAFKA_USERS)
        for user, secret in secure.KAFKA_USERS.items():
            assert users[user] == fake_secrets()[secret]
    start = (ROOT / "deploy/kafka/compose-start.sh").read_text()
    assert f"{secure.KAFKA_MECHANISM}=[name=" in start


def test_services_reach_kafka_over_sasl_ssl_as_their_own_user() -> None:
    services = load_compose("three-brokers")["services"]
    for name in ("ingest", "aggregator"):
        env = env_of(services[name])
        assert secure.KAFKA_CLIENT.items() <= env.items()
        user = secure.SERVICE_KAFKA_USER[name]
        assert env["OPSLEDGER_KAFKA_SASL_USERNAME"] == user
        assert env["OPSLEDGER_KAFKA_SASL_PASSWORD"] == fake_secrets()[secure.KAFKA_USERS[user]]
        assert mounts(services[name])[env["OPSLEDGER_KAFKA_SSL_CAFILE"]] == GENERATED + "ca.pem"
        assert set(secure.KAFKA_CLIENT_PER_SERVICE) <= set(env)
    for name in ("query", "migrate"):  # no Kafka: no Kafka credentials either
        assert not any("SASL" in k for k in env_of(services[name]))


def test_every_database_connection_verifies_the_server_over_tls() -> None:
    services = load_compose("three-brokers")["services"]
    for name in ("migrate", "aggregator", "query"):
        url = urlsplit(env_of(services[name])["OPSLEDGER_DATABASE_URL"])
        params = dict(parse_qsl(url.query))
        assert params == {**secure.DATABASE_TLS, "sslrootcert": "/run/opsledger/ca.pem"}
        assert mounts(services[name])[params["sslrootcert"]] == GENERATED + "ca.pem"
        assert url.hostname == "postgres" and url.password
    grants = env_of(services["db-grants"])
    assert grants["PGSSLMODE"] == secure.DATABASE_TLS["sslmode"]


def test_postgres_serves_tls_only_with_the_shared_hba_file() -> None:
    svc = load_compose("three-brokers")["services"]["postgres"]
    command = svc["command"]
    settings = dict(command[i + 1].split("=", 1) for i, arg in enumerate(command) if arg == "-c")
    assert secure.POSTGRES_SERVER.items() <= settings.items()
    files = mounts(svc)
    start = (ROOT / "deploy/postgres/compose-start.sh").read_text()
    assert files["/opsledger/pg_hba.conf"] == "./" + secure.PG_HBA
    # compose-start.sh copies the mounted file to where `hba_file` points.
    assert '/opsledger/pg_hba.conf "$tls/pg_hba.conf"' in start
    assert settings["hba_file"] == "/var/lib/postgresql/tls/pg_hba.conf"
    assert "tls=/var/lib/postgresql/tls" in start
    assert files["/run/opsledger/postgres.key"] == GENERATED + "postgres.key"
    hba = [
        line.split()
        for line in (ROOT / secure.PG_HBA).read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert {line[0] for line in hba} == {"local", "hostssl"}  # no `host` line: TLS or nothing
    assert all(line[-1] in ("scram-sha-256", "peer") for line in hba)


def test_generated_files_are_what_compose_mounts_and_the_ca_key_is_not(tmp_path: Path) -> None:
    material = certs.generate(tmp_path / "secrets")
    generated = {p.name for p in material.dir.iterdir()}
    mounted = {
        source.removeprefix(GENERATED)
        for svc in load_compose("three-brokers")["services"].values()
        for source in mounts(svc).values()
        if source.startswith(GENERATED)
    }
    assert mounted <= generated
    assert "ca-key.pem" in generated and "ca-key.pem" not in mounted
    assert set(certs.PASSWORD_NAMES) <= set(read_env_file(SECRETS_EXAMPLE))
    assert set(certs.PASSWORD_NAMES) <= set(certs.read_env(material.env_file))
