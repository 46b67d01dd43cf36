"""A small HTTP server for the TCP benchmark: one connection per request, closed after the reply.

Prints its port, serves until SIGTERM, then prints how many connections it accepted: the
number of connections the probe must account for.
"""

from __future__ import annotations

import signal
import socket
import sys

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


def main() -> None:
    listener = socket.create_server(("127.0.0.1", 0), backlog=512)
    print(listener.getsockname()[1], flush=True)
    accepted = 0

    def stop(*_):
        print(accepted, flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    while True:
        conn, _ = listener.accept()
        accepted += 1
        conn.recv(4096)
        conn.sendall(RESPONSE)
        conn.close()


if __name__ == "__main__":
    main()
