"""Pinot's instances (``GET /instances``) from the workers polling their task queues: a minion is a worker
identity polling a ``minion-<tag>.<TaskType>`` queue (its tags are the queues' tags), a controller one
polling ``taskplan-controller``. Temporal lists a queue's pollers of the last few minutes."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from taskplan.names import CONTROLLER_TASK_QUEUE, minion_task_queue

MINION_PREFIX = "Minion_"
CONTROLLER_PREFIX = "Controller_"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_ROLE_IDENTITY = re.compile(r"^(?:minion\[[^\]]*\]|controller)@(?P<worker>.+)$")


@dataclass
class Instance:
    """A worker seen polling, as Pinot's InstanceConfig shows an instance."""

    instance_name: str
    host_name: str
    identity: str
    tags: set[str] = field(default_factory=set)
    last_poll_ms: int = 0


def host_and_pid(identity: str) -> tuple[str, str | None]:
    """(host, pid) of a Temporal worker identity: taskplan's workers poll as ``minion[<tag>]@<host>-<pid>``
    and ``controller@<host>-<pid>`` (worker.py), the SDK's default is ``<pid>@<host>``; another identity is
    its own host, without a pid."""
    role = _ROLE_IDENTITY.fullmatch(identity)
    if role is not None:
        host, dash, pid = role["worker"].rpartition("-")
        return (host, pid) if dash and host and pid.isdigit() else (role["worker"], None)
    pid, at, host = identity.partition("@")
    return (host, pid) if at and host and pid.isdigit() else (identity, None)


def instance_name(prefix: str, identity: str) -> str:
    """``Minion_<host>_<pid>`` (``Controller_...``) from a worker identity (see host_and_pid): one name per
    worker process, whatever queues it polls; characters outside ``[A-Za-z0-9_.-]`` as ``_``."""
    host, pid = host_and_pid(identity)
    return prefix + _UNSAFE.sub("_", f"{host}_{pid}" if pid else host)


def minion_name(identity: str) -> str:
    """The ``GET /instances`` name of the minion behind a worker identity (Pinot's subtask participant)."""
    return instance_name(MINION_PREFIX, identity)


class InstanceLister:
    def __init__(self, client: Client) -> None:
        self.client = client

    async def _pollers(self, queue: str, queue_type: TaskQueueType.ValueType) -> list[tuple[str, int]]:
        described = await self.client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=self.client.namespace,
                task_queue=TaskQueue(name=queue),
                task_queue_type=queue_type,
            )
        )
        return [
            (p.identity, int(p.last_access_time.ToMilliseconds())) for p in described.pollers if p.identity
        ]

    async def instances(self, tags: Iterable[str], task_types: Iterable[str]) -> dict[str, Instance]:
        """Instance name -> instance: minions polling any (tag, task type) queue, controllers polling the
        controller queue."""
        queues = [
            (tag, minion_task_queue(tag, t)) for tag in sorted(set(tags)) for t in sorted(set(task_types))
        ]
        polled = await asyncio.gather(
            *(self._pollers(q, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY) for _, q in queues),
            self._pollers(CONTROLLER_TASK_QUEUE, TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW),
        )
        found: dict[str, Instance] = {}
        for (tag, _), pollers in zip(queues, polled[:-1], strict=True):
            for identity, last in pollers:
                name = instance_name(MINION_PREFIX, identity)
                instance = found.setdefault(name, Instance(name, host_and_pid(identity)[0], identity))
                instance.tags.add(tag)
                instance.last_poll_ms = max(instance.last_poll_ms, last)
        for identity, last in polled[-1]:
            name = instance_name(CONTROLLER_PREFIX, identity)
            instance = found.setdefault(name, Instance(name, host_and_pid(identity)[0], identity))
            instance.last_poll_ms = max(instance.last_poll_ms, last)
        return found
