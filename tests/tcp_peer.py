"""Client and server processes for the TCP probe tests: real sockets, exact byte counts.

server FAMILY SEND RECV CONNS [MODE] [PORT]
                                       prints its port (PORT, or one the kernel chose), then
                                       for each connection: reads RECV bytes, writes SEND,
                                       waits for the peer to close. MODE `fork`: a worker per
                                       connection does that and the server prints "<worker
                                       pid> <peer port>" for each; `prefork`: workers accept;
                                       `full`: a backlog of one; `closes-first`: closes
                                       without waiting for the peer; `-`: none of these.
client FAMILY PORT SEND RECV CONNS [hold] [hold-after] [one-syn-retry] [waits-for-eof]
                                       per connection: writes SEND, reads RECV, closes, and
                                       prints its local port ("refused" if refused). With
                                       `hold`: connects once, prints the port and keeps the
                                       connection open until stdin closes (`hold-after`:
                                       the same once its bytes are written and read). With
                                       `one-syn-retry`: resends its SYN once, then gives up
                                       ("timeout"). With `waits-for-eof`: closes after the
                                       server has.
After its work each process prints "done" and waits for a line on stdin before exiting, so
the test can read /proc/<pid>/stat while it lives.
"""

from __future__ import annotations

import os
import socket
import sys

HOSTS = {"ipv4": ("127.0.0.1", socket.AF_INET), "ipv6": ("::1", socket.AF_INET6)}


def say(*words) -> None:
    """One line in one write(): forked workers share the pipe, and lines must not interleave."""
    os.write(1, (" ".join(map(str, words)) + "\n").encode())


def read_exactly(sock: socket.socket, n: int) -> None:
    while n:
        chunk = sock.recv(min(n, 65536))
        if not chunk:
            raise SystemExit(f"peer closed with {n} bytes still expected")
        n -= len(chunk)


def serve_one(conn: socket.socket, send: int, recv: int, closes_first: bool = False) -> None:
    if recv:
        conn.recv(16, socket.MSG_PEEK)  # looked at, not taken: not counted as received
    read_exactly(conn, recv)
    conn.sendall(b"s" * send)
    if not closes_first:
        conn.recv(1)  # EOF: the client closes first
    conn.close()


def prefork(listener: socket.socket, workers: int) -> None:
    """Workers that each accept one connection and close it unused: their close() names them."""
    pids = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            try:
                conn, peer = listener.accept()
                say(os.getpid(), peer[1])
                conn.close()
            finally:
                os._exit(0)  # never return into the parent's code
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)


def server(
    family: str, send: int, recv: int, conns: int, mode: str = "", port: str = "0"
) -> socket.socket:
    host, af = HOSTS[family]
    listener = socket.socket(af, socket.SOCK_STREAM)
    listener.bind((host, int(port)))
    listener.listen(0 if mode == "full" else 16)  # `full`: room for one connection, no more
    say(listener.getsockname()[1])
    if mode == "prefork":
        prefork(listener, conns)
        return listener
    for _ in range(conns):
        conn, peer = listener.accept()
        if mode != "fork":
            say("accepted", peer[1])
            serve_one(conn, send, recv, closes_first=mode == "closes-first")
            continue
        pid = os.fork()
        if pid == 0:
            try:
                listener.close()
                serve_one(conn, send, recv)
            finally:
                os._exit(0)  # never return into the parent's code
        conn.close()
        say(pid, peer[1])
        os.waitpid(pid, 0)
    # Kept open until the process exits: connections nobody accepted end then.
    return listener


def client(family: str, port: int, send: int, recv: int, conns: int, *flags: str) -> None:
    host, af = HOSTS[family]
    for _ in range(conns):
        sock = socket.socket(af, socket.SOCK_STREAM)
        if "one-syn-retry" in flags:  # give up after ~3 s instead of ~2 minutes
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_SYNCNT, 1)
        try:
            sock.connect((host, port))
        except ConnectionRefusedError:
            say("refused")
            continue
        except TimeoutError:
            say("timeout")
            continue
        local_port = sock.getsockname()[1]
        if "hold" in flags:
            say(local_port)
            sys.stdin.readline()
        if send:
            sock.sendall(b"c" * send)
        read_exactly(sock, recv)
        if "hold-after" in flags:
            say(local_port)
            sys.stdin.readline()
        if "waits-for-eof" in flags:  # the server closes first
            assert sock.recv(1) == b""
        sock.close()
        say(local_port)


def main(argv: list[str]) -> None:
    role, family, *nums = argv[:6]
    flag = argv[6:] if role == "client" else argv[5:]
    if role == "server":
        send, recv, conns = map(int, nums[:3])
        listener = server(family, send, recv, conns, *flag)  # noqa: F841 - open until exit
    else:
        port, send, recv, conns = map(int, nums[:4])
        client(family, port, send, recv, conns, *flag)
    say("done")
    sys.stdin.readline()


if __name__ == "__main__":
    main(sys.argv[1:])
