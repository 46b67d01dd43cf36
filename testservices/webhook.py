"""A webhook receiver on a loopback port: what a team's pager would get from Alertmanager.

``WebhookReceiver`` answers every POST with 200 and keeps its JSON body (Alertmanager's
webhook payload, version 4), so a test can wait for a notification and read what it says.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class WebhookReceiver:
    def __init__(self):
        self.payloads: list[dict] = []
        self._lock = threading.Lock()
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with received._lock:
                    received.payloads.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format, *args):  # quiet: the test reads the payloads
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    def alerts(self) -> list[dict]:
        """Every alert of every notification received so far, in arrival order."""
        with self._lock:
            return [a for p in self.payloads for a in p.get("alerts", [])]
