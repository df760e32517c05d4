"""Cross-site request protection: a state-changing request sent by a page of another origin is refused.

A browser that holds the API's Basic credentials (the plan page asked for them) attaches them to any
request to the API, whoever's page sends it: a form on another site can POST to ``/tasks/schedule`` or
``/schemas`` (multipart), and a script can send a CORS-safelisted POST without asking first. Such a request
always tells where it comes from: modern browsers send ``Sec-Fetch-Site`` and ``Origin`` with every
non-GET request, older ones at least a ``Referer``. So for every method but GET, HEAD and OPTIONS:

- ``Sec-Fetch-Site: same-origin`` or ``none`` (the user's own action) passes;
- otherwise an ``Origin`` (or, without one, the ``Referer``'s origin) must be the API's own (the scheme of
  the connection, the ``Host`` it was asked for) or one of ``taskplan.api.allowedOrigins``; ``Origin: null``
  (a sandboxed or file page) never is;
- a request with none of these headers is not a browser's: curl, scripts and the ``taskplan`` CLI pass.

Refused requests answer 403 ``{code, error}`` before any route runs (so before authentication: nothing of
the request is read). GET endpoints change nothing, so they need no check; the plan page's buttons send
same-origin ``fetch`` requests, which carry ``Sec-Fetch-Site: same-origin`` and their ``Origin``.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_origin(url: str) -> str | None:
    """``scheme://host:port`` of a URL (the default port spelled out), or None for what is not one."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower()
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}:{port or DEFAULT_PORTS[scheme]}"


def allowed_origins(origins: Iterable[str]) -> frozenset[str]:
    return frozenset(o for o in (normalize_origin(a) for a in origins) if o is not None)


class CrossSiteGuard:
    """ASGI middleware: the check described in the module docstring. The allowed origins are the app's
    ``state.allowed_origins`` (``allowed_origins(settings)``, set by the lifespan)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        problem = self.problem(scope)
        if problem is None:
            await self.app(scope, receive, send)
            return
        refusal = JSONResponse(
            {"code": 403, "error": problem}, status_code=403, headers={"vary": "Origin, Sec-Fetch-Site"}
        )
        await refusal(scope, receive, send)

    def problem(self, scope: Scope) -> str | None:
        """Why the request is refused, or None when it may go on."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        site = headers.get("sec-fetch-site", "").strip().lower()
        if site in ("same-origin", "none"):
            return None
        origin = headers.get("origin")
        source = "Origin"
        if origin is None and "referer" in headers:
            origin, source = headers["referer"], "Referer"
        if origin is None:
            if site in ("same-site", "cross-site"):  # a browser that sent neither Origin nor Referer
                return f"cross-site request refused: Sec-Fetch-Site {site} without an Origin"
            return None  # not a browser
        claimed = normalize_origin(origin)
        allowed: frozenset[str] = getattr(scope["app"].state, "allowed_origins", frozenset())
        if claimed is not None and (claimed == self.own_origin(scope, headers) or claimed in allowed):
            return None
        shown = origin if len(origin) <= 200 else origin[:200] + "..."
        return (
            f"cross-site request refused: {source} {shown!r} is not this API's origin nor one of "
            "taskplan.api.allowedOrigins"
        )

    @staticmethod
    def own_origin(scope: Scope, headers: dict[str, str]) -> str | None:
        scheme = scope.get("scheme", "http")
        host = headers.get("host")
        if host is None:
            server = scope.get("server")
            if not server:
                return None
            host = f"{server[0]}:{server[1]}"
        return normalize_origin(f"{scheme}://{host}")
