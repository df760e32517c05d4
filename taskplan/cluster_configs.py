"""The cluster configs taskplan reads at run time, how their values are checked, and which names are refused.

``POST /cluster/configs`` stores a value in the catalog; whoever uses a key reads it from there each time it
acts, so a change takes effect within one poll and removing it (``DELETE``) falls back to the property:

- ``controller.startree.task.manager.enableTaskOrchestration`` (true/false): every trigger, and every plan
  before its next batch (the gate);
- ``controller.startree.task.manager.orphanedTaskPlanCleanupIntervalInSeconds`` (1 or more): the cleanup
  sweep, which rereads it every ``CONFIG_POLL_S`` seconds;
- ``taskplan.limits.maxInFlightSubtasksPerTable`` / ``taskplan.limits.maxInFlightSubtasks`` (0 or more,
  0: no limit): the gate, before every batch.

Any other name in taskplan's property namespaces (``controller.``, ``taskplan.``, ``temporal.``, ``otel.``)
is refused: it is a start-up property, read once from the properties file, or a name taskplan does not know
(a typo of a run-time key). Names outside them are stored and listed as Pinot does, and nothing reads them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from taskplan.settings import (
    ENABLE_ORCHESTRATION,
    MAX_IN_FLIGHT,
    MAX_IN_FLIGHT_PER_TABLE,
    ORPHAN_CLEANUP_INTERVAL,
    PRINCIPALS,
    Settings,
)

log = logging.getLogger(__name__)

CONFIG_POLL_S = 5.0  # how often a loop that sleeps long (the cleanup sweep) rereads its cluster configs
MAX_INT = 2**31 - 1  # Pinot reads these as Java ints
PROPERTY_NAMESPACES = ("controller.", "taskplan.", "temporal.", "otel.")
# Properties read by name rather than as typed settings (telemetry, access control).
UNTYPED_PROPERTIES = ("otel.exporter.otlp.endpoint", "temporal.sdk.metricsPort")
_DIGITS = re.compile(r"[0-9]{1,10}")  # ASCII only: int() would also take '²' or Arabic-Indic digits


@dataclass(frozen=True)
class RuntimeKey:
    describe: str  # what a value must be, for the 400
    parse: Callable[[str], bool | int | None]  # None: not a valid value


def _boolean(value: str) -> bool | None:
    return {"true": True, "false": False}.get(value.strip().lower())


def _whole(minimum: int) -> Callable[[str], int | None]:
    def parse(value: str) -> int | None:
        if not _DIGITS.fullmatch(value):
            return None
        number = int(value)
        return number if minimum <= number <= MAX_INT else None

    return parse


RUNTIME_KEYS: dict[str, RuntimeKey] = {
    ENABLE_ORCHESTRATION: RuntimeKey("true or false", _boolean),
    ORPHAN_CLEANUP_INTERVAL: RuntimeKey(f"a whole number of seconds from 1 to {MAX_INT}", _whole(1)),
    MAX_IN_FLIGHT_PER_TABLE: RuntimeKey(f"a whole number from 0 (no limit) to {MAX_INT}", _whole(0)),
    MAX_IN_FLIGHT: RuntimeKey(f"a whole number from 0 (no limit) to {MAX_INT}", _whole(0)),
}


def _startup_property(key: str) -> bool:
    aliases = {info.alias for info in Settings.model_fields.values()}
    return key in aliases or key in UNTYPED_PROPERTIES or key.startswith(PRINCIPALS)


def problem(key: str, value: str) -> str | None:
    """Why ``key=value`` cannot be stored as a cluster config, or None if it can."""
    spec = RUNTIME_KEYS.get(key)
    if spec is not None:
        if spec.parse(value) is None:
            shown = value if len(value) <= 50 else value[:50] + "..."
            return f"cluster config {key} must be {spec.describe}, got {shown!r}"
        return None
    if not key.lower().startswith(PROPERTY_NAMESPACES):
        return None
    runtime = ", ".join(RUNTIME_KEYS)
    if _startup_property(key):
        return (
            f"cluster config {key} is a start-up property: set it in the properties file and restart "
            f"(cluster configs that change at run time: {runtime})"
        )
    return f"cluster config {key} is not a taskplan setting (those that change at run time: {runtime})"


def runtime_int(configs: Mapping[str, str], key: str, default: int) -> int:
    """A whole-number cluster config, or ``default`` (the property) when unset or not valid.

    The API refuses invalid values; one written to the catalog directly is ignored with a warning."""
    raw = configs.get(key)
    if raw is None:
        return default
    value = RUNTIME_KEYS[key].parse(raw)
    if isinstance(value, bool) or value is None:
        log.warning("cluster config %s=%r is not valid: using the property, %s", key, raw, default)
        return default
    return value
