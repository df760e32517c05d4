"""The `temporal` CLI's connection settings (its TOML profile, its TEMPORAL_* environment variables), read
by ``temporalio.envconfig`` as the CLI reads them, as taskplan properties (``temporal.*``), each with where
it came from. ``load_settings`` puts them below every taskplan source: a property set anywhere wins."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from temporalio.envconfig import ClientConfigProfile, DataSource

GRPC_META_PREFIX = "temporal.grpcMeta."


class TemporalProfileError(ValueError):
    """The profile cannot be read: a missing file or profile, a TOML error."""


def temporal_cli_profile(
    env: Mapping[str, str], *, profile: str | None = None, config_file: str | None = None
) -> dict[str, tuple[str, str]]:
    """The `temporal` CLI's connection settings as taskplan properties: its TOML profile with its
    ``TEMPORAL_*`` environment variables over it (``temporalio.envconfig``), each with where it came from."""
    variables = dict(env)
    if profile:
        variables["TEMPORAL_PROFILE"] = profile
    if config_file:
        variables["TEMPORAL_CONFIG_FILE"] = config_file
    name = variables.get("TEMPORAL_PROFILE") or "default"
    where = variables.get("TEMPORAL_CONFIG_FILE") or "~/.config/temporalio/temporal.toml"
    if config_file and not Path(config_file).is_file():
        raise TemporalProfileError(f"the Temporal configuration file {config_file} does not exist")
    try:
        merged = ClientConfigProfile.load(override_env_vars=variables)
        file = variables.get("TEMPORAL_CONFIG_FILE")
        from_file = ClientConfigProfile.load(  # the same file and profile, without the variables over it
            variables.get("TEMPORAL_PROFILE"), config_source=Path(file) if file else None, disable_env=True
        )
    except Exception as exc:  # the bridge's ConfigError: a missing profile, a TOML error
        raise TemporalProfileError(f"Temporal client profile {name!r} in {where}: {exc}") from None

    def flatten(p: ClientConfigProfile) -> dict[str, str]:
        values: dict[str, str | None] = {
            "temporal.address": p.address,
            "temporal.namespace": p.namespace,
            "temporal.apiKey": p.api_key,
        }
        if p.tls is not None:
            values["temporal.tls"] = None if p.tls.disabled is None else str(not p.tls.disabled).lower()
            values["temporal.tls.serverName"] = p.tls.server_name
            sources: dict[str, DataSource | None] = {
                "serverCaCert": p.tls.server_root_ca_cert,
                "clientCert": p.tls.client_cert,
                "clientKey": p.tls.client_private_key,
            }
            for key, source in sources.items():
                if isinstance(source, Path):
                    values[f"temporal.tls.{key}Path"] = str(source)
                elif source is not None:
                    data = source.decode() if isinstance(source, bytes) else source
                    values[f"temporal.tls.{key}Data"] = data
        for header, value in p.grpc_meta.items():
            values[GRPC_META_PREFIX + header] = value
        return {k: v for k, v in values.items() if v is not None}

    file_values = flatten(from_file)
    return {
        key: (
            value,
            f"Temporal client profile {name!r} in {where}"
            if file_values.get(key) == value
            else "the temporal CLI's TEMPORAL_* environment variables",
        )
        for key, value in flatten(merged).items()
    }
