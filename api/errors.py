"""Errors as Pinot's controller returns them: JSON ``{"code": <status>, "error": "<what is wrong>"}``.

Every exception a client can provoke maps to a 4xx here; FastAPI's 422 for invalid input becomes a 400.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from taskplan.catalog import SchemaNotFoundError, TableExistsError, TableNotFoundError
from taskplan.names import InvalidNameError
from taskplan.registry import UnknownTaskTypeError
from taskplan.service import PlanAlreadyActiveError, PlanNotFoundError, TaskNotFoundError

log = logging.getLogger(__name__)


class ErrorResponse(BaseModel):
    code: int
    error: str


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"code": status, "error": message}, status_code=status)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg", "invalid")))
    return "invalid request: " + "; ".join(parts)


ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in {
        400: "bad input",
        401: "no or wrong credentials",
        403: "not allowed for this principal",
        404: "not found",
        409: "conflict",
    }.items()
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, _validation_message(exc))

    @app.exception_handler(InvalidNameError)
    async def _name(_: Request, exc: InvalidNameError) -> JSONResponse:
        return error_response(400, str(exc))

    @app.exception_handler(PlanNotFoundError)
    async def _plan(_: Request, exc: PlanNotFoundError) -> JSONResponse:
        return error_response(404, str(exc))

    @app.exception_handler(TaskNotFoundError)
    async def _task(_: Request, exc: TaskNotFoundError) -> JSONResponse:
        return error_response(404, str(exc))

    @app.exception_handler(UnknownTaskTypeError)
    async def _task_type(_: Request, exc: UnknownTaskTypeError) -> JSONResponse:
        return error_response(404, str(exc))

    @app.exception_handler(TableNotFoundError)
    async def _table(_: Request, exc: TableNotFoundError) -> JSONResponse:
        return error_response(404, str(exc))

    @app.exception_handler(SchemaNotFoundError)
    async def _schema(_: Request, exc: SchemaNotFoundError) -> JSONResponse:
        return error_response(404, str(exc))

    @app.exception_handler(TableExistsError)
    async def _exists(_: Request, exc: TableExistsError) -> JSONResponse:
        return error_response(409, str(exc))

    @app.exception_handler(PlanAlreadyActiveError)
    async def _active(_: Request, exc: PlanAlreadyActiveError) -> JSONResponse:
        return error_response(409, str(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal error; see the API log")
