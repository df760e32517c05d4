"""Task configs a plan reads itself, not its generator: its failure thresholds.

``maxFailedBatches``: batches that may fail before the plan fails (default: the property
``taskplan.plan.maxFailedBatches``). ``maxFailedSubtasksPerBatch``: subtasks of one batch that may fail before
the batch fails (default: ``taskplan.batch.maxFailedSubtasksPerBatch``, 0 as in Helix). Each must be a
non-negative integer: they are checked with the task type's own checks of the task configs, when a plan is
triggered and when a table config is saved (a 400 naming the problem). A plan's ``properties`` show the values
it runs with, defaults included.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from taskplan.models.plan import PlanOptions

MAX_FAILED_BATCHES = "maxFailedBatches"
MAX_FAILED_SUBTASKS_PER_BATCH = "maxFailedSubtasksPerBatch"
MAX_THRESHOLD = 2**31 - 1
_OPTION_OF = {
    MAX_FAILED_BATCHES: "max_failed_batches",
    MAX_FAILED_SUBTASKS_PER_BATCH: "max_failed_subtasks_per_batch",
}
_DIGITS = re.compile(r"[0-9]{1,10}")  # ASCII digits only: int() would also take "٣" or "1_0"


class PlanConfigError(ValueError):
    """A threshold task config that is not a non-negative integer."""


def threshold_problems(configs: Mapping[str, str]) -> list[str]:
    """What is wrong with the thresholds in these task configs (empty: nothing)."""
    problems = []
    for key in _OPTION_OF:
        if key in configs:
            try:
                _threshold(key, configs[key])
            except PlanConfigError as exc:
                problems.append(str(exc))
    return problems


def with_thresholds(configs: Mapping[str, str], defaults: PlanOptions) -> tuple[dict[str, str], PlanOptions]:
    """A plan's properties (its task configs, with the thresholds it runs with) and its options (the defaults,
    with the thresholds the task configs set). Raises PlanConfigError."""
    properties = dict(configs)
    values: dict[str, int] = {}
    for key, option in _OPTION_OF.items():
        value = _threshold(key, configs[key]) if key in configs else getattr(defaults, option)
        values[option] = value
        properties[key] = str(value)
    return properties, defaults.model_copy(update=values)


def _threshold(key: str, raw: object) -> int:
    text = raw.strip() if isinstance(raw, str) else ""
    if not _DIGITS.fullmatch(text) or int(text) > MAX_THRESHOLD:
        shown = raw if isinstance(raw, str) and len(raw) <= 40 else f"{str(raw)[:40]}..."
        raise PlanConfigError(
            f"{key} must be an integer from 0 to {MAX_THRESHOLD}, not {shown!r}",
        )
    return int(text)


def credential_problems(task_configs: Mapping[str, Mapping[str, str]]) -> list[str]:
    """Task configs that carry a password in a URL (``postgresql://user:secret@host/db``), by task type and
    key. Task configs travel through Temporal (a plan's input, its subtasks' inputs, the validator's Update),
    where anyone with access to the namespace or its Web UI reads them in clear, so a password must reach
    the minions another way: libpq's password file or ``PGPASSWORD`` for a PostgreSQL export target, the
    S3 properties for object stores. The value itself is never named."""
    problems = []
    for task_type, configs in task_configs.items():
        for key, value in configs.items():
            if "://" not in value or "@" not in value:
                continue
            try:
                password = urlsplit(value.strip()).password
            except ValueError:
                continue
            if password:
                problems.append(
                    f"{task_type} {key} carries a password in its URL: task configs are stored in Temporal's "
                    "history in clear; leave the password out and give it to the minions (for PostgreSQL: "
                    "a password file, PGPASSFILE or PGPASSWORD)"
                )
    return problems
