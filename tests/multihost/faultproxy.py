"""A fault-injecting HTTP proxy in front of the S3 server (moto), switchable at run time: what the taskplan
processes call ``http://s3:5000`` is this proxy, which forwards every request to moto on another port of the
same host, or answers it with an error, or forwards it late.

    python -m tests.multihost.faultproxy --listen 10.213.7.12:5000 --upstream http://10.213.7.12:5001

Control (from the test process), on the same port under a path no bucket can have (``_`` is not allowed in
bucket names):

    PUT /__fault__   {"mode": "pass"}                               # forward everything
    PUT /__fault__   {"mode": "error", "status": 503}               # SlowDown for every request
    PUT /__fault__   {"mode": "error", "status": 500, "rate": 0.5}  # InternalError for half of them
    PUT /__fault__   {"mode": "slow", "delay": 2.0}                 # each request forwarded 2 s late
    GET /__fault__   the mode and the counters (requests forwarded, errors answered)

A "restart" of the S3 server is this process killed (SIGKILL: open connections reset mid-request) and started
again after a while (connections refused meanwhile), moto's state kept behind it: moto keeps its objects in
memory only, and a real S3 endpoint's restart keeps its disks.
"""

from __future__ import annotations

import argparse
import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

CONTROL_PATH = "/__fault__"
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "proxy-connection", "trailer"}
ERROR_CODES = {500: "InternalError", 503: "SlowDown", 502: "BadGateway", 504: "GatewayTimeout"}


@dataclass
class Fault:
    mode: str = "pass"  # pass | error | slow
    status: int = 503
    rate: float = 1.0  # the share of requests the fault hits
    delay: float = 0.0  # slow: seconds before a request is forwarded
    forwarded: int = 0
    errors: int = 0
    delayed: int = 0


def build_app(upstream: str) -> Starlette:
    fault = Fault()
    client = httpx.AsyncClient(base_url=upstream, timeout=httpx.Timeout(300, connect=5))

    async def control(request: Request) -> Response:
        if request.method == "PUT":
            wanted = await request.json()
            mode = wanted.get("mode", "pass")
            if mode not in ("pass", "error", "slow"):
                return JSONResponse({"error": f"mode must be pass, error or slow, not {mode!r}"}, 400)
            fault.mode = mode
            fault.status = int(wanted.get("status", 503))
            fault.rate = float(wanted.get("rate", 1.0))
            fault.delay = float(wanted.get("delay", 0.0))
        return JSONResponse(asdict(fault))

    async def forward(request: Request) -> Response:
        body = await request.body()  # read whole: an error answer must not leave it half-read
        hit = fault.mode != "pass" and random.random() < fault.rate
        if hit and fault.mode == "error":
            fault.errors += 1
            code = ERROR_CODES.get(fault.status, "InternalError")
            xml = (
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                f"<Error><Code>{code}</Code><Message>injected by the test's fault proxy</Message>"
                f"<Resource>{request.url.path}</Resource><RequestId>fault</RequestId></Error>"
            )
            return Response(xml, status_code=fault.status, media_type="application/xml")
        if hit and fault.mode == "slow":
            fault.delayed += 1
            await asyncio.sleep(fault.delay)
        headers = [(k, v) for k, v in request.headers.raw if k.decode("latin-1").lower() not in HOP_BY_HOP]
        sent = client.build_request(
            request.method, request.url.path, params=request.url.query, headers=headers, content=body
        )
        answer = await client.send(sent, stream=True)
        fault.forwarded += 1
        out_headers = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}

        async def stream() -> AsyncIterator[bytes]:
            try:
                async for chunk in answer.aiter_raw():
                    yield chunk
            finally:
                await answer.aclose()

        return StreamingResponse(stream(), status_code=answer.status_code, headers=out_headers)

    methods = ["GET", "PUT", "POST", "DELETE", "HEAD"]
    return Starlette(
        routes=[
            Route(CONTROL_PATH, control, methods=["GET", "PUT"]),
            Route("/{path:path}", forward, methods=methods),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", required=True, help="host:port")
    parser.add_argument("--upstream", required=True, help="the S3 server's URL")
    args = parser.parse_args()
    host, port = args.listen.rsplit(":", 1)
    uvicorn.run(build_app(args.upstream), host=host, port=int(port), log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
