"""graphapi as a service: property-based fuzzing of every endpoint (never a 5xx), a real
Alertmanager delivering to the webhook served by waitress, and the command line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphapi import create_app
from graphapi.server import make_server
from groundtruth.cli import main as groundtruth_main
from store.db import open_store
from store.migrations import migrate
from tests import graphapi_events as E
from testservices.clickhouse import fresh_database_name
from testservices.prometheus import start_alertmanager


@pytest.fixture(scope="module")
def chdb_store(chdb_dir):
    s = open_store(None, data_dir=chdb_dir, database=fresh_database_name())
    migrate(s)
    s.insert_events(E.events())
    yield s
    s.close()


@pytest.fixture(scope="module")
def server_store(clickhouse_server):
    name = fresh_database_name()
    s = open_store(clickhouse_server.url(name))
    migrate(s)
    s.insert_events(E.events())
    yield s
    s.execute(f"DROP DATABASE IF EXISTS {name}")
    s.close()


@pytest.fixture(scope="module", params=["chdb", "clickhouse"])
def client(request):
    """Fuzzed on both backends: ClickHouse 18.16 binds parameters differently from chDB."""
    store = request.getfixturevalue("chdb_store" if request.param == "chdb" else "server_store")
    return create_app({"STORE": store}).test_client()


ARG_NAMES = ["from", "to", "host", "container", "focus", "limit", "process_key"]
# Values near the accepted forms, and anything at all.
VALUES = st.one_of(
    st.text(max_size=40),
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(
        [
            E.WINDOW["from"],
            E.WINDOW["to"],
            E.key(E.A, 101),
            "101@host-a",
            "host-a:101",
            "10.0.0.2:80",
            "[::1]:80",
            "alert=x",
            "group=host-a:100:1000|true",
            "2026-01-01T00:00:00Z",
            "__all__",
            "1500",
            "0",
            "-1",
            "1e3",
            "'; DROP TABLE process_events; --",
            "\u0663",
        ]
    ),  # fmt: skip
)
ARGS = st.dictionaries(st.sampled_from(ARG_NAMES), VALUES, max_size=5)
PATHS = st.sampled_from(
    ["/api/graph", "/api/graph/data", "/api/graph/fields", "/api/health", "/api/processes",
     "/api/timeline", "/api/openapi.json", f"/api/processes/{E.key(E.A, 100)}",
     "/api/processes/%00", "/api/processes/x:1:2"]
)  # fmt: skip
FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(path=PATHS, args=ARGS)
def test_no_query_string_gets_a_5xx(client, path, args):
    reply = client.get(path, query_string=args)
    assert reply.status_code < 500, (path, args, reply.get_json())
    if reply.status_code >= 400:
        assert set(reply.get_json()) == {"code", "name", "description"}


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=15,
)
ALERT = st.fixed_dictionaries(
    {
        "status": st.sampled_from(["firing", "resolved", "other"]),
        "labels": st.dictionaries(st.text(max_size=10), st.text(max_size=10)) | JSON,
        "startsAt": st.sampled_from(["2026-01-01T00:00:00Z", "nope", "9999-99-99T00:00:00Z"])
        | st.text(max_size=30),
        "fingerprint": st.text(max_size=20) | JSON,
    }
)
PAYLOADS = JSON | st.fixed_dictionaries(
    {"version": st.sampled_from(["4", "3", 4]), "alerts": st.lists(ALERT, max_size=3)}
)


@FUZZ
@given(payload=PAYLOADS)
def test_no_webhook_payload_gets_a_5xx(client, payload):
    reply = client.post("/api/alerts/webhook", data=json.dumps(payload))
    assert reply.status_code < 500, (payload, reply.get_json())


class CountingDeliveries:
    """WSGI middleware counting webhook POSTs graphapi has handled (the test's own view of
    Alertmanager's sends). Counted once the reply is made: by then the delivery is stored or
    found a duplicate, so the store can be read."""

    def __init__(self, app):
        self.app, self.count = app, 0

    def __call__(self, environ, start_response):
        reply = self.app(environ, start_response)
        if environ["PATH_INFO"] == "/api/alerts/webhook":
            self.count += 1
        return reply


def test_real_alertmanager_delivers_twice_and_one_alert_is_stored(chdb_store, tmp_path):
    token = "am-token"
    app = create_app({"STORE": chdb_store, "TOKEN": token})
    counting = CountingDeliveries(app)
    server = make_server_for(app, counting)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        (tmp_path / "token").write_text(token)
        url = f"http://127.0.0.1:{server.effective_port}/api/alerts/webhook"
        config = {
            "route": {
                "receiver": "graphapi",
                "group_by": ["instance"],
                "group_wait": "0s",
                "group_interval": "1s",
                "repeat_interval": "1s",
            },
            "receivers": [
                {
                    "name": "graphapi",
                    "webhook_configs": [
                        {
                            "url": url,
                            "send_resolved": True,
                            "http_config": {
                                "authorization": {"credentials_file": str(tmp_path / "token")}
                            },
                        }
                    ],
                }
            ],
        }
        path = tmp_path / "alertmanager.yml"
        path.write_text(yaml.safe_dump(config))
        am = start_alertmanager(tmp_path / "am", path)
        try:
            alert = [
                {
                    "labels": {"alertname": "GroundtruthTestDelivery", "instance": "am-host"},
                    "annotations": {"summary": "sent by the test"},
                    "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
            ]
            request = urllib.request.Request(
                f"{am.url}/api/v2/alerts",
                data=json.dumps(alert).encode(),
                headers={"Content-Type": "application/json"},
            )
            urllib.request.urlopen(request, timeout=10).close()
            deadline = time.monotonic() + 60
            while counting.count < 2 and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            am.stop()
        assert counting.count >= 2, "Alertmanager redelivered the notification"
        rows = chdb_store.query(
            "SELECT alertname, host, status FROM received_alerts "
            "WHERE alertname = 'GroundtruthTestDelivery'"
        )
        assert rows == [("GroundtruthTestDelivery", "am-host", "firing")]
    finally:
        server.close()
        thread.join(10)


def make_server_for(app, wsgi):
    """A waitress server for ``wsgi`` after the loopback/token check of ``app``."""
    server = make_server(app, "127.0.0.1", 0)
    server.application = wsgi
    return server


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        groundtruth_main(["graphapi", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "--listen" in out and "--token-file" in out and "--store-url" in out


def test_cli_refuses_a_public_address_without_a_token(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("GROUNDTRUTH_GRAPHAPI_TOKEN", raising=False)
    status = groundtruth_main(
        ["graphapi", "--listen", "0.0.0.0:0", "--data-dir", str(tmp_path / "other-chdb"),
         "--no-migrate", "--store-url", "clickhouse://default:@127.0.0.1:1/x"]
    )  # fmt: skip
    assert status == 2
    assert "without a token" in capsys.readouterr().err


SCHEMATHESIS = [str(Path(sys.executable).with_name("st")), "--no-color"]
SCHEMATHESIS_CONFIG = Path(__file__).with_name("schemathesis.toml")


@pytest.mark.parametrize("backend", ["chdb", "clickhouse"])
def test_schemathesis_finds_nothing_against_a_live_graphapi(request, backend, tmp_path):
    """Every operation of the OpenAPI document, generated from it (valid and invalid values,
    bodies, methods, missing token) against waitress on real stored events: every check
    passes. Bounded: 50 examples per operation, 3 minutes at most."""
    store = request.getfixturevalue("chdb_store" if backend == "chdb" else "server_store")
    stored = store.query("SELECT count() FROM process_events")
    token = "fuzz-token"
    server = make_server(create_app({"STORE": store, "TOKEN": token}), "127.0.0.1", 0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.effective_port}"
        out = subprocess.run(
            [*SCHEMATHESIS, "--config-file", str(SCHEMATHESIS_CONFIG), "run",
             f"{base}/api/openapi.json", "--checks", "all", "--max-examples", "50",
             "--header", f"Authorization: Bearer {token}", "--request-timeout", "30"],
            capture_output=True, text=True, timeout=180, cwd=tmp_path,  # its cache goes there
            env={**os.environ, "GROUNDTRUTH_FUZZ_FROM": E.WINDOW["from"],
                 "GROUNDTRUTH_FUZZ_TO": E.WINDOW["to"]},
        )  # fmt: skip
    finally:
        server.close()
        thread.join(10)
    assert out.returncode == 0, out.stdout[-6000:]
    summary = re.search(r"(\d+) generated, (\d+) passed", out.stdout)
    assert summary and summary.group(1) == summary.group(2) and int(summary.group(1)) > 300
    assert store.query("SELECT count() FROM process_events") == stored, "nothing was lost"
