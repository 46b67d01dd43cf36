"""Serving the app with waitress (a production WSGI server), loopback-only without a token."""

from __future__ import annotations

import ipaddress
import logging

log = logging.getLogger("groundtruth.graphapi")


class InsecureListen(ValueError):
    """Listening beyond loopback without a bearer token."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def check_listen(app, host: str) -> None:
    if not app.config.get("TOKEN") and not is_loopback(host):
        raise InsecureListen(
            f"refusing to listen on {host} without a token: set one (--token-file or "
            "GROUNDTRUTH_GRAPHAPI_TOKEN) or listen on 127.0.0.1"
        )


def make_server(app, host: str, port: int, threads: int = 4):
    """A waitress server bound to host:port (port 0: a free one); ``.run()`` serves."""
    from waitress.server import create_server

    check_listen(app, host)
    return create_server(app, host=host, port=port, threads=threads, ident="groundtruth-graphapi")


def serve(app, host: str = "127.0.0.1", port: int = 8080, threads: int = 4) -> None:
    """Serve ``app`` until interrupted."""
    server = make_server(app, host, port, threads)
    log.info("graphapi: listening on http://%s:%s", host, server.effective_port)
    server.run()
