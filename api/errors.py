"""Errors as Pinot's controller returns them: JSON ``{"code": <status>, "error": "<what is wrong>"}``.

Every exception a client can provoke maps to a 4xx here; FastAPI's 422 for invalid input becomes a 400. The
object store failing a call of the API's own is a 503 (unavailable) or a 502 (it refused), with its message.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from taskplan.catalog import SchemaNotFoundError, TableExistsError, TableNotFoundError
from taskplan.models.errors import (
    PlanAlreadyActiveError,
    PlanNotFoundError,
    PlanNotSteerableError,
    TaskAlreadyExistsError,
    TaskNotFoundError,
    TaskStillRunningError,
)
from taskplan.names import InvalidNameError
from taskplan.registry import UnknownTaskTypeError
from taskplan.storage import StorageError, StorageUnavailableError

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


# Domain errors a client can provoke, and the status each one answers with.
STATUS_OF: dict[type[Exception], int] = {
    InvalidNameError: 400,
    PlanNotFoundError: 404,
    TaskNotFoundError: 404,
    UnknownTaskTypeError: 404,
    TableNotFoundError: 404,
    SchemaNotFoundError: 404,
    TableExistsError: 409,
    PlanAlreadyActiveError: 409,
    TaskAlreadyExistsError: 409,
    TaskStillRunningError: 409,
    PlanNotSteerableError: 409,
    # The deep store failing a call the API makes itself (POST /ingestFromFile): the store's own message
    # (never a secret). Down or overloaded (retry later): 503; refusing (credentials, bucket): 502.
    StorageUnavailableError: 503,
    StorageError: 502,
}


def _status_handler(status: int) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handle(_: Request, exc: Exception) -> Response:
        return error_response(status, str(exc))

    return handle


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

    for exc_type, status in STATUS_OF.items():
        app.add_exception_handler(exc_type, _status_handler(status))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal error; see the API log")
