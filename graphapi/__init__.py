"""graphapi: the temporal causal graph as a Grafana data source, and Alertmanager's webhook.

``create_app(config)`` builds the Flask app; ``graphapi.server.serve(app, host, port)`` serves
it with waitress; ``groundtruth graphapi`` does both from the command line.

Config (defaults below, then the mapping passed in):
- ``STORE``: a ``store.db.Store`` shared by all requests (chDB: one open per process), or
- ``STORE_URL``: ``clickhouse://user:password@host:port/db``, opened per request;
- ``TOKEN``: bearer token every data endpoint requires ('' for none: loopback only);
- limits: window length, nodes, depth of the walks, edges, alerts.
"""

from __future__ import annotations

from flask import Flask

DEFAULTS = {
    "STORE": None,
    "STORE_URL": "",
    "TOKEN": "",
    "DEFAULT_WINDOW_SECONDS": 3600,
    "MAX_WINDOW_SECONDS": 7 * 24 * 3600,
    "DEFAULT_LIMIT": 300,  # nodes; well under the Node Graph panel's 1,500
    "MAX_LIMIT": 1500,
    "ANCESTRY_LOOKBACK_SECONDS": 7 * 24 * 3600,  # how far back ancestors are looked for
    "MAX_DEPTH": 32,  # levels walked up (ancestors) and down (descendants)
    "MAX_DESCENDANTS": 4_000,  # keys are inlined on ClickHouse 18.16: its queries max 256 KiB
    "COLLAPSE_MIN": 3,  # this many siblings running one program become one node
    "MAX_EDGES": 2_000,
    "MAX_ALERTS": 100,
    "MATCH_SECONDS": 5.0,  # both ends of one connection are first seen this close in time
    "MAX_CONTENT_LENGTH": 4 * 1024 * 1024,  # webhook payloads
    "JSON_SORT_KEYS": False,
}


def create_app(config: dict | None = None) -> Flask:
    """The graphapi Flask application, configured from DEFAULTS then ``config``."""
    from graphapi import auth, errors, request_args, storage
    from graphapi.api import BLUEPRINTS

    app = Flask(__name__, static_folder=None)
    app.config.update(DEFAULTS)
    if config:
        app.config.update(config)
    app.json.sort_keys = False
    errors.register(app)
    auth.register(app)
    app.before_request(request_args.refuse_repeated_args)  # after the token check
    storage.register(app)
    for bp in BLUEPRINTS:
        app.register_blueprint(bp)
    return app
