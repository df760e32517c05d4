"""The README's "Running on several hosts" shows the example properties file the multi-host test runs with,
line for line, so the documentation and the test cannot drift apart."""

from __future__ import annotations

import re

from taskplan.settings import parse_properties
from tests.multihost.test_multihost import HEARTBEAT_TIMEOUT_S
from tests.multihost.topology import EXAMPLE_CONFIG, REPO


def section(title: str) -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", text, re.S | re.M)
    assert match, f"README has no section {title!r}"
    return match.group(1)


def test_the_readme_shows_the_example_file_exactly() -> None:
    readme = section("Running on several hosts")
    [block] = re.findall(r"```properties\n(.*?)```", readme, re.S)
    assert parse_properties(block) == parse_properties(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    assert f"taskplan.subtask.heartbeatTimeoutSeconds={HEARTBEAT_TIMEOUT_S}" in readme
