"""Settings: the Java properties file, the secrets directory, the environment and their precedence."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from taskplan.settings import ENABLE_ORCHESTRATION, PRINCIPALS, Settings, SettingsError, load_settings

PROPERTIES = r"""
# Pinot style, with what the Java format allows beyond key=value
! a comment in the other style
controller.host 10.0.0.7
controller.port: 9100
taskplan.plugins = first.module:ONE, \
                   second.module:TWO
controller.admin.access.control.principals.admin.password = p\u00e4ss\=word\:1\
  23
odd\ key\:name = spaced
"""
PROPERTIES += "temporal.namespace = prod \t \n"  # trailing blanks


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_properties_file_in_java_syntax(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path / "app.properties", PROPERTIES), environ={})

    assert settings.controller_host == "10.0.0.7"  # `key value` form
    assert settings.controller_port == 9100  # `key: value` form
    assert settings.plugins == "first.module:ONE, second.module:TWO"  # continuation, leading blanks dropped
    assert settings.property(f"{PRINCIPALS}.admin.password") == "päss=word:123"  # \uXXXX, \=, \:
    assert settings.temporal_namespace == "prod"  # trailing blanks dropped, as Pinot reads values
    assert settings.property("odd key:name") == "spaced"  # escapes in keys
    assert settings.property("a") is None  # comments are not properties


def test_config_file_named_by_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path / "app.properties", "controller.port=9200\n")
    assert load_settings(environ={"TASKPLAN_CONFIG": str(path)}).controller_port == 9200
    assert load_settings(environ={}).controller_port == 9000


def test_environment_overrides_the_file_in_both_spellings(tmp_path: Path) -> None:
    path = write(tmp_path / "app.properties", f"controller.port=9200\n{ENABLE_ORCHESTRATION}=true\n")
    environ = {
        "CONTROLLER_PORT": "9300",
        f"TASKPLAN_PROP_{ENABLE_ORCHESTRATION}": "false",
        f"TASKPLAN_PROP_{PRINCIPALS}": "admin",
        "UNRELATED": "x",
    }
    settings = load_settings(path, environ)
    assert settings.controller_port == 9300
    assert settings.enable_task_orchestration is False
    assert settings.property(PRINCIPALS) == "admin"
    assert settings.property("UNRELATED") is None


def kubernetes_secret(directory: Path, values: dict[str, str]) -> Path:
    """The layout kubelet writes: files in a timestamped directory, ..data pointing at it, keys as links."""
    stamped = directory / "..2026_01_01_00_00_00.000000001"
    stamped.mkdir(parents=True)
    for key, value in values.items():
        write(stamped / key, value)
    (directory / "..data").symlink_to(stamped.name)
    for key in values:
        (directory / key).symlink_to(Path("..data") / key)
    return directory


def test_secrets_directory_between_file_and_environment(tmp_path: Path) -> None:
    path = write(
        tmp_path / "app.properties",
        f"controller.port=9200\ntemporal.namespace=from-file\ncontroller.host=file-host\n{PRINCIPALS}=admin\n",
    )
    secrets = kubernetes_secret(
        tmp_path / "secrets",
        {
            "controller.port": "9400\n",
            "controller.host": "secret-host\n",
            f"{PRINCIPALS}.admin.password": "s3cret\n",
            "taskplan.catalog.url": "postgresql+psycopg://u:p@db/taskplan",  # no newline: kept whole
        },
    )
    settings = load_settings(path, {"TASKPLAN_SECRETS_DIR": str(secrets), "CONTROLLER_HOST": "env-host"})

    assert settings.temporal_namespace == "from-file"  # only in the file
    assert settings.controller_port == 9400  # the secret beats the file
    assert settings.controller_host == "env-host"  # the environment beats the secret
    assert settings.property(f"{PRINCIPALS}.admin.password") == "s3cret"  # one trailing newline dropped
    assert settings.catalog_url == "postgresql+psycopg://u:p@db/taskplan"
    assert settings.property("..data") is None


def test_secrets_directory_named_in_the_properties_file(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    write(secrets / "controller.port", "9500\n")
    path = write(tmp_path / "app.properties", f"taskplan.secretsDir={secrets}\ncontroller.port=9200\n")
    assert load_settings(path, environ={}).controller_port == 9500


def test_missing_secrets_directory_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(SettingsError, match=f"secrets directory {missing}"):
        load_settings(environ={"TASKPLAN_SECRETS_DIR": str(missing)})


@pytest.mark.parametrize("where", ["file", "secret", "environment"])
def test_invalid_value_names_the_property_and_its_source(tmp_path: Path, where: str) -> None:
    environ: dict[str, str] = {}
    path = None
    if where == "file":
        path = write(tmp_path / "app.properties", "controller.port = ninety\n")
        expected = f"properties file {path}"
    elif where == "secret":
        write(tmp_path / "controller.port", "ninety\n")
        environ["TASKPLAN_SECRETS_DIR"] = str(tmp_path)
        expected = f"secret file {tmp_path / 'controller.port'}"
    else:
        environ["CONTROLLER_PORT"] = "ninety"
        expected = "environment variable CONTROLLER_PORT"
    with pytest.raises(SettingsError) as failure:
        load_settings(path, environ)
    message = str(failure.value)
    if where == "secret":
        assert "property controller.port = <secret>" in message and "ninety" not in message
    else:
        assert "property controller.port = 'ninety'" in message
    assert f"(from {expected})" in message
    assert "valid integer" in message


def test_out_of_range_value_is_refused_with_its_bound() -> None:
    with pytest.raises(SettingsError, match=r"property taskplan\.batch\.maxPendingSubtasks = '5000'.*1900"):
        load_settings(environ={"TASKPLAN_BATCH_MAXPENDINGSUBTASKS": "5000"})
    with pytest.raises(SettingsError, match=r"property taskplan\.subtask\.maxNumRecordsPerTask = '0'.*1"):
        load_settings(environ={"TASKPLAN_PROP_taskplan.subtask.maxNumRecordsPerTask": "0"})
    sized = load_settings(environ={"TASKPLAN_PROP_taskplan.subtask.maxNumRecordsPerTask": "250000"})
    assert sized.subtask_max_records == 250_000


def test_settings_built_in_code_ignore_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTROLLER_PORT", "9600")
    assert os.environ["CONTROLLER_PORT"] == "9600"
    assert Settings().controller_port == 9000
    assert Settings.model_validate({"controller.port": "9700"}).controller_port == 9700
    assert load_settings().controller_port == 9600  # the composition root reads it


# ---------------------------------------------------------------- the temporal CLI's configuration


def test_temporal_connection_from_the_cli_profile_and_variables_under_the_properties(tmp_path: Path) -> None:
    profile = write(
        tmp_path / "temporal.toml",
        '[profile.prod]\naddress = "prod.example:7233"\nnamespace = "prod-ns"\napi_key = "from-toml"\n'
        '[profile.prod.tls]\nserver_name = "prod.example"\nclient_cert_path = "/tls/c.pem"\n'
        'client_key_path = "/tls/c.key"\n[profile.prod.grpc_meta]\nx-team = "data"\n',
    )
    env = {"TEMPORAL_CONFIG_FILE": str(profile), "TEMPORAL_PROFILE": "prod", "TEMPORAL_API_KEY": "from-env"}
    settings = load_settings(None, environ=env)
    assert (settings.temporal_address, settings.temporal_namespace) == ("prod.example:7233", "prod-ns")
    assert settings.temporal_tls_server_name == "prod.example"
    assert settings.temporal_tls_client_cert_path == Path("/tls/c.pem")
    assert settings.temporal_api_key == "from-env"  # the CLI's variable over its profile, as the CLI reads it
    assert settings.temporal_grpc_meta == {"x-team": "data"}

    # A taskplan property wins over both, wherever it is set.
    config = write(tmp_path / "app.properties", "temporal.namespace = mine\ntemporal.grpcMeta.x-team = ops\n")
    settings = load_settings(config, environ={**env, "TASKPLAN_PROP_temporal.apiKey": "from-property"})
    assert (settings.temporal_namespace, settings.temporal_api_key) == ("mine", "from-property")
    assert settings.temporal_address == "prod.example:7233"
    assert settings.temporal_grpc_meta == {"x-team": "ops"}

    # A bad value names where it came from.
    bad = write(
        tmp_path / "bad.toml", '[profile.default]\naddress = "x:1"\n[profile.default.tls]\ndisabled = true\n'
    )
    settings = load_settings(None, environ={"TEMPORAL_CONFIG_FILE": str(bad)})
    assert settings.temporal_tls is False
    with pytest.raises(
        SettingsError, match=r"Temporal client profile 'nope' in .*temporal.toml: .*not found"
    ):
        load_settings(None, environ={**env, "TEMPORAL_PROFILE": "nope"})
    with pytest.raises(SettingsError, match=r"the Temporal configuration file /no/such\.toml does not exist"):
        load_settings(None, environ={"TASKPLAN_PROP_temporal.configFile": "/no/such.toml"})
    with pytest.raises(SettingsError, match=r"clientCertPath/Data is set without temporal\.tls\.clientKey"):
        load_settings(None, environ={"TEMPORAL_TLS_CLIENT_CERT_PATH": "/tls/c.pem"})
