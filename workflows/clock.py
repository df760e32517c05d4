"""A workflow's clock in epoch milliseconds: ``workflow.now()``, the same on every replay.

Workflow code reads time only here; code outside workflows uses taskplan/clock.py.
"""

from __future__ import annotations

from temporalio import workflow


def epoch_ms() -> int:
    return int(workflow.now().timestamp() * 1000)
