"""Dependencies shared by the routes, as Annotated aliases: what the API lifespan (api/main.py) built once."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from temporalio.client import Client

from taskplan.bootstrap import Stack
from taskplan.catalog import Catalog
from taskplan.data.segments import SegmentManager
from taskplan.plans import (
    OneShotRunner,
    PlanAborter,
    PlanReader,
    PlanRemover,
    PlanServices,
    PlanStarter,
    TaskDeleter,
    TaskReader,
)
from taskplan.schedules import ScheduleManager


def get_stack(request: Request) -> Stack:
    stack: Stack = request.app.state.stack
    return stack


def get_client(request: Request) -> Client:
    client: Client = request.app.state.client
    return client


def get_catalog(request: Request) -> Catalog:
    return get_stack(request).catalog


def get_schedules(request: Request) -> ScheduleManager:
    schedules: ScheduleManager = request.app.state.schedules
    return schedules


def get_segments(request: Request) -> SegmentManager:
    segments: SegmentManager = request.app.state.segments
    return segments


def _plans(request: Request) -> PlanServices:
    plans: PlanServices = request.app.state.plans
    return plans


def get_starter(request: Request) -> PlanStarter:
    return _plans(request).starter


def get_reader(request: Request) -> PlanReader:
    return _plans(request).reader


def get_aborter(request: Request) -> PlanAborter:
    return _plans(request).aborter


def get_one_shot(request: Request) -> OneShotRunner:
    return _plans(request).one_shot


def get_task_reader(request: Request) -> TaskReader:
    return _plans(request).task_reader


def get_remover(request: Request) -> PlanRemover:
    return _plans(request).remover


def get_task_deleter(request: Request) -> TaskDeleter:
    return _plans(request).task_deleter


StackDep = Annotated[Stack, Depends(get_stack)]
CatalogDep = Annotated[Catalog, Depends(get_catalog)]
ClientDep = Annotated[Client, Depends(get_client)]
SchedulesDep = Annotated[ScheduleManager, Depends(get_schedules)]
SegmentsDep = Annotated[SegmentManager, Depends(get_segments)]
StarterDep = Annotated[PlanStarter, Depends(get_starter)]
ReaderDep = Annotated[PlanReader, Depends(get_reader)]
AborterDep = Annotated[PlanAborter, Depends(get_aborter)]
OneShotDep = Annotated[OneShotRunner, Depends(get_one_shot)]
TaskReaderDep = Annotated[TaskReader, Depends(get_task_reader)]
RemoverDep = Annotated[PlanRemover, Depends(get_remover)]
TaskDeleterDep = Annotated[TaskDeleter, Depends(get_task_deleter)]
