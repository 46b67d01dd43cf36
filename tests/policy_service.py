"""A small service for the baseline tests: it listens, and does what each line of stdin says.

Prints its listening port, then per command line one answer line:
  exec PATH [ARG...]  runs the program (a child of the service), prints "done"
  exec_in DIR PATH [ARG...]  the same, in working directory DIR (PATH may be relative to it)
  connect PORT        connects to 127.0.0.1:PORT, sends a byte, reads one, closes; "done"
  hold PORT           connects to 127.0.0.1:PORT and keeps the connection open; "done"
  release             sends a byte on each held connection, reads one, closes it; "done"
  accept              accepts one connection on its port, reads a byte, answers one; "done"
  listen              listens on a new port as well; prints that port
  report UID PATH [ARG...]  runs the program as user UID ('-': the service's own), prints the
                      first line the program printed

A line is split as a shell would (shlex): an argument may hold spaces.
"""

from __future__ import annotations

import shlex
import socket
import subprocess
import sys


def main() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    extra, held = [], []
    print(server.getsockname()[1], flush=True)
    for line in sys.stdin:
        command, *args = shlex.split(line)
        answer = "done"
        if command == "exec":
            subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
        elif command == "exec_in":
            subprocess.run(args[1:], check=True, stdout=subprocess.DEVNULL, cwd=args[0])
        elif command == "connect":
            with socket.create_connection(("127.0.0.1", int(args[0]))) as conn:
                conn.sendall(b"x")
                conn.recv(1)
        elif command == "hold":
            held.append(socket.create_connection(("127.0.0.1", int(args[0]))))
        elif command == "release":
            for conn in held:
                with conn:
                    conn.sendall(b"x")
                    conn.recv(1)
            held.clear()
        elif command == "accept":
            conn, _ = server.accept()
            with conn:
                conn.recv(1)
                conn.sendall(b"y")
        elif command == "listen":
            other = socket.socket()
            other.bind(("127.0.0.1", 0))
            other.listen()
            extra.append(other)
            answer = str(other.getsockname()[1])
        elif command == "report":
            user = None if args[0] == "-" else int(args[0])
            ran = subprocess.run(
                args[1:], check=True, stdout=subprocess.PIPE, text=True, cwd="/",
                user=user, group=user, extra_groups=None if user is None else [],
            )  # fmt: skip
            answer = ran.stdout.partition("\n")[0]
        print(answer, flush=True)


if __name__ == "__main__":
    main()
