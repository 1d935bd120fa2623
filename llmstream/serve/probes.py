"""`/healthz`, `/readyz` and `/metrics` on the app's own port, for load balancers,
Kubernetes and Prometheus.

They are plain Starlette routes given to Gradio's FastAPI app when it is made (Gradio's
`app_kwargs`), so they answer from the first request, beside the page and outside Gradio's
queue and login. `/healthz` and `/readyz` stay open and say only whether the process lives
and can serve; with a login set, `/metrics` asks for the same user and password as HTTP
basic auth (what Prometheus's `basic_auth` sends).
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Callable, Sequence

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from llmstream.backends.catalog import Catalog
from llmstream.backends.embedded.backend import EmbeddedBackend

from .metrics import CONTENT_TYPE_LATEST, Metrics


def readiness(catalog: Catalog, draining: bool = False) -> str | None:
    """Why this process can't take a new chat now, in a few words; None when it can."""
    if draining:
        return "draining"
    if not catalog.routes:
        return "no model is available"
    embedded = [b for b in catalog.backends.values() if isinstance(b, EmbeddedBackend)]
    if embedded and len(embedded) == len(catalog.backends) and not any(b.loaded for b in embedded):
        failed = all(b.problem is not None and not b.preparing for b in embedded)
        return "the model failed to load" if failed else "loading the model"
    return None


def authorized(header: str | None, logins: Sequence[tuple[str, str]]) -> bool:
    """Whether an `Authorization: Basic ...` header names one of the logins (no login: anyone).

    >>> authorized(None, []), authorized(None, [("ops", "pw")]), authorized("Basic b3BzOnB3", [("ops", "pw")])
    (True, False, True)
    """
    if not logins:
        return True
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    found = False
    for name, secret in logins:  # every login compared, in constant time: no timing tells which matched
        found |= secrets.compare_digest(user.encode(), name.encode()) & secrets.compare_digest(
            password.encode(), secret.encode()
        )
    return bool(sep) and found


def routes(
    catalog: Catalog, metrics: Metrics, logins: Sequence[tuple[str, str]], draining: Callable[[], bool]
) -> list[Route]:
    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        reason = readiness(catalog, draining())
        if reason is None:
            return PlainTextResponse("ready\n")
        return PlainTextResponse(f"not ready: {reason}\n", status_code=503)

    async def metrics_text(request: Request) -> Response:
        if not authorized(request.headers.get("authorization"), logins):
            return PlainTextResponse(
                "login required\n", status_code=401, headers={"WWW-Authenticate": 'Basic realm="llmstream metrics"'}
            )
        return Response(metrics.text(), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/readyz", readyz, methods=["GET", "HEAD"]),
        Route("/metrics", metrics_text, methods=["GET"]),
    ]
