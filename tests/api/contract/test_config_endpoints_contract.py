"""Pinot's wire format of the table, schema, segment, cluster config and health endpoints
(PinotTableRestletResource, PinotSchemaRestletResource, PinotSegmentRestletResource, PinotClusterConfigs,
PinotControllerHealthCheck)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from temporalio.client import Client

from taskplan.api.deps import get_client
from taskplan.catalog import Catalog
from tests.api.contract.conftest import CONTRACT, assert_error, unique
from tests.support.api import app_for_tests

CSV = {"batchConfigMapStr": json.dumps({"inputFormat": "csv"})}


def _schema(name: str, **extra: object) -> dict[str, object]:
    return {
        "schemaName": name,
        "dimensionFieldSpecs": [{"name": "country", "dataType": "STRING"}],
        "dateTimeFieldSpecs": [
            {
                "name": "ts",
                "dataType": "LONG",
                "format": "1:MILLISECONDS:EPOCH",
                "granularity": "1:MILLISECONDS",
            }
        ],
        **extra,
    }


async def test_schemas_json_multipart_override_and_unrecognized(api: httpx.AsyncClient) -> None:
    name = unique("s")
    added = await api.post("/schemas", json=_schema(name, someFutureKey={"a": 1}))
    assert added.status_code == 200, added.text
    assert added.json() == {
        "status": f"{name} successfully added",
        "unrecognizedProperties": {"/someFutureKey": {"a": 1}},
    }
    again = await api.post("/schemas", params={"override": "false"}, json=_schema(name))
    assert_error(again, 409, f"Schema: {name} already exists")
    replaced = await api.post("/schemas", params={"override": "true", "force": "true"}, json=_schema(name))
    assert replaced.status_code == 200 and replaced.json()["unrecognizedProperties"] == {}
    other = unique("s")
    form = await api.post("/schemas", files={"schema": ("schema.json", json.dumps(_schema(other)).encode())})
    assert form.status_code == 200, form.text
    assert form.json()["status"] == f"{other} successfully added"
    assert (await api.get(f"/schemas/{other}")).json()["schemaName"] == other
    assert_error(await api.post("/schemas", content=b"{", headers={"content-type": "application/json"}), 400)


async def test_tables_add_update_list_delete(api: httpx.AsyncClient) -> None:
    raw = unique("t")
    assert (await api.post("/schemas", json=_schema(raw))).status_code == 200
    config = {"tableName": raw, "tableType": "OFFLINE", "futureKey": [1, 2]}
    added = await api.post("/tables", json=config)
    assert added.status_code == 200, added.text
    assert added.json() == {
        "status": f"Table {raw}_OFFLINE successfully added",
        "unrecognizedProperties": {"/futureKey/0": 1, "/futureKey/1": 2},
    }
    # "Exists" is checked before validation: a config that would not validate still answers 409.
    invalid = {**config, "task": {"taskTypeConfigsMap": {"NoSuchTask": {}}}}
    assert_error(
        await api.post("/tables", json=invalid), 409, f"Table config for {raw}_OFFLINE already exists"
    )
    # validationTypesToSkip=TASK skips the task types' checks of their configs.
    bad_task = {
        "tableName": raw,
        "tableType": "REALTIME",
        "task": {"taskTypeConfigsMap": {CONTRACT: {"maxFailedBatches": "x"}}},
    }
    assert_error(await api.post("/tables", json=bad_task), 400, "maxFailedBatches")
    skipped = await api.post(
        "/tables", params={"validationTypesToSkip": "TASK", "ignoreActiveTasks": "true"}, json=bad_task
    )
    assert skipped.status_code == 200, skipped.text
    assert_error(
        await api.post("/tables", params={"validationTypesToSkip": "NOPE"}, json=bad_task), 400, "NOPE"
    )

    updated = await api.put(
        f"/tables/{raw}",
        params={"force": "true", "validationTypesToSkip": "ALL"},
        json={"tableName": raw, "tableType": "OFFLINE"},
    )
    assert updated.status_code == 200, updated.text
    assert updated.json() == {"status": f"Table config updated for {raw}", "unrecognizedProperties": {}}

    listed = (await api.get("/tables")).json()["tables"]
    assert raw in listed and f"{raw}_OFFLINE" not in listed
    offline = (await api.get("/tables", params={"type": "offline"})).json()["tables"]
    assert f"{raw}_OFFLINE" in offline and f"{raw}_REALTIME" not in offline
    by_task = (await api.get("/tables", params={"taskType": CONTRACT})).json()["tables"]
    assert f"{raw}_REALTIME" in by_task and f"{raw}_OFFLINE" not in by_task
    by_creation = (await api.get("/tables", params={"sortType": "creationTime", "sortAsc": "false"})).json()[
        "tables"
    ]
    assert by_creation.index(f"{raw}_REALTIME") < by_creation.index(f"{raw}_OFFLINE")
    assert (await api.get(f"/tables/{raw}", params={"type": "realtime"})).json().keys() == {"REALTIME"}
    assert_error(await api.get(f"/tables/{raw}", params={"type": "sideways"}), 400, "sideways")

    assert_error(await api.delete(f"/tables/{raw}", params={"retention": "soon"}), 400, "retention")
    dropped = await api.delete(
        f"/tables/{raw}", params={"type": "OFFLINE", "retention": "0d", "ignoreActiveTasks": "true"}
    )
    assert dropped.json() == {"status": f"Tables: [{raw}_OFFLINE] deleted"}
    both = await api.delete(f"/tables/{raw}")
    assert both.json() == {"status": f"Tables: [{raw}_REALTIME] deleted"}
    assert_error(await api.delete(f"/tables/{raw}"), 404)


async def test_segments_names_and_metadata(api: httpx.AsyncClient, tmp_path: Path) -> None:
    raw = unique("g")
    assert (await api.post("/schemas", json=_schema(raw))).status_code == 200
    assert (await api.post("/tables", json={"tableName": raw, "tableType": "OFFLINE"})).status_code == 200
    table = f"{raw}_OFFLINE"
    for start in (1000, 5000):
        body = f"country,ts\nUS,{start}\nFR,{start + 999}\n".encode()
        done = await api.post(
            "/ingestFromFile", params={"tableNameWithType": table, **CSV}, files={"file": ("a.csv", body)}
        )
        assert done.status_code == 200, done.text
    listed = await api.get(f"/segments/{raw}")
    assert listed.status_code == 200
    [entry] = listed.json()
    assert list(entry) == ["OFFLINE"] and all(isinstance(n, str) for n in entry["OFFLINE"])
    names = entry["OFFLINE"]
    assert len(names) == 2
    assert (
        await api.get(f"/segments/{raw}", params={"type": "offline", "excludeReplacedSegments": "true"})
    ).json() == [entry]
    window = await api.get(f"/segments/{raw}", params={"startTimestamp": "0", "endTimestamp": "3000"})
    assert len(window.json()[0]["OFFLINE"]) == 1
    overlapping = await api.get(f"/segments/{raw}", params={"startTimestamp": "1500", "endTimestamp": "5500"})
    assert len(overlapping.json()[0]["OFFLINE"]) == 2
    excluded = await api.get(
        f"/segments/{raw}",
        params={"startTimestamp": "1500", "endTimestamp": "5500", "excludeOverlapping": "true"},
    )
    assert excluded.json() == [{"OFFLINE": []}]
    assert_error(await api.get(f"/segments/{raw}", params={"startTimestamp": "x"}), 400, "millisSinceEpoch")
    assert_error(await api.get(f"/segments/{raw}", params={"startTimestamp": "9", "endTimestamp": "1"}), 400)

    one = await api.get(f"/segments/{raw}/{names[0]}/metadata")
    assert one.status_code == 200
    zk = one.json()
    assert all(isinstance(v, str) for v in zk.values())
    for key in (
        "segment.total.docs",
        "segment.crc",
        "segment.start.time",
        "segment.end.time",
        "segment.time.unit",
        "segment.size.in.bytes",
        "segment.creation.time",
        "segment.push.time",
    ):
        assert key in zk, key
    assert zk["segment.total.docs"] == "2" and zk["segment.time.unit"] == "MILLISECONDS"
    assert_error(await api.get(f"/segments/{raw}/nope/metadata"), 404, "Failed to find segment: nope")

    every = (await api.get(f"/segments/{table}/metadata")).json()
    assert sorted(every) == sorted(names)
    server = every[names[0]]
    assert server["segmentName"] == names[0] and server["schemaName"] == raw and server["totalDocs"] == 2
    assert isinstance(server["creationTimeMillis"], int) and server["timeColumn"] == "ts"
    assert {server["startTimeMillis"], server["endTimeMillis"]} <= {1000, 1999, 5000, 5999}
    picked = (await api.get(f"/segments/{table}/metadata", params={"segments": names[1]})).json()
    assert list(picked) == [names[1]]

    missing = await api.post(
        "/ingestFromFile", params={"tableNameWithType": table}, files={"file": ("a.csv", b"x")}
    )
    assert_error(missing, 400, "batchConfigMapStr")


async def test_cluster_configs_scalars_and_unset_delete(api: httpx.AsyncClient) -> None:
    key = f"contract.{unique()}"
    other = f"contract.{unique()}"
    stored = await api.post("/cluster/configs", json={key: True, other: 5})
    assert stored.json() == {"status": "Updated cluster config."}
    configs = (await api.get("/cluster/configs")).json()
    assert configs[key] == "true" and configs[other] == "5"
    assert (await api.post("/cluster/configs", json={key: None})).status_code == 200
    assert key not in (await api.get("/cluster/configs")).json()
    unset = await api.delete(f"/cluster/configs/{key}")
    assert unset.status_code == 200 and unset.json() == {"status": f"Deleted cluster config: {key}"}
    assert (await api.delete(f"/cluster/configs/{other}")).status_code == 200
    assert_error(await api.post("/cluster/configs", json={key: {"nested": 1}}), 400)


async def test_health_is_pinot_text(
    api: httpx.AsyncClient, engine: Client, tables: Catalog, data_dir: Path
) -> None:
    healthy = await api.get("/health")
    assert healthy.status_code == 200 and healthy.text == "OK"
    # The same API asking Temporal about a namespace that does not exist: no controller can poll there.
    app = app_for_tests(engine, tables, {"taskplan.dataDir": str(data_dir)})
    nowhere = await Client.connect(engine.service_client.config.target_host, namespace=unique("nowhere"))
    app.dependency_overrides[get_client] = lambda: nowhere
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://taskplan.test") as lonely,
    ):
        sick = await lonely.get("/health")
    assert sick.status_code == 503 and sick.headers["content-type"].startswith("text/plain")
    assert sick.text.startswith("Pinot controller status is BAD (Temporal is not reachable: ")
