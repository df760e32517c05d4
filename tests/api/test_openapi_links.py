"""The OpenAPI links (taskplan/api/openapi_links.py) in the served schema, every one resolving to an
operation of the API. That schemathesis follows them is tested by tests/chaos/test_fuzz.py."""

from __future__ import annotations

import httpx
import pytest

from taskplan.api.main import create_app
from taskplan.api.openapi_links import LINKS, Link, add_links


async def test_the_served_schema_links_a_table_to_its_plans(http: httpx.AsyncClient) -> None:
    spec = (await http.get("/openapi.json")).json()
    operation_ids = {op["operationId"] for ops in spec["paths"].values() for op in ops.values()}
    found = 0
    for method, path in {link.source for link in LINKS}:
        for link in spec["paths"][path][method]["responses"]["200"]["links"].values():
            assert link["operationId"] in operation_ids and link["description"]
            found += 1
    assert found == len(LINKS)
    trigger = spec["paths"]["/tasks/execute"]["post"]["responses"]["200"]["links"]
    assert trigger["GetPlan"]["parameters"] == {"planId": "$response.body#/taskPlanId"}
    assert (
        trigger["AbortPlan"]["operationId"]
        == spec["paths"]["/tasks/taskPlans/{planId}"]["delete"]["operationId"]
    )


def test_a_link_to_a_missing_operation_is_refused() -> None:
    spec = create_app().openapi()
    wrong = Link("Nowhere", ("post", "/tables"), ("get", "/no/such/path"), "nothing")
    with pytest.raises(ValueError, match="GET /no/such/path, which the API does not have"):
        add_links(spec, [wrong])
