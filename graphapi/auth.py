"""Bearer-token authentication, compared in constant time.

With config ``TOKEN`` set, every endpoint but the public ones (health, OpenAPI, the pages'
login form and static files) needs ``Authorization: Bearer <token>``. The investigation pages
also take the token from the cookie their login form sets; without it they send the browser to
that form rather than answering a JSON 401. Without a token the app is open:
``graphapi.server.serve`` refuses to listen beyond loopback in that case.
"""

from __future__ import annotations

import hmac

from flask import current_app, redirect, request, url_for
from werkzeug.exceptions import Unauthorized

PUBLIC_ENDPOINTS = {"nodegraph.health", "openapi.document", "pages.login", "pages.static"}
PAGES = "pages"  # the investigation pages' blueprint
COOKIE = "groundtruth_token"


def is_token(given: str) -> bool:
    """Whether ``given`` is the configured token (constant time)."""
    token = current_app.config.get("TOKEN") or ""
    return hmac.compare_digest(given.strip().encode("utf-8", "replace"), token.encode("utf-8"))


def check_token():
    token = current_app.config.get("TOKEN") or ""
    if not token or request.endpoint in PUBLIC_ENDPOINTS:
        return None
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() == "bearer" and is_token(given):
        return None
    if request.blueprint == PAGES:
        if is_token(request.cookies.get(COOKIE, "")):
            return None
        return redirect(url_for("pages.login", next=request.full_path.rstrip("?")))
    raise Unauthorized(description="a valid 'Authorization: Bearer <token>' header is needed")


def register(app) -> None:
    app.before_request(check_token)
