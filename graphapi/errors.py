"""One error handler: every error leaves as JSON ``{code, name, description}``, never a traceback.

Bad input raises werkzeug's HTTP exceptions (400, 404, ...) with a description that says what is
wrong; the graph's own errors become them here (``FocusNotFound`` 404, ``BadScope`` 400). A
store that cannot be reached is ``StoreUnavailable`` (503: Alertmanager retries a 5xx). Anything
else, including SQL the server rejects as wrong (``storage.QUERY_BUG_CODES``), is a bug: it is
logged with its traceback and answered with a plain 500.
"""

from __future__ import annotations

import logging

from flask import jsonify
from werkzeug.exceptions import (
    BadRequest,
    HTTPException,
    InternalServerError,
    NotFound,
    ServiceUnavailable,
)

from graph.errors import BadScope, FocusNotFound

log = logging.getLogger("groundtruth.graphapi")


class StoreUnavailable(ServiceUnavailable):
    """The event store did not answer; the request can be retried."""


def as_json(error: HTTPException):
    body = {"code": error.code, "name": error.name, "description": error.description}
    response = jsonify(body)
    response.status_code = error.code or 500
    for name, value in error.get_headers():
        if name.lower() in ("www-authenticate", "allow"):  # 401's challenge, 405's methods
            response.headers[name] = value
    return response


def handle(error: Exception):
    if isinstance(error, FocusNotFound):
        error = NotFound(description=str(error))
    elif isinstance(error, BadScope):
        error = BadRequest(description=str(error))
    if isinstance(error, HTTPException):
        return as_json(error)
    log.exception("graphapi: unhandled error")
    return as_json(InternalServerError(description="internal error (logged on the server)"))


def register(app) -> None:
    app.register_error_handler(Exception, handle)
