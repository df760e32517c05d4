"""The wall clock in epoch milliseconds: the unit of every timestamp the catalog, the API and Pinot use.

Workflow code never reads it: a workflow's clock is ``workflow.now()``, which replays (workflows/clock.py).
"""

from __future__ import annotations

import time


def now_ms() -> int:
    return int(time.time() * 1000)
