"""Dependencies shared by the routes, as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from temporalio.client import Client

from taskplan.bootstrap import Stack
from taskplan.catalog import Catalog
from taskplan.schedules import ScheduleManager
from taskplan.service import TaskPlanService


def get_stack(request: Request) -> Stack:
    stack: Stack = request.app.state.stack
    return stack


def get_client(request: Request) -> Client:
    client: Client = request.app.state.client
    return client


def get_service(request: Request) -> TaskPlanService:
    service: TaskPlanService = request.app.state.service
    return service


def get_schedules(request: Request) -> ScheduleManager:
    schedules: ScheduleManager = request.app.state.schedules
    return schedules


def get_catalog(request: Request) -> Catalog:
    stack: Stack = request.app.state.stack
    if stack.catalog is None:
        raise RuntimeError("the API runs without a catalog")
    return stack.catalog


StackDep = Annotated[Stack, Depends(get_stack)]
CatalogDep = Annotated[Catalog, Depends(get_catalog)]
ClientDep = Annotated[Client, Depends(get_client)]
ServiceDep = Annotated[TaskPlanService, Depends(get_service)]
SchedulesDep = Annotated[ScheduleManager, Depends(get_schedules)]
