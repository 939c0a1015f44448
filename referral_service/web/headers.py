"""Which paths are the web workspace, and the security headers every one of its answers carries.

The machine surfaces (FHIR, the JSON API, tokens, discovery, probes, the OpenAPI document) keep
their own conventions: OperationOutcome errors, no page headers. Every other path is the web
workspace, including paths that do not exist (a person who mistypes a URL gets a page, not JSON).
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MACHINE_PREFIXES = (
    "/fhir",
    "/api",
    "/auth",
    "/.well-known",
    "/healthz",
    "/readyz",
    "/openapi.json",
    "/docs",
    "/redoc",
)
STATIC_PREFIX = "/static"

# No inline script or style anywhere (the stylesheet and htmx are files under /static); images
# may be data: URIs, which is how the second-factor QR code is shown.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# Pages may show person-level data: never kept by the browser or a proxy. Static files may be.
NO_STORE = {"Cache-Control": "no-store"}


def is_web_path(path: str) -> bool:
    return not any(path == p or path.startswith(f"{p}/") for p in MACHINE_PREFIXES)


def headers_for(path: str) -> dict[str, str]:
    if path == STATIC_PREFIX or path.startswith(f"{STATIC_PREFIX}/"):
        return PAGE_HEADERS
    return {**PAGE_HEADERS, **NO_STORE}


class SecurityHeaders:
    """Adds the headers to every web answer: pages, redirects, static files, error pages."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_web_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        wanted = headers_for(scope["path"])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in wanted.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
