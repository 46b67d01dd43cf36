"""The metrics endpoint, bound before anything else starts and served once it is complete.

``groundtruth run`` binds the ``--listen`` port first: a port already in use is one line at
start-up, before any probe is loaded or any sink has written an event. Serving starts after the
self-tests, so the first scrape carries their verdict (a scrape that comes earlier waits in the
listen backlog).
"""

from __future__ import annotations

import socket
import threading
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from exporter.config import ConfigError


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        """Scrapes are not logged."""


def _not_serving(_environ, start_response):
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"starting\n"]


class MetricsServer:
    """An HTTP server bound to (addr, port) at construction; ``serve(registry)`` starts it."""

    def __init__(self, addr: str, port: int):
        family, _, _, _, sockaddr = socket.getaddrinfo(
            addr, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]

        class MetricsHTTPServer(ThreadingWSGIServer):
            address_family = family

        # An IPv4 or IPv6 address starts with its host as text (typeshed also allows the
        # (int, bytes) of a Python built without IPv6, which cannot listen on such an address).
        host = str(sockaddr[0])
        self._httpd = make_server(
            host, port, _not_serving, MetricsHTTPServer, handler_class=_QuietHandler
        )
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._httpd.server_port

    def serve(self, registry) -> None:
        self._httpd.set_app(make_wsgi_app(registry))
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="metrics", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread = None
        self._httpd.server_close()


def bind_metrics(config) -> MetricsServer:
    """The metrics server on ``config.listen``; a ConfigError naming the address if it cannot
    be bound (in use, not an address of this host, a name that does not resolve)."""
    addr, port = config.listen_address()
    try:
        return MetricsServer(addr, port)
    except OSError as e:
        raise ConfigError(f"cannot serve metrics on {config.listen}: {e.strerror or e}") from None
