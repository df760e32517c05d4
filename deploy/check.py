"""Static checks of deploy/ (no container engine needed), run by `make check` and tests/test_deploy.py:

- the Kubernetes manifests validate against the Kubernetes schemas shipped in kubernetes-validate (offline,
  strict: no unknown field), kustomization.yaml lists every manifest, every Deployment has liveness and
  readiness probes on taskplan's probe paths and the port its properties configure, and every container
  resource requests and limits;
- the Dockerfile: several stages, every base image pinned to a full version (or a digest), never ``latest``,
  the last stage runs as a user other than root, and installs with ``-c constraints.txt``;
- the settings cannot drift from taskplan's: every property the ConfigMap's file, the Secret and every
  container's environment (Kubernetes and docker-compose) set is one taskplan knows, and the set for each
  container validates with taskplan's own ``load_settings``;
- nor from what the multi-host test runs (examples/multihost/taskplan.properties, the file of
  tests/multihost): both files, loaded by taskplan, give the same settings but for the few a deployment
  must set otherwise (``DEPLOYMENT_DIFFERS``, each with its reason).

``python deploy/check.py [DEPLOY_DIR]`` prints each problem and exits 1 if there is any.
"""

from __future__ import annotations

import re
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml
from dockerfile_parse import DockerfileParser

from taskplan.cluster_configs import UNTYPED_PROPERTIES
from taskplan.settings import (
    ENV_PREFIX,
    PRINCIPALS,
    SECRETS_DIR,
    Settings,
    SettingsError,
    load_settings,
    parse_properties,
)

DEPLOY = Path(__file__).resolve().parent
MULTIHOST_PROPERTIES = DEPLOY.parent / "examples" / "multihost" / "taskplan.properties"
# The settings where deploy/k8s/taskplan.properties may differ from the multi-host test's file, and why.
DEPLOYMENT_DIFFERS = {
    "temporal.address": "Temporal's frontend has the cluster's host name (the test's: temporal)",
    "taskplan.catalog.url": "it carries the database password: the Secret holds it, not the ConfigMap",
    "taskplan.api.metricsMergeTargets": "a Deployment's controller pods have no stable names to list",
    "taskplan.dataDir": "the container's emptyDir (the test sets TASKPLAN_DATADIR per host)",
    "taskplan.duckdb.memoryLimit": "containers have memory limits, which DuckDB's default (80% of the "
    "node's memory) would pass",
}
KUBERNETES_VERSION = "1.30.0"
# Environment variables read by what taskplan runs on, not properties: its start-up variables, the object
# store client's standard AWS variables, Python's own.
PROCESS_ENV = {"TASKPLAN_CONFIG", "TASKPLAN_SECRETS_DIR", "PYTHONUNBUFFERED"}
PROCESS_ENV_PREFIXES = ("AWS_", "PYTHON")
PROBES = {"livenessProbe": "/health/liveness", "readinessProbe": "/health/readiness"}
FLOATING_TAGS = {"latest", "stable", "edge", "main", "master", "nightly"}


def pinned(image: str) -> bool:
    """A digest, or a tag naming a version (16.6-bookworm, 1.29.1, RELEASE.2025-04-22T22-12-26Z)."""
    if re.search(r"@sha256:[0-9a-f]{64}$", image):
        return True
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:  # no tag at all (a registry port is not a tag)
        return False
    return tag not in FLOATING_TAGS and re.search(r"\d+[.-]\d+", tag) is not None


def known_property(key: str) -> bool:
    aliases = {str(info.alias) for info in Settings.model_fields.values()}
    return (
        key in aliases
        or key in UNTYPED_PROPERTIES
        or key in (SECRETS_DIR, PRINCIPALS)
        or key.startswith(PRINCIPALS + ".")
    )


def env_problem(name: str) -> str | None:
    """None when taskplan (or what it runs on) reads this environment variable; else why not."""
    if name in PROCESS_ENV or name.startswith(PROCESS_ENV_PREFIXES):
        return None
    if name.startswith(ENV_PREFIX):
        key = name.removeprefix(ENV_PREFIX)
        return None if known_property(key) else f"{name} sets {key!r}, which is not a taskplan property"
    aliases = {str(info.alias).upper().replace(".", "_") for info in Settings.model_fields.values()}
    return None if name in aliases else f"environment variable {name} is not one taskplan reads"


def validate_settings(
    where: str, properties: Path | None, env: Mapping[str, str], secrets: Mapping[str, str]
) -> list[str]:
    """The properties one container gets, validated as taskplan's processes load them."""
    problems = [f"{where}: {p}" for p in map(env_problem, env) if p]
    if properties is not None:
        for key in parse_properties(properties.read_text(encoding="utf-8")):
            if not known_property(key):
                problems.append(f"{where}: property {key!r} in {properties.name} is not a taskplan property")
    for key in secrets:
        if not known_property(key):
            problems.append(f"{where}: secret file {key!r} is not a taskplan property")
    with tempfile.TemporaryDirectory() as tmp:
        secrets_dir = Path(tmp)
        for key, value in secrets.items():
            (secrets_dir / key).write_text(value, encoding="utf-8")
        environ = {k: v for k, v in env.items() if k not in ("TASKPLAN_CONFIG", "TASKPLAN_SECRETS_DIR")}
        if secrets:
            environ["TASKPLAN_SECRETS_DIR"] = str(secrets_dir)
        try:
            load_settings(properties, environ=environ)
        except SettingsError as exc:
            problems.append(f"{where}: {exc}")
    return problems


# ------------------------------------------------------------------------------------------ Kubernetes


def k8s_documents(k8s: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(k8s.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                yield path, doc


def check_kubernetes(k8s: Path) -> list[str]:
    problems: list[str] = []
    kustomization = yaml.safe_load((k8s / "kustomization.yaml").read_text(encoding="utf-8"))
    listed = set(kustomization.get("resources", []))
    manifests = {p.name for p in k8s.glob("*.yaml")} - {"kustomization.yaml"}
    if listed != manifests:
        problems.append(
            f"kustomization.yaml resources {sorted(listed)} are not the manifests {sorted(manifests)}"
        )
    generated = {g["name"]: g for g in kustomization.get("configMapGenerator", [])}
    config_files = [k8s / f for g in generated.values() for f in g.get("files", [])]
    properties = config_files[0] if config_files else None
    if properties is None or not properties.is_file():
        return [*problems, "kustomization.yaml generates no ConfigMap from a properties file"]
    documents = list(k8s_documents(k8s))
    secrets: dict[str, dict[str, str]] = {}
    for path, doc in documents:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path_in = ".".join(str(p) for p in exc.path)
            problems.append(f"{path.name}: {doc.get('kind')} does not validate at {path_in}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(
                f"{path.name}: no Kubernetes schema for {doc.get('kind')} {doc.get('apiVersion')}"
            )
        if doc.get("kind") == "Secret":
            secrets[doc["metadata"]["name"]] = dict(doc.get("stringData", {}))
    props = parse_properties(properties.read_text(encoding="utf-8"))
    for path, doc in documents:
        if doc.get("kind") not in ("Deployment", "Job"):
            continue
        spec = doc["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in spec["containers"]:
            where = f"{path.name} {doc['kind']} {doc['metadata']['name']}"
            problems += check_container(where, container, volumes, secrets, properties, generated)
            if doc["kind"] == "Deployment":
                role = "api" if container.get("args", ["api"])[0] == "api" else "worker"
                key = "controller.port" if role == "api" else "taskplan.metrics.port"
                port = props.get(key, "")
                if not port.isdigit():
                    problems.append(f"{where}: {key} must be set in {properties.name} for its probes")
                else:
                    problems += check_probes(where, container, int(port))
    return problems


def check_container(
    where: str,
    container: dict[str, Any],
    volumes: Mapping[str, dict[str, Any]],
    secrets: Mapping[str, dict[str, str]],
    properties: Path,
    generated: Mapping[str, Any],
) -> list[str]:
    problems = []
    resources = container.get("resources", {})
    for kind in ("requests", "limits"):
        if not {"cpu", "memory"} <= set(resources.get(kind, {})):
            problems.append(f"{where}: resources.{kind} must set cpu and memory")
    env = {e["name"]: e.get("value", "") for e in container.get("env", [])}
    for source in container.get("envFrom", []):
        env.update(secrets.get(source.get("secretRef", {}).get("name", ""), {}))
    mounted: dict[str, str] = {}  # mount path -> volume
    for mount in container.get("volumeMounts", []):
        mounted[mount["mountPath"]] = mount["name"]
    config_volume = volumes.get(mounted.get(env.get("TASKPLAN_CONFIG", ""), ""), {})
    if config_volume.get("configMap", {}).get("name") not in generated:
        problems.append(f"{where}: TASKPLAN_CONFIG is not the generated ConfigMap's properties file")
    secret_volume = volumes.get(mounted.get(env.get("TASKPLAN_SECRETS_DIR", ""), ""), {})
    secret = secrets.get(secret_volume.get("secret", {}).get("secretName", ""))
    if secret is None:
        problems.append(f"{where}: TASKPLAN_SECRETS_DIR is not a mounted Secret of deploy/k8s")
    return problems + validate_settings(where, properties, env, secret or {})


def check_probes(where: str, container: dict[str, Any], port: int) -> list[str]:
    problems = []
    ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    for probe, path in PROBES.items():
        get = container.get(probe, {}).get("httpGet", {})
        target = ports.get(get.get("port"), get.get("port"))
        if get.get("path") != path or target != port:
            problems.append(f"{where}: {probe} must GET {path} on port {port}, has {get or 'none'}")
    return problems


# ------------------------------------------------------------------------------------------ compose


def check_compose(compose_file: Path) -> list[str]:
    problems: list[str] = []
    compose = yaml.safe_load(compose_file.read_text(encoding="utf-8"))
    for name, service in compose["services"].items():
        image = str(service.get("image", ""))
        if not pinned(image):
            problems.append(f"{compose_file.name} service {name}: image {image!r} is not pinned to a version")
        if not image.startswith("taskplan:"):
            continue
        env = {k: str(v) for k, v in service.get("environment", {}).items()}
        mounts: dict[str, str] = {}  # container path -> host path
        for volume in service.get("volumes", []):
            host, container_path = str(volume).split(":")[:2]
            mounts[container_path] = host
        config = mounts.get(env.get("TASKPLAN_CONFIG", ""))
        secrets_dir = mounts.get(env.get("TASKPLAN_SECRETS_DIR", ""))
        if config is None or secrets_dir is None:
            problems.append(
                f"{compose_file.name} service {name}: its properties file or secrets are not mounted"
            )
            continue
        secrets = {
            p.name: p.read_text(encoding="utf-8").removesuffix("\n")
            for p in (compose_file.parent / secrets_dir).iterdir()
        }
        where = f"{compose_file.name} service {name}"
        problems += validate_settings(where, (compose_file.parent / config).resolve(), env, secrets)
    return problems


# ------------------------------------------------------------------------------------------ Dockerfile


def check_dockerfile(path: Path) -> list[str]:
    problems = []
    parser = DockerfileParser(str(path))
    stages = [i for i in parser.structure if i["instruction"] == "FROM"]
    if len(stages) < 2:
        problems.append(f"{path.name}: not multi-stage (one FROM)")
    for base in parser.parent_images:
        if not pinned(base):
            problems.append(f"{path.name}: base image {base!r} is not pinned to a full version or a digest")
    last_from = max((i["startline"] for i in stages), default=-1)
    users = [i["value"].split(":")[0] for i in parser.structure if i["instruction"] == "USER"]
    final_users = [
        i["value"].split(":")[0]
        for i in parser.structure
        if i["instruction"] == "USER" and i["startline"] > last_from
    ]
    if not final_users or final_users[-1] in ("root", "0"):
        problems.append(
            f"{path.name}: the final stage must switch to a non-root USER (has {users or 'none'})"
        )
    runs = " ".join(i["value"] for i in parser.structure if i["instruction"] == "RUN")
    if "-c constraints.txt" not in runs:
        problems.append(
            f"{path.name}: the package must be installed with -c constraints.txt (locked versions)"
        )
    if any(i["instruction"] == "ADD" and "://" in i["value"] for i in parser.structure):
        problems.append(f"{path.name}: ADD of a URL downloads at build time unpinned")
    return problems


# ------------------------------------------------------------------------------------------ multi-host


def check_multihost(properties: Path, multihost: Path = MULTIHOST_PROPERTIES) -> list[str]:
    """The deployment's properties and the multi-host test's, each loaded as a process loads it, give
    the same value for every setting but those of DEPLOYMENT_DIFFERS."""
    try:
        deployed, tested = load_settings(properties, environ={}), load_settings(multihost, environ={})
    except SettingsError as exc:
        return [f"{properties.name} or {multihost.name}: {exc}"]
    problems = []
    values = [
        (str(info.alias), getattr(deployed, n), getattr(tested, n))
        for n, info in Settings.model_fields.items()
    ]
    values += [(key, deployed.property(key), tested.property(key)) for key in UNTYPED_PROPERTIES]
    for key, ours, theirs in values:
        if key not in DEPLOYMENT_DIFFERS and ours != theirs:
            problems.append(
                f"{properties.name}: {key} is {ours!r}, the multi-host test runs {theirs!r} "
                f"({multihost.relative_to(multihost.parents[2])}); make them one, or list the key in "
                "DEPLOYMENT_DIFFERS with the reason"
            )
    return problems


def check_all(deploy: Path = DEPLOY) -> list[str]:
    return [
        *check_dockerfile(deploy / "Dockerfile"),
        *check_kubernetes(deploy / "k8s"),
        *check_compose(deploy / "compose" / "docker-compose.yml"),
        *check_multihost(deploy / "k8s" / "taskplan.properties"),
    ]


def main() -> None:
    problems = check_all(Path(sys.argv[1]) if len(sys.argv) > 1 else DEPLOY)
    for problem in problems:
        sys.stderr.write(problem + "\n")
    if problems:
        raise SystemExit(1)
    sys.stdout.write("deploy/: Dockerfile, Kubernetes manifests and docker-compose.yml check out\n")


if __name__ == "__main__":
    main()
