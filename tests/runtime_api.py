"""A container runtime's inspect API on a real unix socket, answering with the runtime's
documented JSON (no container runtime runs where groundtruth is tested)."""

from __future__ import annotations

import contextlib
import json
import socketserver
import threading
from http.server import BaseHTTPRequestHandler


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@contextlib.contextmanager
def runtime_api(socket_path, answers: dict[str, dict]):
    """Serves GET url -> answers[url] as JSON (404 otherwise) on socket_path; yields the list
    of urls asked, in order."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # http.server calls it by this name
            asked.append(self.path)
            found = answers.get(self.path)
            body = json.dumps(found if found is not None else {"message": "no such container"})
            self.send_response(200 if found is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args):  # a unix socket has no client address to log
            pass

    server = _Server(str(socket_path), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield asked
    finally:
        server.shutdown()
        server.server_close()
