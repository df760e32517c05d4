"""POST /cluster/configs: what it accepts (the run-time keys, names outside taskplan's namespaces), what it
refuses with a 400 naming the key (bad values, start-up properties, unknown taskplan names).

That each accepted key takes effect at run time: test_cluster_configs_runtime.py, on a real cluster.
"""

from __future__ import annotations

import httpx
import pytest

from taskplan.cluster_configs import RUNTIME_KEYS, UNTYPED_PROPERTIES
from taskplan.settings import (
    ENABLE_ORCHESTRATION,
    MAX_IN_FLIGHT,
    MAX_IN_FLIGHT_PER_TABLE,
    ORPHAN_CLEANUP_INTERVAL,
    PRINCIPALS,
    Settings,
)

STARTUP_PROPERTIES = sorted(
    {str(info.alias) for info in Settings.model_fields.values()} - set(RUNTIME_KEYS)
    | {*UNTYPED_PROPERTIES, PRINCIPALS, f"{PRINCIPALS}.admin.password"}
)


async def configs(http: httpx.AsyncClient) -> dict[str, str]:
    response = await http.get("/cluster/configs")
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


async def test_every_run_time_key_is_listed_with_its_property_value(http: httpx.AsyncClient) -> None:
    listed = await configs(http)
    assert listed[ENABLE_ORCHESTRATION] == "true"
    assert listed[ORPHAN_CLEANUP_INTERVAL] == "28800"
    assert listed[MAX_IN_FLIGHT_PER_TABLE] == listed[MAX_IN_FLIGHT] == "0"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (ORPHAN_CLEANUP_INTERVAL, "abc"),
        (ORPHAN_CLEANUP_INTERVAL, "0"),
        (ORPHAN_CLEANUP_INTERVAL, "-5"),
        (ORPHAN_CLEANUP_INTERVAL, "1.5"),
        (ORPHAN_CLEANUP_INTERVAL, " 60"),
        (ORPHAN_CLEANUP_INTERVAL, "²"),  # int() would take it
        (ORPHAN_CLEANUP_INTERVAL, "٣٠"),  # Arabic-Indic digits, the same
        (ORPHAN_CLEANUP_INTERVAL, "2147483648"),
        (ORPHAN_CLEANUP_INTERVAL, "9" * 5000),  # beyond int()'s digit limit: was a 500
        (ENABLE_ORCHESTRATION, "maybe"),
        (ENABLE_ORCHESTRATION, ""),
        (MAX_IN_FLIGHT_PER_TABLE, "-1"),
        (MAX_IN_FLIGHT_PER_TABLE, "ten"),
        (MAX_IN_FLIGHT, "1e3"),
        (MAX_IN_FLIGHT, "²"),
    ],
)
async def test_a_bad_value_is_refused_naming_the_key_and_value(
    http: httpx.AsyncClient, key: str, value: str
) -> None:
    before = await configs(http)
    response = await http.post("/cluster/configs", json={key: value})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert key in error and repr(value[:50]).rstrip("'") in error
    assert await configs(http) == before


@pytest.mark.parametrize("key", STARTUP_PROPERTIES)
async def test_a_start_up_property_is_refused_as_one(http: httpx.AsyncClient, key: str) -> None:
    """Stored, it would be listed and ignored: these are read once, when a process starts."""
    response = await http.post("/cluster/configs", json={key: "1"})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert f"cluster config {key} is a start-up property" in error
    assert ORPHAN_CLEANUP_INTERVAL in error  # says which keys do change at run time
    assert key not in await configs(http)


@pytest.mark.parametrize(
    "key",
    [
        "controller.startree.task.manager.enabletaskorchestration",  # a typo of a run-time key
        "taskplan.limits.maxInFlight",
        "Taskplan.Plan.MaxFailedBatches",
        "temporal.something",
        "otel.service.name",
    ],
)
async def test_an_unknown_name_in_taskplan_namespaces_is_refused(http: httpx.AsyncClient, key: str) -> None:
    response = await http.post("/cluster/configs", json={key: "true"})
    assert response.status_code == 400, response.text
    assert f"cluster config {key} is not a taskplan setting" in response.json()["error"]
    assert key not in await configs(http)


async def test_run_time_keys_and_foreign_names_are_stored(http: httpx.AsyncClient) -> None:
    """Pinot keeps any cluster config; names outside taskplan's namespaces are stored and listed, unread."""
    values = {
        ORPHAN_CLEANUP_INTERVAL: "28800",
        MAX_IN_FLIGHT_PER_TABLE: "0",
        MAX_IN_FLIGHT: "2147483647",
        ENABLE_ORCHESTRATION: "TRUE",
        "pinot.broker.enable.query.limit.override": "true",
        "allowParticipantAutoJoin": "true",
    }
    response = await http.post("/cluster/configs", json=values)
    assert response.status_code == 200, response.text
    try:
        listed = await configs(http)
        assert {k: listed[k] for k in values} == values
    finally:
        for key in values:
            assert (await http.delete(f"/cluster/configs/{key}")).status_code == 200
    assert (await configs(http))[MAX_IN_FLIGHT] == "0"  # the property again


async def test_nothing_is_stored_when_one_key_is_refused(http: httpx.AsyncClient) -> None:
    before = await configs(http)
    response = await http.post(
        "/cluster/configs",
        json={MAX_IN_FLIGHT: "5", "pinot.other": "x", "taskplan.plan.retentionSeconds": "60"},
    )
    assert response.status_code == 400 and "taskplan.plan.retentionSeconds" in response.json()["error"]
    assert await configs(http) == before
