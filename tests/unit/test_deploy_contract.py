"""The deployment files against the code: every `opsledger ...` command they run exists in the
CLI (and parses), every environment variable they give an opsledger process is a real setting
(and loads), and the image is built the way docs/deployment.md says."""

from __future__ import annotations

import importlib
import inspect
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml
from pydantic_settings import BaseSettings

from services.common.settings import CommonSettings
from services.tlog.settings import TlogSettings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
K8S = ROOT / "deploy" / "k8s"
SERVICES = ("ingest", "aggregator", "query")
# Not settings, and allowed in an opsledger container: the image's own healthcheck port.
IMAGE_ENV = {"HEALTHCHECK_PORT"}
# Settings a service's process reads besides its own class: the aggregator signs checkpoints, and
# the query service signs an operation's final checkpoint when it closes one over HTTP.
ALSO_READS: dict[str, tuple[type[BaseSettings], ...]] = {
    "aggregator": (TlogSettings,),
    "query": (TlogSettings,),
}


# --- discovery ----------------------------------------------------------------------------------


def settings_class(service: str | None) -> type[BaseSettings]:
    """The settings class of services/<service>/settings.py, or CommonSettings while absent."""
    if service is None:
        return CommonSettings
    try:
        module = importlib.import_module(f"services.{service}.settings")
    except ModuleNotFoundError as exc:
        if exc.name != f"services.{service}.settings":
            raise
        return CommonSettings
    classes = [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, CommonSettings) and cls.__module__ == module.__name__
    ]
    assert len(classes) == 1, f"services.{service}.settings: one settings class expected"
    return classes[0]


def env_names(cls: type[BaseSettings]) -> set[str]:
    """Every environment variable name that sets a field of ``cls`` (upper case)."""
    prefix = cls.model_config.get("env_prefix", "")
    names: set[str] = set()
    for field_name, field in cls.model_fields.items():
        alias = field.validation_alias
        if alias is None:
            names.add(f"{prefix}{field.alias or field_name}")
        elif isinstance(alias, str):
            names.add(alias)
        else:
            names.update(choice for choice in alias.choices if isinstance(choice, str))
    return {name.upper() for name in names}


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def image_entrypoint() -> list[str]:
    (entrypoint,) = [arg for op, arg in dockerfile_instructions() if op == "ENTRYPOINT"]
    return list(yaml.safe_load(entrypoint))


def compose_services() -> dict[str, dict[str, Any]]:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    return {name: svc for name, svc in services.items() if "build" in svc}


def k8s_docs() -> list[dict[str, Any]]:
    return [
        doc
        for path in sorted(K8S.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc and path.name != "kustomization.yaml"
    ]


def k8s_opsledger_containers() -> list[dict[str, Any]]:
    found = []
    for doc in k8s_docs():
        if doc["kind"] in ("Deployment", "Job"):
            pod = doc["spec"]["template"]["spec"]
            for container in pod.get("initContainers", []) + pod["containers"]:
                if container["image"].split(":")[0].endswith("opsledger"):
                    found.append(container)
    return found


def service_of(argv: list[str]) -> str | None:
    """Which service's settings a command reads: `serve X` -> X, anything else -> common."""
    return argv[1] if argv[:1] == ["serve"] and argv[1] in SERVICES else None


def deployed_commands() -> list[tuple[str, list[str]]]:
    """(where, argv after `opsledger`) for every opsledger command the deployment runs."""
    found: list[tuple[str, list[str]]] = []
    assert image_entrypoint() == ["opsledger"]
    (cmd,) = [arg for op, arg in dockerfile_instructions() if op == "CMD"]
    found.append(("Dockerfile CMD", list(yaml.safe_load(cmd))))
    for name, svc in compose_services().items():
        command = svc["command"]
        found.append(
            (f"compose {name}", shlex.split(command) if isinstance(command, str) else list(command))
        )
    for container in k8s_opsledger_containers():
        assert "command" not in container, "the image's entrypoint is `opsledger`"
        found.append((f"k8s {container['name']}", list(container["args"])))
    return found


def deployed_environments() -> list[tuple[str, str | None, dict[str, str]]]:
    """(where, service, variables) for every environment an opsledger process is given."""
    found = []
    for name, svc in compose_services().items():
        command = svc["command"]
        env = {key: str(value) for key, value in svc.get("environment", {}).items()}
        found.append((f"compose {name}", service_of(list(command)), env))
    configmap = next(
        d
        for d in k8s_docs()
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "opsledger-config"
    )
    secrets = {
        path.name.split(".")[0]: dict(
            line.split("=", 1)
            for line in path.read_text().splitlines()
            if line.strip() and not line.startswith("#")
        )
        for path in (K8S / "secrets").glob("*.env.example")
    }
    for container in k8s_opsledger_containers():
        env = {}
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                assert source["configMapRef"]["name"] == "opsledger-config"
                env |= configmap["data"]
            else:
                env |= secrets[source["secretRef"]["name"].removeprefix("opsledger-")]
        env |= {item["name"]: item.get("value", "") for item in container.get("env", [])}
        found.append((f"k8s {container['name']}", service_of(container["args"]), env))
    return found


COMMANDS = deployed_commands()
ENVIRONMENTS = deployed_environments()


# --- commands -----------------------------------------------------------------------------------


class NotInCli(Exception):
    """A deployed command that the CLI does not have, or whose arguments it refuses."""


def parse_cli(argv: list[str]) -> None:
    """Resolve and parse ``opsledger argv`` with the real CLI, without running it."""
    from services.cli.main import app

    # typer ships its own copy of click, so the command tree is walked by duck typing.
    command: Any = typer.main.get_command(app)
    path = ["opsledger"]
    args = list(argv)
    while hasattr(command, "get_command"):
        if not args:
            raise NotInCli(f"`{' '.join(path)}` needs a subcommand")
        name = args.pop(0)
        sub = command.get_command(typer.Context(command, info_name=path[-1]), name)
        if sub is None:
            raise NotInCli(f"no command `{' '.join([*path, name])}`")
        command, path = sub, [*path, name]
    try:
        command.make_context(" ".join(path), args)  # parses options and converts values
    except Exception as exc:
        if getattr(exc, "exit_code", None) == 2:  # click's UsageError / BadParameter
            raise NotInCli(f"`{' '.join([*path, *args])}`: {exc}") from exc
        raise


@pytest.mark.parametrize("where,argv", COMMANDS, ids=[where for where, _ in COMMANDS])
def test_deployed_command_exists_in_the_cli(where: str, argv: list[str]) -> None:
    parse_cli(argv)


def test_every_service_is_deployed_with_each_command() -> None:
    seen = {" ".join(argv[:2]) for _, argv in COMMANDS}
    assert {f"serve {service}" for service in SERVICES} | {"migrate"} <= seen


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "nonexistent"],
        ["serve", "ingest", "--no-such-option"],
        ["serve", "query", "--port", "not-a-port"],
        ["no-such-command"],
    ],
)
def test_the_cli_check_rejects_what_does_not_exist(argv: list[str]) -> None:
    with pytest.raises(NotInCli):
        parse_cli(argv)


# --- environment --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "where,service,env", ENVIRONMENTS, ids=[where for where, _, _ in ENVIRONMENTS]
)
def test_every_variable_is_a_real_setting(
    where: str, service: str | None, env: dict[str, str]
) -> None:
    known = env_names(settings_class(service)) | IMAGE_ENV
    for also in ALSO_READS.get(service or "", ()):
        known |= env_names(also)
    unknown = sorted(name for name in env if name.upper() not in known)
    assert unknown == [], f"{where} sets variables no settings class reads"


@pytest.mark.parametrize(
    "where,service,env", ENVIRONMENTS, ids=[where for where, _, _ in ENVIRONMENTS]
)
def test_the_deployed_settings_load(
    where: str, service: str | None, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("OPSLEDGER_") or name in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        # Interpolated compose values and the empty secrets of the examples get stand-ins:
        # a variable inside a longer value (a DSN's password) is replaced where it stands.
        if "${" in value and not value.startswith("${"):
            value = re.sub(r"\$\{[^}]*\}", "s" * 48, value)
        if "${" in value or value == "":
            value = {
                "OPSLEDGER_ENV": "production",
                "OPSLEDGER_TOPIC_PARTITIONS": "12",
                "OPSLEDGER_TOPIC_REPLICATION": "3",
                "OPSLEDGER_LOG_LEVEL": "INFO",
                "OPSLEDGER_OIDC_ISSUER": "https://login.microsoftonline.com/tenant-id/v2.0",
            }.get(name, "s" * 48 if "SECRET" in name else "kafka:19092")
        monkeypatch.setenv(name, value)
    settings = settings_class(service)()
    assert settings.env == "production"  # type: ignore[attr-defined]


def test_the_variable_check_rejects_a_made_up_setting() -> None:
    assert "OPSLEDGER_TOPIC" in env_names(CommonSettings)
    assert "DATABASE_URL" in env_names(CommonSettings)
    assert "OPSLEDGER_NOT_A_SETTING" not in env_names(settings_class("ingest"))


# --- image --------------------------------------------------------------------------------------


def test_image_is_multi_stage_pinned_non_root_with_healthcheck() -> None:
    instructions = dockerfile_instructions()
    args = dict(arg.split("=", 1) for op, arg in instructions if op == "ARG" and "=" in arg)
    stages = [arg for op, arg in instructions if op == "FROM"]
    assert len(stages) >= 2
    for stage in stages:
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], stage.split()[0])
        assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", image), image
    final = instructions[max(i for i, (op, _) in enumerate(instructions) if op == "FROM") :]
    users = [arg for op, arg in final if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert any(op == "HEALTHCHECK" and "/healthz" in arg for op, arg in final)


def test_image_build_context_holds_what_the_dockerfile_copies() -> None:
    allowed = [
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    for op, arg in dockerfile_instructions():
        if op == "COPY" and not arg.startswith("--from"):
            *sources, _ = arg.split()
            for source in sources:
                if source != ".":
                    assert (ROOT / source).exists() and source in allowed, source
    # `pip install .` needs the package sources, the pins and the README named by pyproject.
    for needed in ("pyproject.toml", "constraints.txt", "README.md", "schemas", "services"):
        assert needed in allowed and (ROOT / needed).exists(), needed
