"""The investigation pages' blueprint: its templates and static files, the security headers every
page carries, and errors shown as a page rather than as JSON.

Everything a page loads comes from graphapi itself (an air-gapped host has no CDN), and the
Content-Security-Policy says so: scripts and styles from this origin only, never inline, no
frames, no plugins, forms posting here only. Output is escaped by Jinja's autoescape (Flask's
default for ``.html`` templates): argv and container names are hostile input.
"""

from __future__ import annotations

import logging

from flask import Blueprint, render_template
from werkzeug.exceptions import BadRequest, HTTPException, InternalServerError, NotFound

from graph.errors import BadScope, FocusNotFound
from graph.nodegraph_fields import iso
from graphapi.errors import StoreUnavailable
from graphapi.pages.window import PRESETS
from incident.errors import IncidentError, NothingFound

log = logging.getLogger("groundtruth.graphapi")

bp = Blueprint(
    "pages",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


@bp.after_request
def security_headers(response):
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    if response.mimetype == "text/html":
        response.headers["Cache-Control"] = "no-store"  # pages show the store as of now
    return response


def as_http_error(error: Exception) -> HTTPException:
    """What a page's failure is for the user: the graph's and the timeline's own errors become
    the HTTP errors the API answers for them (404, 400, 503)."""
    if isinstance(error, HTTPException):
        return error
    if isinstance(error, FocusNotFound | NothingFound):
        return NotFound(description=str(error))
    if isinstance(error, BadScope):
        return BadRequest(description=str(error))
    if isinstance(error, IncidentError):  # bad input (exit 2), else the store failed
        if error.exit_code == 2:
            return BadRequest(description=str(error))
        return StoreUnavailable(description=str(error))
    log.exception("graphapi: unhandled error on a page")
    return InternalServerError(description="internal error (logged on the server)")


@bp.errorhandler(Exception)
def error_page(error: Exception):
    error = as_http_error(error)
    code = error.code or 500
    return render_template("pages/error.html", error=error, code=code), code


@bp.context_processor
def window_presets() -> dict:
    return {"presets": PRESETS}


@bp.app_template_filter("iso")
def iso_filter(ns: int) -> str:
    """ns since the epoch -> RFC 3339 UTC ('' for 0), for ``<time datetime>``."""
    return iso(ns or 0)
