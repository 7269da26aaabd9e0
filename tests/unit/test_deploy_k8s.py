"""deploy/k8s against the Kubernetes API schemas, and the rules the manifests promise.

The schemas come from the kubernetes-validate package (pinned in constraints.txt), which ships
the JSON Schemas generated from each Kubernetes release's OpenAPI document; the "-strict"
variants refuse unknown fields. The manifests are checked against the oldest and the newest
Kubernetes minor this deployment supports. Kustomize itself is not run (no binary offline):
the kustomization files are read here the way kustomize reads them.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
STRIMZI = ROOT / "deploy" / "kafka" / "strimzi"
KUBERNETES_VERSIONS = ("1.31", "1.37")
SERVICES = ("ingest", "aggregator", "query")


def load_kustomization(directory: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The resources of a kustomization (recursing into bases) and its own file."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            docs += load_kustomization(path)[0]
        else:
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    for generator in kustomization.get("configMapGenerator", []):
        data = {}
        for entry in generator.get("files", []):
            key, _, source = entry.rpartition("=")
            path = directory / source
            if not path.exists():  # filled in by the operator (git-ignored): its example
                path = path.with_name(path.name + ".example")
            data[key or Path(source).name] = path.read_text()
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": generator["name"]},
                "data": data,
            }
        )
    return docs, kustomization


DOCS, KUSTOMIZATION = load_kustomization(K8S)
STRIMZI_DOCS, _ = load_kustomization(STRIMZI)


def by_kind(kind: str, docs: list[dict[str, Any]] = DOCS) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    spec = workload["spec"]["template"]["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def deployment(service: str) -> dict[str, Any]:
    return by_kind("Deployment")[f"opsledger-{service}"]


def config() -> dict[str, str]:
    return by_kind("ConfigMap")["opsledger-config"]["data"]


def validate(doc: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


# --- the Kubernetes schemas ---------------------------------------------------------------------


def test_the_manifests_cover_the_services() -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in DOCS}
    for service in SERVICES:
        assert ("Deployment", f"opsledger-{service}") in kinds
    assert ("Job", "opsledger-migrate") in kinds
    assert ("ConfigMap", "opsledger-config") in kinds


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("doc", DOCS, ids=[f"{d['kind']}-{d['metadata']['name']}" for d in DOCS])
def test_manifest_is_valid_against_the_kubernetes_schema(doc: dict[str, Any], version: str) -> None:
    validate(doc, version)


def _replicas_as_word(doc: dict[str, Any]) -> None:
    doc["spec"]["replicas"] = "three"


def _misspelt_probe_field(doc: dict[str, Any]) -> None:
    doc["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {}


def _no_containers_key(doc: dict[str, Any]) -> None:
    doc["spec"]["template"]["spec"]["container"] = doc["spec"]["template"]["spec"].pop("containers")


def _port_out_of_type(doc: dict[str, Any]) -> None:
    doc["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = [8080]


@pytest.mark.parametrize(
    "break_it", [_replicas_as_word, _misspelt_probe_field, _no_containers_key, _port_out_of_type]
)
def test_the_schema_rejects_a_broken_deployment(break_it: Any) -> None:
    doc = copy.deepcopy(deployment("ingest"))
    validate(doc, KUBERNETES_VERSIONS[-1])  # the unbroken one passes
    break_it(doc)
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(doc, KUBERNETES_VERSIONS[-1])


# --- what each workload must have ---------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_probes_are_wired_to_healthz_and_readyz_on_the_served_port(service: str) -> None:
    (container,) = deployment(service)["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[:2] == ["serve", service]
    port = int(args[args.index("--port") + 1])
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container[probe]["httpGet"]
        assert get["path"] == path, (service, probe)
        assert named.get(get["port"], get["port"]) == port, (service, probe)


@pytest.mark.parametrize(
    "name", ["opsledger-ingest", "opsledger-aggregator", "opsledger-query", "opsledger-migrate"]
)
def test_workloads_are_bounded_and_unprivileged(name: str) -> None:
    workload = {**by_kind("Deployment"), **by_kind("Job")}[name]
    pod = workload["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    for container in containers(workload):
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), container["name"]
        assert "memory" in resources["limits"], container["name"]
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["readOnlyRootFilesystem"] is True
        assert security["capabilities"]["drop"] == ["ALL"]
        assert ":" in container["image"] and not container["image"].endswith(":latest")


def test_ingest_and_query_autoscale_and_the_aggregator_does_not() -> None:
    hpas = by_kind("HorizontalPodAutoscaler")
    targets = {h["spec"]["scaleTargetRef"]["name"]: h["spec"] for h in hpas.values()}
    assert set(targets) == {"opsledger-ingest", "opsledger-query"}
    for name, spec in targets.items():
        assert by_kind("Deployment")[name]
        assert 2 <= spec["minReplicas"] <= deployment(name.split("-")[1])["spec"]["replicas"]
        assert spec["maxReplicas"] > spec["minReplicas"]


def test_aggregator_replicas_never_exceed_the_partitions() -> None:
    partitions = int(config()["OPSLEDGER_TOPIC_PARTITIONS"])
    spec = deployment("aggregator")["spec"]
    surge = spec["strategy"]["rollingUpdate"]["maxSurge"]
    assert spec["replicas"] + int(surge) <= partitions
    topic = by_kind("KafkaTopic", STRIMZI_DOCS)["field-events"]["spec"]
    assert topic["partitions"] == partitions


def test_services_select_their_pods_and_name_real_ports() -> None:
    for name, service in by_kind("Service").items():
        pod = by_kind("Deployment")[name]["spec"]["template"]
        assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
        ports = {p["name"] for c in pod["spec"]["containers"] for p in c["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports


def test_every_referenced_configmap_and_secret_is_provided() -> None:
    configmaps = set(by_kind("ConfigMap"))
    secrets = {g["name"] for g in KUSTOMIZATION["secretGenerator"]}
    for workload in [*by_kind("Deployment").values(), *by_kind("Job").values()]:
        for container in containers(workload):
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in configmaps
                else:
                    assert source["secretRef"]["name"] in secrets
        for volume in workload["spec"]["template"]["spec"].get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in configmaps
    for generator in KUSTOMIZATION["secretGenerator"]:
        for env_file in generator["envs"]:
            assert (K8S / f"{env_file}.example").is_file(), env_file
    # The filled-in files hold real credentials: git must never pick them up.
    assert "*.env" in (K8S / "secrets" / ".gitignore").read_text().splitlines()


def test_migrate_job_runs_migrations_then_grants() -> None:
    job = by_kind("Job")["opsledger-migrate"]["spec"]["template"]["spec"]
    assert job["initContainers"][0]["args"] == ["migrate"]
    (grants,) = job["containers"]
    assert grants["command"][-1] == "/opsledger/grants.sql"
    sql = by_kind("ConfigMap")["opsledger-db-sql"]["data"]
    assert "GRANT SELECT ON ALL TABLES IN SCHEMA ledger TO opsledger_query" in sql["grants.sql"]


# --- Kafka security (Strimzi) -------------------------------------------------------------------


def acls(user: str) -> set[tuple[str, str, str, str]]:
    spec = by_kind("KafkaUser", STRIMZI_DOCS)[user]["spec"]
    assert spec["authentication"]["type"] in ("scram-sha-512", "tls")
    return {
        (a["resource"]["type"], a["resource"]["name"], a["resource"]["patternType"], op)
        for a in spec["authorization"]["acls"]
        for op in a["operations"]
    }


def test_ingest_may_only_write_the_log() -> None:
    assert acls("opsledger-ingest") == {
        ("topic", "field-events", "literal", "Write"),
        ("topic", "field-events", "literal", "Describe"),
    }


def test_aggregator_reads_the_log_and_writes_only_the_dlq() -> None:
    granted = acls("opsledger-aggregator")
    assert ("topic", "field-events", "literal", "Read") in granted
    assert ("group", "opsledger-aggregator", "literal", "Read") in granted
    assert ("topic", "field-events.dlq", "literal", "Write") in granted
    writes = {(t, n) for t, n, _, op in granted if op in ("Write", "Create", "Alter", "Delete")}
    # faust runs with topic_disable_leader: no topic of its own to create or write.
    assert writes == {("topic", "field-events.dlq")}
    assert all(pattern == "literal" for _, _, pattern, _ in granted)


def test_the_kafka_cluster_replicates_three_ways_with_two_in_sync() -> None:
    (pool,) = by_kind("KafkaNodePool", STRIMZI_DOCS).values()
    assert pool["spec"]["replicas"] == 3
    kafka = by_kind("Kafka", STRIMZI_DOCS)["opsledger"]["spec"]["kafka"]
    assert kafka["authorization"]["type"] == "simple"
    assert all(listener["authentication"]["type"] for listener in kafka["listeners"])
    assert kafka["config"]["default.replication.factor"] == 3
    assert kafka["config"]["min.insync.replicas"] == 2
    for topic in by_kind("KafkaTopic", STRIMZI_DOCS).values():
        assert topic["spec"]["replicas"] == 3
        assert topic["spec"]["config"]["min.insync.replicas"] == 2
        assert topic["spec"]["config"]["retention.ms"] == -1
    bootstrap = config()["OPSLEDGER_KAFKA_BOOTSTRAP_SERVERS"]
    assert bootstrap.startswith("opsledger-kafka-bootstrap.kafka.svc:")


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item.get("value", "") for item in container.get("env", [])}


def _secret_example(service: str) -> dict[str, str]:
    lines = (K8S / "secrets" / f"{service}.env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


@pytest.mark.parametrize("service", ["ingest", "aggregator"])
def test_kafka_clients_speak_what_the_strimzi_listener_and_acls_require(service: str) -> None:
    """SASL_SSL with SCRAM-SHA-512 to the TLS listener, as the KafkaUser whose ACLs they need."""
    (container,) = deployment(service)["spec"]["template"]["spec"]["containers"]
    env = _env(container)
    kafka = by_kind("Kafka", STRIMZI_DOCS)["opsledger"]["spec"]["kafka"]
    port = int(config()["OPSLEDGER_KAFKA_BOOTSTRAP_SERVERS"].rsplit(":", 1)[1])
    (listener,) = [entry for entry in kafka["listeners"] if entry["port"] == port]
    assert listener["tls"] is True
    assert env["OPSLEDGER_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    mechanism = listener["authentication"]["type"].upper()  # scram-sha-512
    assert env["OPSLEDGER_KAFKA_SASL_MECHANISM"] == mechanism
    user = env["OPSLEDGER_KAFKA_SASL_USERNAME"]
    assert user == f"opsledger-{service}" and acls(user)  # a KafkaUser with ACLs
    assert "OPSLEDGER_KAFKA_SASL_PASSWORD" in _secret_example(service)
    # The CA file is inside a volume built from the cluster CA ConfigMap.
    pod = deployment(service)["spec"]["template"]["spec"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "kafka-ca"]
    assert env["OPSLEDGER_KAFKA_SSL_CAFILE"].startswith(mount["mountPath"] + "/")
    (volume,) = [v for v in pod["volumes"] if v["name"] == "kafka-ca"]
    assert volume["configMap"]["name"] in by_kind("ConfigMap")
    # The deployed settings load: a TLS protocol is what production demands.
    assert "OPSLEDGER_INSECURE_KAFKA_PLAINTEXT" not in env | config()


@pytest.mark.parametrize("service", ["ingest", "query"])
def test_metrics_are_not_on_the_public_port(service: str) -> None:
    (container,) = deployment(service)["spec"]["template"]["spec"]["containers"]
    env = _env(container)
    args = container["args"]
    public = int(args[args.index("--port") + 1])
    metrics = int(env[f"OPSLEDGER_{service.upper()}_METRICS_PORT"])
    assert metrics != public
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert named["metrics"] == metrics
    service_ports = by_kind("Service")[f"opsledger-{service}"]["spec"]["ports"]
    assert [p["targetPort"] for p in service_ports] == ["http"]
    for policy in by_kind("NetworkPolicy").values():
        for rule in policy["spec"].get("ingress", []):
            assert {p["port"] for p in rule.get("ports", [])} <= {"http"}


@pytest.mark.parametrize("service", ["ingest", "query"])
def test_tokens_are_verified_against_an_https_identity_provider(service: str) -> None:
    (container,) = deployment(service)["spec"]["template"]["spec"]["containers"]
    assert _env(container)["OPSLEDGER_OIDC_ISSUER"].startswith("https://")


def test_no_workload_holds_a_token_signing_secret() -> None:
    for path in (K8S / "secrets").glob("*.env.example"):
        # The aggregator's checkpoint key signs tree heads, not tokens (docs/provable.md).
        text = path.read_text().replace("OPSLEDGER_TLOG_SIGNING_KEY", "")
        assert "JWT" not in text and "SIGNING" not in text, path
    for doc in DOCS:
        text = yaml.safe_dump(doc)
        assert "JWT" not in text, doc["metadata"]["name"]
