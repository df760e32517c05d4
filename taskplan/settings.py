"""One configuration for every process (API, controller worker, minion worker).

Keys keep Pinot's dotted names (``controller.startree.task.manager.enableTaskOrchestration``).
``load_settings`` reads them from, lowest precedence first:

1. the defaults below;
2. a Java properties file (``--config FILE`` or ``TASKPLAN_CONFIG``), read by ``javaproperties``:
   ``key=value``, ``key: value`` and ``key value``, ``#`` and ``!`` comments, line continuations,
   ``\\uXXXX``, ``\\:`` and ``\\=`` escapes; trailing blanks of a value are dropped, as Pinot's
   configuration library does;
3. a secrets directory (``TASKPLAN_SECRETS_DIR``, or the property ``taskplan.secretsDir`` in the file),
   laid out as Kubernetes mounts a Secret: one file per property, named by the property, holding its value
   (one trailing newline dropped); Kubernetes' own ``..data`` entries and sub-directories are skipped;
4. the environment: a key upper case with dots as underscores (``CONTROLLER_PORT``), or verbatim after the
   ``TASKPLAN_PROP_`` prefix for keys that contain characters an environment name cannot (principals).

Below all of these (0.), the Temporal connection (``temporal.*``) also comes from the ``temporal`` CLI's own
configuration, read by ``temporalio.envconfig``: the TOML profile (``TEMPORAL_PROFILE``, default
``default``, in ``TEMPORAL_CONFIG_FILE`` or ``~/.config/temporalio/temporal.toml``) with the CLI's
``TEMPORAL_*`` environment variables over it. A taskplan property, wherever it is set, wins over it.

Each of 2-4 is a pydantic-settings source that ``load_settings`` hands to ``Settings`` (``_build_sources``).
``settings_customise_sources`` keeps only the init source, so a ``Settings(...)`` or ``model_validate``
built in code (tests) is exactly what it was given and never reads the process
environment: the outside world comes in once, at each process's composition root, through
``load_settings``. A value that does not validate raises ``SettingsError`` naming the property and where
it came from.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import javaproperties
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from taskplan.temporal_profile import GRPC_META_PREFIX, TemporalProfileError, temporal_cli_profile

ENABLE_ORCHESTRATION = "controller.startree.task.manager.enableTaskOrchestration"
ORPHAN_CLEANUP_INTERVAL = "controller.startree.task.manager.orphanedTaskPlanCleanupIntervalInSeconds"
PRINCIPALS = "controller.admin.access.control.principals"
MAX_IN_FLIGHT_PER_TABLE = "taskplan.limits.maxInFlightSubtasksPerTable"
MAX_IN_FLIGHT = "taskplan.limits.maxInFlightSubtasks"
SECRETS_DIR = "taskplan.secretsDir"
S3_ACCESS_KEY_ID = "taskplan.storage.s3.accessKeyId"
S3_SECRET_ACCESS_KEY = "taskplan.storage.s3.secretAccessKey"
S3_REGION = "taskplan.storage.s3.region"
S3_ENDPOINT_URL = "taskplan.storage.s3.endpointUrl"
# The AWS ecosystem's variables, below every other source: a property set anywhere wins over them.
AWS_SOURCES = {
    "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY_ID,
    "AWS_SECRET_ACCESS_KEY": S3_SECRET_ACCESS_KEY,
    "AWS_REGION": S3_REGION,
    "AWS_DEFAULT_REGION": S3_REGION,
    "AWS_ENDPOINT_URL": S3_ENDPOINT_URL,
}
ENV_PREFIX = "TASKPLAN_PROP_"
TEMPORAL_PROFILE = "temporal.profile"
TEMPORAL_CONFIG_FILE = "temporal.configFile"
MEMORY_LIMIT_PATTERN = r"^(|[0-9]+(\.[0-9]+)?\s*([KMGT]i?B|B))$"


class SettingsError(ValueError):
    """A property that does not validate, named with its source (file, secret or environment variable)."""


class Settings(BaseSettings):
    """Typed view of the properties. Field aliases are the property names operators write."""

    model_config = SettingsConfigDict(populate_by_name=True, extra="allow", frozen=True)

    temporal_address: str = Field("127.0.0.1:7233", alias="temporal.address")
    temporal_namespace: str = Field("default", alias="temporal.namespace")
    # The connection as the `temporal` CLI makes it (also from its TOML profile and TEMPORAL_* variables).
    temporal_api_key: str | None = Field(None, alias="temporal.apiKey")
    temporal_tls: bool | None = Field(
        None, alias="temporal.tls"
    )  # None: on when a TLS value or API key is set
    temporal_tls_server_name: str | None = Field(None, alias="temporal.tls.serverName")
    temporal_tls_server_ca_cert_path: Path | None = Field(None, alias="temporal.tls.serverCaCertPath")
    temporal_tls_server_ca_cert_data: str | None = Field(None, alias="temporal.tls.serverCaCertData")
    temporal_tls_client_cert_path: Path | None = Field(None, alias="temporal.tls.clientCertPath")
    temporal_tls_client_cert_data: str | None = Field(None, alias="temporal.tls.clientCertData")
    temporal_tls_client_key_path: Path | None = Field(None, alias="temporal.tls.clientKeyPath")
    temporal_tls_client_key_data: str | None = Field(None, alias="temporal.tls.clientKeyData")
    temporal_profile: str | None = Field(None, alias=TEMPORAL_PROFILE)
    temporal_config_file: Path | None = Field(None, alias=TEMPORAL_CONFIG_FILE)
    temporal_connect_timeout_s: float = Field(10.0, alias="temporal.connectTimeoutSeconds", gt=0, le=600)
    # `taskplan setup`: the retention of a namespace it creates.
    temporal_namespace_retention_days: int = Field(7, alias="temporal.namespace.retentionDays", ge=1, le=3650)
    data_dir: Path = Field(Path(".taskplan"), alias="taskplan.dataDir")
    catalog_url: str | None = Field(None, alias="taskplan.catalog.url")
    # Each process's connections to the catalog: poolSize kept open, up to maxOverflow more under load.
    catalog_pool_size: int = Field(10, alias="taskplan.catalog.poolSize", ge=1, le=1000)
    catalog_max_overflow: int = Field(20, alias="taskplan.catalog.maxOverflow", ge=0, le=1000)
    plugins: str = Field("", alias="taskplan.plugins")
    controller_host: str = Field("127.0.0.1", alias="controller.host")
    controller_port: int = Field(9000, alias="controller.port")
    enable_task_orchestration: bool = Field(True, alias=ENABLE_ORCHESTRATION)
    orphaned_plan_cleanup_interval_s: int = Field(28800, alias=ORPHAN_CLEANUP_INTERVAL, ge=1)
    max_failed_batches: int = Field(3, alias="taskplan.plan.maxFailedBatches", ge=0, le=2**31 - 1)
    max_failed_subtasks_per_batch: int = Field(
        0, alias="taskplan.batch.maxFailedSubtasksPerBatch", ge=0, le=2**31 - 1
    )
    max_generation_attempts: int = Field(10, alias="taskplan.plan.maxGenerationAttempts", ge=1)
    retained_batch_records: int = Field(1000, alias="taskplan.plan.retainedBatchRecords", ge=10)
    max_pending_subtasks: int = Field(1000, alias="taskplan.batch.maxPendingSubtasks", ge=1, le=1900)
    subtask_heartbeat_timeout_s: int = Field(30, alias="taskplan.subtask.heartbeatTimeoutSeconds", ge=2)
    lost_worker_retries: int = Field(5, alias="taskplan.subtask.lostWorkerRetries", ge=0)
    # Rows a segment-rewriting subtask takes by default (task config maxNumRecordsPerTask, Pinot's name):
    # consecutive smaller segments are packed into one subtask, as a subtask costs ~10 ms of orchestration.
    subtask_max_records: int = Field(
        1_000_000, alias="taskplan.subtask.maxNumRecordsPerTask", ge=1, le=2**63 - 1
    )
    # A worker's Prometheus endpoint (0: off); the API serves GET /metrics on controller.host/port instead.
    metrics_host: str = Field("127.0.0.1", alias="taskplan.metrics.host", min_length=1)
    metrics_port: int = Field(0, alias="taskplan.metrics.port", ge=0, le=65535)
    max_in_flight_subtasks_per_table: int = Field(0, alias=MAX_IN_FLIGHT_PER_TABLE, ge=0)
    max_in_flight_subtasks: int = Field(0, alias=MAX_IN_FLIGHT, ge=0)
    # Endpoints (host:port or URL) whose documented metrics the API's GET /metrics merges into its own.
    metrics_merge_targets: str = Field("", alias="taskplan.api.metricsMergeTargets")
    plan_retention_s: int = Field(7 * 86400, alias="taskplan.plan.retentionSeconds", ge=60)
    # A local directory or s3://bucket/prefix (taskplan.storage.open_store).
    deep_store_dir: str | None = Field(None, alias="taskplan.deepStore.dir")
    # The S3 connection; unset ones come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION and
    # AWS_ENDPOINT_URL (AWS_SOURCES in load_settings). The secret key is a SecretStr: never rendered.
    s3_access_key_id: str | None = Field(None, alias=S3_ACCESS_KEY_ID)
    s3_secret_access_key: SecretStr | None = Field(None, alias=S3_SECRET_ACCESS_KEY)
    s3_region: str | None = Field(None, alias=S3_REGION)
    s3_endpoint_url: str | None = Field(None, alias=S3_ENDPOINT_URL)
    ingestion_allowed_roots: str = Field("", alias="taskplan.ingestion.allowedRoots")
    export_allowed_roots: str = Field("", alias="taskplan.export.allowedRoots")
    # The data task types run one subtask per CPU on a minion: one DuckDB thread each keeps the CPUs busy
    # without oversubscribing them (a 1M-row purge: 0.68 of plain DuckDB with DuckDB's default, 0.86 with 1).
    duckdb_threads: int = Field(1, alias="taskplan.duckdb.threadsPerSubtask", ge=1, le=256)
    # A plan read through the API answers from its snapshot and batch records when the plan itself has not
    # answered within this (0: wait). A query takes 5-30 ms here; 2 s while 500 plans start.
    plan_query_timeout_s: float = Field(0.1, alias="taskplan.api.planQueryTimeoutSeconds", ge=0, le=300)
    # The Temporal Web UI the plan page (GET /ui) links each plan's workflow to.
    temporal_web_url: str = Field(
        "http://127.0.0.1:8233", alias="taskplan.ui.temporalWebUrl", pattern=r"^https?://[^\s\"'<>]+$"
    )
    # How fast the cluster-wide jobs of a controller that died move to another (workflows/cluster_jobs.py).
    cluster_jobs_heartbeat_timeout_s: int = Field(
        30, alias="taskplan.clusterJobs.heartbeatTimeoutSeconds", ge=2, le=3600
    )
    # DuckDB's memory limit per data subtask's connection (DuckDB's syntax: 512MB, 2GB, 1.5GiB); empty:
    # DuckDB's default, 80% of the machine's memory, which inside a container is the node's, not the limit's.
    duckdb_memory_limit: str = Field("", alias="taskplan.duckdb.memoryLimit", pattern=MEMORY_LIMIT_PATTERN)
    # Subtasks a minion runs at once per task type and tag (0: the task type's own default, which for the
    # data task types is one per CPU of the container's CPU quota); the --max-concurrent-subtasks flag wins.
    minion_max_concurrent_subtasks: int = Field(
        0, alias="taskplan.minion.maxConcurrentSubtasks", ge=0, le=10_000
    )
    # HTTPS for the API (api/server.py): a PEM certificate (chain) and its key, both or neither.
    api_tls_cert_file: Path | None = Field(None, alias="taskplan.api.tls.certFile")
    api_tls_key_file: Path | None = Field(None, alias="taskplan.api.tls.keyFile")
    # Origins (scheme://host[:port]) besides the API's own whose pages may send it state-changing requests
    # (api/origins.py): e.g. the public origin of a proxy in front of it.
    api_allowed_origins: str = Field("", alias="taskplan.api.allowedOrigins")
    # Where the Temporal SDK's own Prometheus endpoint binds (with temporal.sdk.metricsPort); unset:
    # taskplan.metrics.host, where the worker's own metrics bind.
    sdk_metrics_host: str | None = Field(None, alias="temporal.sdk.metricsHost", min_length=1)

    @field_validator("plugins")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @model_validator(mode="after")
    def _check_tls(self) -> Settings:
        pairs = {
            "serverCaCert": (self.temporal_tls_server_ca_cert_path, self.temporal_tls_server_ca_cert_data),
            "clientCert": (self.temporal_tls_client_cert_path, self.temporal_tls_client_cert_data),
            "clientKey": (self.temporal_tls_client_key_path, self.temporal_tls_client_key_data),
        }
        for name, (path, data) in pairs.items():
            if path is not None and data is not None:
                raise ValueError(f"set temporal.tls.{name}Path or temporal.tls.{name}Data, not both")
        has_cert = any(v is not None for v in pairs["clientCert"])
        has_key = any(v is not None for v in pairs["clientKey"])
        if has_cert != has_key:
            given, missing = ("clientCert", "clientKey") if has_cert else ("clientKey", "clientCert")
            raise ValueError(
                f"temporal.tls.{given}Path/Data is set without temporal.tls.{missing}Path/Data: "
                "mTLS needs both the client certificate and its key"
            )
        return self

    @model_validator(mode="after")
    def _check_api_tls(self) -> Settings:
        if (self.api_tls_cert_file is None) != (self.api_tls_key_file is None):
            given, missing = ("certFile", "keyFile") if self.api_tls_cert_file else ("keyFile", "certFile")
            raise ValueError(
                f"taskplan.api.tls.{given} is set without taskplan.api.tls.{missing}: HTTPS needs both"
            )
        return self

    @field_validator("api_allowed_origins")
    @classmethod
    def _check_origins(cls, value: str) -> str:
        for origin in _split(value):
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/"):
                raise ValueError(f"allowed origin {origin!r} is not scheme://host[:port]")
        return value.strip()

    @property
    def allowed_origins(self) -> list[str]:
        """The configured origins besides the API's own, as written (api/origins.py normalizes them)."""
        return _split(self.api_allowed_origins)

    @property
    def temporal_grpc_meta(self) -> dict[str, str]:
        """gRPC headers sent with every Temporal call: ``temporal.grpcMeta.<header>=<value>``."""
        extra = self.model_extra or {}
        return {
            key.removeprefix(GRPC_META_PREFIX).lower(): str(value)
            for key, value in sorted(extra.items())
            if key.startswith(GRPC_META_PREFIX) and value is not None
        }

    @field_validator("metrics_merge_targets")
    @classmethod
    def _check_targets(cls, value: str) -> str:
        for target in _split(value):
            metrics_target_url(target)
        return value.strip()

    @property
    def metrics_merge_urls(self) -> dict[str, str]:
        """Each merge target as written, with the URL the API scrapes."""
        return {target: metrics_target_url(target) for target in _split(self.metrics_merge_targets)}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only what the caller passes: files, secrets and the environment come in through load_settings.
        return (init_settings,)

    @property
    def resolved_catalog_url(self) -> str:
        return self.catalog_url or f"sqlite:///{(self.data_dir / 'catalog.db').resolve()}"

    @property
    def deep_store_uri(self) -> str:
        """``s3://bucket/prefix`` as configured, or the local directory, resolved."""
        configured = (self.deep_store_dir or "").strip()
        if _is_uri(configured):
            return configured
        return str(Path(configured or self.data_dir / "deepstore").expanduser().resolve())

    @property
    def scratch_dir(self) -> Path:
        """This process's own scratch space (objects of a remote store are streamed through it)."""
        return (self.data_dir / "scratch").resolve()

    @property
    def allowed_input_roots(self) -> list[Path]:
        """Directories files may be ingested from (default: ``input/`` under the data directory, unless
        only s3:// roots are configured)."""
        return _roots(self.ingestion_allowed_roots, self.data_dir / "input")

    @property
    def allowed_input_uris(self) -> list[str]:
        """The ``s3://bucket/prefix`` entries of taskplan.ingestion.allowedRoots."""
        return [r for r in _split(self.ingestion_allowed_roots) if _is_uri(r)]

    @property
    def allowed_export_roots(self) -> list[Path]:
        """Directories DataExportTask may write Parquet files under (default: ``export/`` there)."""
        return _roots(self.export_allowed_roots, self.data_dir / "export")

    @property
    def allowed_export_uris(self) -> list[str]:
        """The ``s3://bucket/prefix`` entries of taskplan.export.allowedRoots."""
        return [r for r in _split(self.export_allowed_roots) if _is_uri(r)]

    def property(self, key: str, default: str | None = None) -> str | None:
        """Any property by its dotted name, typed or not (e.g. principals)."""
        for name, info in type(self).model_fields.items():
            if info.alias == key:
                value = getattr(self, name)
                return None if value is None else _render(value)
        extra = self.model_extra or {}
        value = extra.get(key)
        return default if value is None else str(value)


def is_loopback(host: str) -> bool:
    """Whether a bind address or host name is this machine's loopback (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _is_uri(text: str) -> bool:
    return "://" in text and not text.lower().startswith("file://")


def _roots(value: str, default: Path) -> list[Path]:
    """The local directories of a comma-separated roots list (its s3:// entries aside); ``default`` when
    the list is empty."""
    entries = _split(value)
    if not entries:
        return [default.resolve()]
    return [Path(part).expanduser().resolve() for part in entries if not _is_uri(part)]


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def metrics_target_url(target: str) -> str:
    """``host:port`` means ``http://host:port/metrics``; an http(s) URL is taken as written."""
    is_url = "://" in target
    url = target if is_url else f"http://{target}/metrics"
    problem = ValueError(f"metrics merge target {target!r} is neither host:port nor an http(s) URL")
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # not a number, or out of range
        raise problem from None
    if parts.scheme not in ("http", "https") or not parts.hostname or (port is None and not is_url):
        raise problem
    return url


def _render(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_properties(text: str) -> dict[str, str]:
    """Java properties syntax (javaproperties), values without trailing blanks as Pinot reads them."""
    return {key: value.rstrip(" \t\f") for key, value in javaproperties.loads(text).items()}


def _known_aliases() -> dict[str, str]:
    return {
        str(info.alias).upper().replace(".", "_"): str(info.alias) for info in Settings.model_fields.values()
    }


def _environment(environ: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """Property -> (value, the variable it came from)."""
    aliases = _known_aliases()
    props: dict[str, tuple[str, str]] = {}
    for name, value in environ.items():
        if name.startswith(ENV_PREFIX):
            props[name.removeprefix(ENV_PREFIX)] = (value, f"environment variable {name}")
        elif name in aliases:
            props[aliases[name]] = (value, f"environment variable {name}")
    return props


def _secrets(directory: Path) -> dict[str, tuple[str, str]]:
    """One property per file (a Kubernetes Secret volume): name = property, content = value."""
    if not directory.is_dir():
        raise SettingsError(f"secrets directory {directory} does not exist or is not a directory")
    props: dict[str, tuple[str, str]] = {}
    for entry in sorted(directory.iterdir()):
        # Kubernetes keeps its atomic-update machinery in ``..data`` and ``..<timestamp>`` beside the keys,
        # which are symlinks into it; is_file follows them.
        if entry.name.startswith(".") or not entry.is_file():
            continue
        value = entry.read_text(encoding="utf-8")
        props[entry.name] = (value.removesuffix("\n").removesuffix("\r"), f"secret file {entry}")
    return props


class PropertySource(PydanticBaseSettingsSource):
    """Properties from one place, keyed by property name, each remembering where it came from."""

    def __init__(self, settings_cls: type[BaseSettings], properties: Mapping[str, tuple[str, str]]) -> None:
        super().__init__(settings_cls)
        self.properties = dict(properties)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        key = str(field.alias or field_name)
        value = self.properties.get(key)
        return (None if value is None else value[0]), key, False

    def origin(self, key: str) -> str | None:
        """Where the property came from ("properties file F", "secret file F", "environment variable V")."""
        value = self.properties.get(key)
        return None if value is None else value[1]

    def __call__(self) -> dict[str, Any]:
        # Every property, known or not: unknown ones (principals, otel.*) stay readable through property().
        return {key: value for key, (value, _) in self.properties.items()}


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    env = os.environ if environ is None else environ
    file_props: dict[str, tuple[str, str]] = {}
    path = config_file or env.get("TASKPLAN_CONFIG")
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise SettingsError(f"cannot read the properties file {path}: {exc.strerror}") from None
        file_props = {k: (v, f"properties file {path}") for k, v in parse_properties(text).items()}
    env_props = _environment(env)
    secrets_dir = (
        env.get("TASKPLAN_SECRETS_DIR")
        or env_props.get(SECRETS_DIR, ("", ""))[0]
        or file_props.get(SECRETS_DIR, ("", ""))[0]
    )
    secret_props = _secrets(Path(secrets_dir)) if secrets_dir else {}
    aws_props = {
        key: (env[name], f"environment variable {name}")
        for name, key in reversed(AWS_SOURCES.items())  # AWS_REGION wins over AWS_DEFAULT_REGION
        if env.get(name)
    }
    given = {**file_props, **secret_props, **env_props}
    try:
        temporal_props = temporal_cli_profile(
            env,
            profile=given.get(TEMPORAL_PROFILE, (None, ""))[0],
            config_file=given.get(TEMPORAL_CONFIG_FILE, (None, ""))[0],
        )
    except TemporalProfileError as exc:
        raise SettingsError(str(exc)) from None
    # Highest precedence first, as pydantic-settings orders its sources; the Temporal CLI's profile and the
    # AWS variables (disjoint keys) below every property set in taskplan's own sources.
    sources = tuple(
        PropertySource(Settings, props)
        for props in (env_props, secret_props, file_props, temporal_props, aws_props)
    )
    try:
        return Settings(_build_sources=(sources, {}))
    except ValidationError as exc:
        raise SettingsError(_describe(exc, sources)) from None


def _describe(exc: ValidationError, sources: tuple[PropertySource, ...]) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        if not error["loc"]:  # a rule across properties (the TLS pairs): its message names them
            problems.append(str(error["msg"]).removeprefix("Value error, "))
            continue
        key = ".".join(str(part) for part in error["loc"])
        origin = next((o for o in (s.origin(key) for s in sources) if o), "default")
        # A secret's value stays out of the message (and so out of logs); its file is named instead.
        value = "<secret>" if origin.startswith("secret") else repr(error.get("input"))
        problems.append(f"property {key} = {value} (from {origin}): {error['msg']}")
    return "invalid settings: " + "; ".join(problems)
