"""``groundtruth graphapi``: serve the causal graph and the Alertmanager webhook."""

from __future__ import annotations

import logging
import os
import sys

from store.cli import add_store_arguments, open_store_from_args
from store.errors import short_error

HELP = """\
Serve the temporal causal graph (for Grafana's Node Graph panel through the Infinity data
source, or the Node Graph API plugin), process tables, and Alertmanager's webhook receiver, with
waitress; and the investigation pages at / for a browser (overview, graph, process, timeline).
The store is a ClickHouse server (--store-url clickhouse://USER:PASS@HOST:PORT/DB) or chDB in
--data-dir. The bearer token comes from --token-file or GROUNDTRUTH_GRAPHAPI_TOKEN; without one,
only a loopback --listen address is accepted. The schema is migrated at start-up.
"""
TOKEN_ENV = "GROUNDTRUTH_GRAPHAPI_TOKEN"


def register(subparsers) -> None:
    p = subparsers.add_parser("graphapi", help="serve the causal graph API", description=HELP)
    p.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT (127.0.0.1:8080)")
    add_store_arguments(p)
    p.add_argument("--token-file", help="file holding the bearer token")
    p.add_argument("--threads", type=int, default=4, help="worker threads (4)")
    add_grafana_argument(p)
    p.add_argument("--no-migrate", dest="migrate", action="store_false", help="skip migration")
    p.set_defaults(func=run)


def add_grafana_argument(p) -> None:
    p.add_argument(
        "--grafana-url", default="", metavar="URL",
        help="Grafana's base URL: the pages link each graph to the investigation dashboard",
    )  # fmt: skip


def read_token(path: str | None) -> str:
    if path:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    return os.environ.get(TOKEN_ENV, "").strip()


def split_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--listen {listen!r} is not HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def fail(message: str) -> int:
    print(f"groundtruth graphapi: error: {message}", file=sys.stderr)
    return 2


def run(args) -> int:
    from graphapi import create_app
    from graphapi.server import InsecureListen, make_server
    from store.migrations import migrate

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        host, port = split_listen(args.listen)
        token = read_token(args.token_file)
        store = open_store_from_args(args)
        if args.migrate:
            migrate(store, args.retention_days)
    except (OSError, ValueError) as e:
        return fail(str(e))
    except Exception as e:  # noqa: BLE001 - a store that is down: say so, do not trace back
        return fail(f"the store is not usable: {short_error(e)}")
    # chDB is opened once and shared; a server URL is opened per request.
    config = {"TOKEN": token, "GRAFANA_URL": args.grafana_url}
    if args.store_url:
        config["STORE_URL"] = args.store_url
        store.close()
    else:
        config["STORE"] = store
    app = create_app(config)
    try:
        server = make_server(app, host, port, args.threads)
    except (InsecureListen, OSError) as e:
        return fail(str(e))
    logging.getLogger("groundtruth.graphapi").info(
        "graphapi: listening on http://%s:%s", host, server.effective_port
    )
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0
