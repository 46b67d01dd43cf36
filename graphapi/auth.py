"""Bearer-token authentication, compared in constant time.

With config ``TOKEN`` set, every endpoint but the public ones (health, OpenAPI) needs
``Authorization: Bearer <token>``. Without a token the app is open: ``graphapi.server.serve``
refuses to listen beyond loopback in that case.
"""

from __future__ import annotations

import hmac

from flask import current_app, request
from werkzeug.exceptions import Unauthorized

PUBLIC_ENDPOINTS = {"nodegraph.health", "openapi.document"}


def check_token() -> None:
    token = current_app.config.get("TOKEN") or ""
    if not token or request.endpoint in PUBLIC_ENDPOINTS:
        return
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    ok = scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode("utf-8", "replace"), token.encode("utf-8")
    )
    if not ok:
        raise Unauthorized(description="a valid 'Authorization: Bearer <token>' header is needed")


def register(app) -> None:
    app.before_request(check_token)
